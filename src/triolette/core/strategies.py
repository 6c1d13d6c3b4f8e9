"""Publish strategies: which telemetry readings are published (``@app.telemetry(publish=...)``).

A strategy is anything with ``should_publish(current, previous, now) -> bool`` and
``on_published(now)`` (the :class:`PublishStrategy` protocol). ``previous`` is the last state
that was *published* (never a suppressed one), ``now`` the app's clock in seconds. The first
reading of a device is always published, whatever the strategy says; a suppressed reading is
still a successful cycle (its save policy is asked with ``published=False``).

Strategies combine with ``|`` (:class:`AnyStrategy`: publish if any child says so) and ``&``
(:class:`AllStrategy`: only if all do). Every child is asked every time, so counters advance,
and every child hears ``on_published`` after a publish. Each device works on its own copy of
the strategy it was declared with, so one object may serve many devices.
"""

from __future__ import annotations

import copy
import math
from collections.abc import Mapping
from typing import Any, Protocol, runtime_checkable

import attrs

ON_TIME = 0.01
"""``Every(seconds=s)``: a reading this share of ``s`` early is on time."""


@runtime_checkable
class PublishStrategy(Protocol):
    """The protocol every publish strategy satisfies, including users' own."""

    def should_publish(
        self, current: Mapping[str, Any], previous: Mapping[str, Any], now: float
    ) -> bool: ...

    def on_published(self, now: float) -> None: ...


class _Composable:
    """``|`` and ``&`` for the shipped strategies; user strategies compose from either side."""

    def __or__(self, other: PublishStrategy) -> AnyStrategy:
        return AnyStrategy(self, other)  # type: ignore[arg-type]

    def __ror__(self, other: PublishStrategy) -> AnyStrategy:
        return AnyStrategy(other, self)  # type: ignore[arg-type]

    def __and__(self, other: PublishStrategy) -> AllStrategy:
        return AllStrategy(self, other)  # type: ignore[arg-type]

    def __rand__(self, other: PublishStrategy) -> AllStrategy:
        return AllStrategy(other, self)  # type: ignore[arg-type]


def _positive(value: object, what: str) -> None:
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise TypeError(f"{what} must be a number, got {value!r}")
    if not 0 < value < math.inf:
        raise ValueError(f"{what} must be positive and finite, got {value!r}")


@attrs.define(init=False)
class Every(_Composable):
    """Publish when ``seconds`` passed since the last publish, or every ``n``-th reading.

    Exactly one of the two, positive (ValueError otherwise). ``Every(n=k)`` counts readings
    since the last publish: with ``k=3`` every third reading is published. Times are the
    cycles' start times; one that comes up to :data:`ON_TIME` of ``seconds`` early counts
    as due, so ``Every(seconds=300)`` on a 60 s schedule publishes every fifth cycle even
    though a timer wakes a few milliseconds late or early.
    """

    seconds: float | None
    n: int | None
    _last: float | None = None
    _count: int = 0

    def __init__(self, *, seconds: float | None = None, n: int | None = None) -> None:
        if (seconds is None) == (n is None):
            raise ValueError("Every needs exactly one of seconds= or n=")
        if seconds is not None:
            _positive(seconds, "Every(seconds=...)")
        if n is not None and (isinstance(n, bool) or not isinstance(n, int) or n < 1):
            raise ValueError(f"Every(n=...) must be a positive whole number, got {n!r}")
        self.__attrs_init__(None if seconds is None else float(seconds), n)

    def should_publish(
        self, current: Mapping[str, Any], previous: Mapping[str, Any], now: float
    ) -> bool:
        if self.n is not None:
            self._count += 1
            return self._count >= self.n
        assert self.seconds is not None
        return self._last is None or now - self._last >= self.seconds * (1 - ON_TIME)

    def on_published(self, now: float) -> None:
        self._count = 0
        self._last = now

    def __repr__(self) -> str:
        return f"Every(n={self.n})" if self.n is not None else f"Every(seconds={self.seconds:g})"


Threshold = float | Mapping[str, float] | None


def _check_threshold(value: object, what: str) -> None:
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise TypeError(f"{what} must be a number, got {value!r}")
    if not value >= 0:  # also refuses NaN
        raise ValueError(f"{what} must not be negative, got {value!r}")


