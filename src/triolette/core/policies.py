"""Save policies: when a device's state is written during operation.

A policy is anything with ``should_save(store, published) -> bool`` (the :class:`PersistPolicy`
protocol), asked after each telemetry cycle or device mutation. ``published`` is true only when
the state publish of that cycle was confirmed. Whatever the policy, the runtime saves every dirty
store at shutdown. Policies combine with ``|`` (any) and ``&`` (all); nesting of one kind is
flattened, so ``a | b | c`` is ``AnySavePolicy(a, b, c)``.
"""

from __future__ import annotations

from typing import Any, Protocol, runtime_checkable

import attrs


class SaveState(Protocol):
    """What a policy may look at: the device store's dirty flag and its save clock."""

    @property
    def dirty(self) -> bool: ...

    def seconds_since_save(self) -> float | None: ...


@runtime_checkable
class PersistPolicy(Protocol):
    """The protocol every save policy satisfies, including users' own.

    Runtime-checkable: ``isinstance(policy, PersistPolicy)`` tells whether it has
    ``should_save``.

    ``store`` is the device's :class:`~triolette.DeviceStore` (typed loosely here so that a
    user policy annotated with ``DeviceStore`` satisfies the protocol).
    """

    def should_save(self, store: Any, published: bool) -> bool: ...


class _Composable:
    """``|`` and ``&`` for the shipped policies; user policies compose from either side."""

    __slots__ = ()

    def __or__(self, other: PersistPolicy) -> AnySavePolicy:
        return AnySavePolicy(self, other)  # type: ignore[arg-type]

    def __ror__(self, other: PersistPolicy) -> AnySavePolicy:
        return AnySavePolicy(other, self)  # type: ignore[arg-type]

    def __and__(self, other: PersistPolicy) -> AllSavePolicy:
        return AllSavePolicy(self, other)  # type: ignore[arg-type]

    def __rand__(self, other: PersistPolicy) -> AllSavePolicy:
        return AllSavePolicy(other, self)  # type: ignore[arg-type]


@attrs.frozen
class SaveOnPublish(_Composable):
    """Save after each confirmed state publish, so what is on disk matches what was broadcast."""

    def should_save(self, store: SaveState, published: bool) -> bool:
        return published


@attrs.frozen
class SaveOnChange(_Composable):
    """Save whenever the state changed, published or not: the smallest loss window."""

    def should_save(self, store: SaveState, published: bool) -> bool:
        return store.dirty


@attrs.frozen
class SaveOnShutdown(_Composable):
    """Never save during operation; only the shutdown flush writes (the default)."""

    def should_save(self, store: SaveState, published: bool) -> bool:
        return False


@attrs.frozen
class SaveAtMostEvery(_Composable):
    """Allow a save only when the device's last save is at least ``seconds`` old.

    Meant to be combined with ``&`` to spare SD cards: ``SaveOnChange() & SaveAtMostEvery(60)``
    writes a changing device at most once a minute; the change that had to wait is written at
    the first cycle after the window. The shutdown flush is never held back. A store that was
    not saved since it was loaded counts as due.
    """

    seconds: float = attrs.field(converter=float)

    @seconds.validator
    def _positive(self, attribute: attrs.Attribute[float], value: float) -> None:
        if not value > 0:
            raise ValueError(f"SaveAtMostEvery needs a positive number of seconds, got {value!r}")

    def should_save(self, store: SaveState, published: bool) -> bool:
        elapsed = store.seconds_since_save()
        return elapsed is None or elapsed >= self.seconds

    def __repr__(self) -> str:
        return f"SaveAtMostEvery({self.seconds:g})"


def _flatten(kind: type, children: tuple[PersistPolicy, ...]) -> tuple[PersistPolicy, ...]:
    if not children:
        raise ValueError(f"{kind.__name__} needs at least one policy")
    flat: list[PersistPolicy] = []
    for child in children:
        if not callable(getattr(child, "should_save", None)):
            raise TypeError(f"{child!r} is not a save policy (it has no should_save method)")
        flat.extend(child.children if isinstance(child, kind) else (child,))  # type: ignore[attr-defined]
    return tuple(flat)


@attrs.frozen(init=False, repr=False)
class _Composite(_Composable):
    """Children flattened at construction; equal only to a composite of the same kind."""

    children: tuple[PersistPolicy, ...]

    def __init__(self, *children: PersistPolicy) -> None:
        self.__attrs_init__(_flatten(type(self), children))

    def __repr__(self) -> str:
        return f"{type(self).__name__}({', '.join(map(repr, self.children))})"


class AnySavePolicy(_Composite):
    """Save when any child policy says so (``a | b``). Every child is asked, in order."""

    def should_save(self, store: SaveState, published: bool) -> bool:
        # A list, not a generator: every child sees every cycle, so stateful user policies
        # are not starved by an earlier "yes".
        return any([child.should_save(store, published) for child in self.children])  # noqa: C419


class AllSavePolicy(_Composite):
    """Save only when every child policy agrees (``a & b``). Every child is asked, in order."""

    def should_save(self, store: SaveState, published: bool) -> bool:
        return all([child.should_save(store, published) for child in self.children])  # noqa: C419
