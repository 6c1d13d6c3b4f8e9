"""Routers: registrations recorded in one module, added to an App under a prefix.

A :class:`Router` has the App's decorators (``telemetry``, ``command``, ``device``,
``stream``) and ``adapter``; it only records what they are given. ``App.include_router``
replays the records onto the App's own decorators, every keyword passed through unchanged, a
name becoming ``prefix/name`` (topics ``{p}/prefix/name/state``). A registration without a
name keeps it so (a stream without one is named after its handler, then prefixed). The same
router may be included several times under different prefixes.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING, Any, TypeVar

import attrs

from triolette.core.errors import RegistrationError
from triolette.core.topics import RESERVED_FIRST_LEVEL, RoutedName, check_name

if TYPE_CHECKING:
    from triolette.runtime.declaring import Declaring

F = TypeVar("F", bound=Callable[..., Any])

_UNSET: Any = object()


@attrs.frozen
class Registration:
    """One decorator call a router recorded: ``App.<method>(name, **options)(function)``."""

    method: str
    name: Any
    """The name given (``_UNSET`` when none was)."""
    options: dict[str, Any]
    function: Callable[..., Any]


@attrs.frozen
class _AdapterRecord:
    port: Any
    implementation: Any
    dry_run: Any
    options: dict[str, Any]


class Router:
    """Registrations to include in an App later, under ``prefix`` (one topic level).

    ``tags`` are kept as they are (``router.tags``), for the app's own use.
    """

    def __init__(self, prefix: str | None = None, tags: Sequence[str] | None = None) -> None:
        self.prefix = None if prefix is None else _check_prefix(prefix, "router prefix")
        self.tags = tuple(tags or ())
        self.registrations: list[Registration] = []
        self._adapters: list[_AdapterRecord] = []

    def __repr__(self) -> str:
        return f"<Router prefix={self.prefix!r}: {len(self.registrations)} registrations>"

    def telemetry(self, name: Any = _UNSET, **options: Any) -> Callable[[F], F]:
        """Record an ``App.telemetry`` registration (same arguments)."""
        return self._record("telemetry", name, options)

    def command(self, name: Any = _UNSET, **options: Any) -> Callable[[F], F]:
        """Record an ``App.command`` registration (same arguments)."""
        return self._record("command", name, options)

    def device(self, name: Any = _UNSET, **options: Any) -> Callable[[F], F]:
        """Record an ``App.device`` registration (same arguments)."""
        return self._record("device", name, options)

    def stream(self, name: Any = _UNSET, **options: Any) -> Callable[[F], F]:
        """Record an ``App.stream`` registration (same arguments)."""
        return self._record("stream", name, options)

    def adapter(self, port: Any, implementation: Any, dry_run: Any = None, **options: Any) -> None:
        """Record an ``App.adapter`` registration (same arguments)."""
        self._adapters.append(_AdapterRecord(port, implementation, dry_run, options))

    def _record(self, method: str, name: Any, options: dict[str, Any]) -> Callable[[F], F]:
        def record(function: F) -> F:
            self.registrations.append(Registration(method, name, dict(options), function))
            return function

        return record

    def replay(self, app: Declaring, prefix: str | None = None) -> None:
        """Register the records on ``app`` (what ``App.include_router`` does).

        The names are checked first, so a name already taken leaves ``app`` unchanged.
        """
        levels = [_check_prefix(prefix, "include prefix")] if prefix is not None else []
        combined = "/".join([*levels, *([self.prefix] if self.prefix else [])])
        names = [self._name_of(record, combined) for record in self.registrations]
        taken = [
            str(name) for name in names if isinstance(name, str) and name in app.registry.specs
        ]
        if taken:
            raise RegistrationError(
                f"include_router({self!r}, prefix={prefix!r}): {', '.join(taken)} already "
                "registered on the app"
            )
        for adapter in self._adapters:
            if app.registry.adapters.implementation_of(adapter.port) is not adapter.implementation:
                app.adapter(
                    adapter.port, adapter.implementation, adapter.dry_run, **adapter.options
                )
        local = {r.name for r in self.registrations if isinstance(r.name, str)}
        for record, name in zip(self.registrations, names, strict=True):
            options = dict(record.options)
            if combined and record.method == "stream" and "feeds" in options:
                options["feeds"] = _prefixed_feeds(options["feeds"], local, combined)
            arguments = () if name is _UNSET else (name,)
            getattr(app, record.method)(*arguments, **options)(record.function)

    @staticmethod
    def _name_of(record: Registration, combined: str) -> Any:
        name = record.name
        if record.method == "stream" and name in (_UNSET, None):
            name = record.function.__name__  # a stream is always named
        if isinstance(name, str) and combined:
            return RoutedName(f"{combined}/{name}")
        return name


def _check_prefix(prefix: object, what: str) -> str:
    level = check_name(prefix, what)
    if level == RESERVED_FIRST_LEVEL:
        raise RegistrationError(
            f"{what} {level!r} is reserved: triolette keeps it for its own store keys"
        )
    return level


def _prefixed_feeds(feeds: object, local: set[Any], combined: str) -> object:
    """``feeds`` with the names of this router's registrations prefixed like them."""
    if isinstance(feeds, str) or not isinstance(feeds, Sequence):
        return feeds  # the App refuses it, naming the stream
    return [RoutedName(f"{combined}/{f}") if f in local else f for f in feeds]