@attrs.frozen(init=False)
class OnChange(_Composable):
    """Publish when the state changed since the last published one.

    Without ``threshold``, any difference counts. With a number, a numeric leaf (nested
    dicts are walked; ``bool`` is not a number) must move by *more* than it; other leaves
    count on any difference. With a dict of dotted paths (``{"temperature": 0.05,
    "power.watts": 1}``), each listed leaf has its own band and the others count on any
    difference. Added or removed keys always count. NaN to a number counts, NaN to NaN does
    not. A negative threshold is a ValueError, a non-number (``True`` too) a TypeError.
    """

    threshold: float | Mapping[str, float] | None

    def __init__(self, threshold: Threshold = None) -> None:
        if isinstance(threshold, Mapping):
            for path, band in threshold.items():
                if not isinstance(path, str) or not path:
                    raise TypeError(f"OnChange threshold paths must be strings, got {path!r}")
                _check_threshold(band, f"OnChange threshold for {path!r}")
            threshold = dict(threshold)
        elif threshold is not None:
            _check_threshold(threshold, "OnChange(threshold=...)")
            threshold = float(threshold)
        self.__attrs_init__(threshold)

    def should_publish(
        self, current: Mapping[str, Any], previous: Mapping[str, Any], now: float
    ) -> bool:
        return _changed(current, previous, "", self.threshold)

    def on_published(self, now: float) -> None:
        return None


def _is_number(value: object) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool)


def _changed(current: Any, previous: Any, path: str, threshold: Threshold) -> bool:
    if isinstance(current, Mapping) and isinstance(previous, Mapping):
        if current.keys() != previous.keys():
            return True
        return any(
            _changed(current[key], previous[key], f"{path}.{key}" if path else key, threshold)
            for key in current
        )
    band = threshold.get(path) if isinstance(threshold, Mapping) else threshold
    if _is_number(current) and _is_number(previous):
        now_nan, before_nan = math.isnan(current), math.isnan(previous)
        if now_nan or before_nan:
            return now_nan != before_nan
        if band is not None:
            return bool(abs(current - previous) > band)
    return bool(current != previous)


def _flatten(kind: type, children: tuple[PublishStrategy, ...]) -> tuple[PublishStrategy, ...]:
    if not children:
        raise ValueError(f"{kind.__name__} needs at least one strategy")
    flat: list[PublishStrategy] = []
    for child in children:
        if not isinstance(child, PublishStrategy) or isinstance(child, type):
            raise TypeError(
                f"{child!r} is not a publish strategy (it needs should_publish and on_published)"
            )
        flat.extend(child.children if isinstance(child, kind) else (child,))  # type: ignore[attr-defined]
    return tuple(flat)


@attrs.define(init=False, repr=False)
class _Composite(_Composable):
    children: tuple[PublishStrategy, ...]

    def __init__(self, *children: PublishStrategy) -> None:
        self.__attrs_init__(_flatten(type(self), children))

    def on_published(self, now: float) -> None:
        for child in self.children:
            child.on_published(now)

    def _answers(
        self, current: Mapping[str, Any], previous: Mapping[str, Any], now: float
    ) -> list[bool]:
        """Every child's answer: a list, so no child is skipped."""
        return [child.should_publish(current, previous, now) for child in self.children]

    def __repr__(self) -> str:
        return f"{type(self).__name__}({', '.join(map(repr, self.children))})"


class AnyStrategy(_Composite):
    """Publish when any child strategy says so (``a | b``)."""

    def should_publish(
        self, current: Mapping[str, Any], previous: Mapping[str, Any], now: float
    ) -> bool:
        return any(self._answers(current, previous, now))


class AllStrategy(_Composite):
    """Publish only when every child strategy says so (``a & b``)."""

    def should_publish(
        self, current: Mapping[str, Any], previous: Mapping[str, Any], now: float
    ) -> bool:
        return all(self._answers(current, previous, now))


class PublishGate:
    """One device's strategy at work: its own copy of the strategy, and the baseline.

    The baseline is a copy of the last state handed to the broker, so a handler that keeps
    mutating the dict it returns cannot move it.
    """

    def __init__(self, strategy: PublishStrategy) -> None:
        self._strategy = copy.deepcopy(strategy)
        self._baseline: Mapping[str, Any] | None = None

    def wants(self, state: Any, now: float) -> bool:
        """Whether ``state`` should be published; the first state always is."""
        if self._baseline is None or not isinstance(state, Mapping):
            return True  # a bad state is published, so that its error is reported
        return bool(self._strategy.should_publish(state, self._baseline, now))

    def published(self, state: Mapping[str, Any], now: float) -> None:
        """``state`` was queued for publishing: it is the new baseline."""
        self._baseline = copy.deepcopy(state)
        self._strategy.on_published(now)
