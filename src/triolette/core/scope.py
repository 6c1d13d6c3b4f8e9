"""What handlers may ask for by type, once the app runs: a scope of provided instances.

The app's scope holds what a serve builds before its devices start (the settings, the
adapters, shared state); a device's scope adds what belongs to that device alone (the result
of its ``init=`` factory, its expanded configuration) and falls back to the app's. A lookup
takes the exact type first, then the one provided instance of a subclass (a handler that asks
for ``Settings`` gets the app's ``MySettings``). No trio here.
"""

from __future__ import annotations

import types
import typing
from collections.abc import Iterator
from typing import Any

from triolette.core.errors import RegistrationError

_MISSING = object()


class Scope:
    """Instances by the type they are provided as; ``parent`` is asked for what is not here."""

    def __init__(self, parent: Scope | None = None) -> None:
        self._by_type: dict[Any, Any] = {}
        self.parent = parent

    def provide(self, key: Any, instance: Any, *, what: str = "") -> None:
        """Offer ``instance`` to handlers that ask for ``key``; a second one is refused."""
        if key in self._by_type:
            raise RegistrationError(
                f"{what or shown(key)}: something is already provided as {shown(key)}"
            )
        self._by_type[key] = instance

    def replace(self, key: Any, instance: Any) -> None:
        """Offer ``instance`` instead of the one provided as ``key`` here (a restarted
        adapter); a KeyError when nothing is."""
        if key not in self._by_type:
            raise KeyError(f"nothing is provided as {shown(key)} to replace")
        self._by_type[key] = instance

    def child(self) -> Scope:
        """A scope of its own (a device's) that falls back to this one."""
        return Scope(self)

    def find(self, annotation: Any) -> Any:
        """The instance for ``annotation``, or :data:`MISSING`. Ambiguity is a RegistrationError.

        The nearest scope that can answer answers: an exact key, else the one instance of a
        subclass of ``annotation``.
        """
        scope: Scope | None = self
        while scope is not None:
            found = scope._find_here(annotation)
            if found is not _MISSING:
                return found
            scope = scope.parent
        return _MISSING

    def get(self, annotation: Any, *, asked_by: str = "a handler") -> Any:
        """The instance for ``annotation``; a LookupError naming what is available otherwise."""
        found = self.find(annotation)
        if found is _MISSING:
            raise LookupError(
                f"{asked_by} asks for {shown(annotation)}, which nothing provides "
                f"(provided: {', '.join(self.names()) or 'nothing'})"
            )
        return found

    def provides(self, annotation: Any) -> bool:
        return self.find(annotation) is not _MISSING

    def names(self) -> list[str]:
        """The provided types, nearest scope first, for error messages."""
        return [shown(key) for key in self._keys()]

    def _keys(self) -> Iterator[Any]:
        scope: Scope | None = self
        while scope is not None:
            yield from scope._by_type
            scope = scope.parent

    def _find_here(self, annotation: Any) -> Any:
        try:
            if annotation in self._by_type:
                return self._by_type[annotation]
        except TypeError:  # an unhashable annotation
            return _MISSING
        if not isinstance(annotation, type):
            return _MISSING
        matches = [
            instance
            for key, instance in self._by_type.items()
            if isinstance(key, type) and issubclass(key, annotation)
        ]
        if len(matches) > 1:
            raise RegistrationError(
                f"{shown(annotation)} is ambiguous: {len(matches)} provided instances are of "
                "that type; ask for the exact type"
            )
        return matches[0] if matches else _MISSING


MISSING = _MISSING
"""What :meth:`Scope.find` returns when nothing is provided for a type."""


def shown(annotation: Any) -> str:
    """How an annotation is named in messages: its class name, else its ``repr``."""
    return getattr(annotation, "__qualname__", None) or repr(annotation)


def unwrapped(annotation: Any) -> Any:
    """``X`` for ``X | None`` (what is provided for it); the annotation itself otherwise."""
    if typing.get_origin(annotation) in (typing.Union, types.UnionType):
        others = [arg for arg in typing.get_args(annotation) if arg is not type(None)]
        if len(others) == 1:
            return others[0]
    return annotation
