"""What a stream registration declares: its port protocol, options and checks. No trio here.

A :class:`StreamablePort` is the adapter that pushes items; the bounded buffer between its
callback and the handler is :class:`~triolette.actors.stream_buffer.Stream`.
"""

from __future__ import annotations

import inspect
import typing
from collections.abc import Callable, Sequence
from typing import Any, Literal, Protocol, TypeVar, get_args

import attrs

from triolette.core.errors import RegistrationError

T_co = TypeVar("T_co", covariant=True)

Backpressure = Literal["drop_newest", "drop_oldest", "raise"]
"""What a full stream does with a new item."""
BACKPRESSURE: tuple[Backpressure, ...] = get_args(Backpressure)


class StreamablePort(Protocol[T_co]):
    """An adapter that pushes items: register one as ``StreamablePort[Reading]``.

    The framework calls ``open()``, ``register_callback(callback)``, ``start_scan()`` before
    the handler runs, and ``stop_scan()``, ``close()`` after it ended; each may be a plain
    or an ``async`` method. ``callback(item)`` is synchronous, never blocks, and may be
    called from any thread.
    """

    def open(self) -> Any: ...

    def close(self) -> Any: ...

    def start_scan(self) -> Any: ...

    def stop_scan(self) -> Any: ...

    def register_callback(self, callback: Callable[[Any], None]) -> Any: ...


def check_options(name: str, maxsize: object, backpressure: object) -> None:
    """Raise a RegistrationError naming the stream for a bad ``maxsize`` or policy."""
    if not isinstance(maxsize, int) or isinstance(maxsize, bool) or maxsize < 0:
        raise RegistrationError(
            f"{name}: maxsize must be an int >= 0 (0: unbounded), got {maxsize!r}"
        )
    if backpressure not in BACKPRESSURE:
        raise RegistrationError(
            f"{name}: backpressure={backpressure!r} is not one of "
            f"{', '.join(map(repr, BACKPRESSURE))}"
        )


@attrs.frozen(kw_only=True)
class StreamOptions:
    """A stream registration's own options (see ``App.stream``)."""

    item: Any
    """``T`` of the handler's ``Stream[T]`` parameter."""
    maxsize: int = 0
    backpressure: Backpressure = "drop_newest"
    stale_after: float | None = None
    feeds: tuple[str, ...] = ()
    summary: str | None = None

    @property
    def port(self) -> Any:
        """The adapter key the stream reads from: ``StreamablePort[T]``."""
        return StreamablePort[self.item]  # type: ignore[name-defined]


def stream_item(where: str, function: Callable[..., Any], stream: type) -> Any:
    """``T`` of the one ``stream[T]`` parameter of ``function``; a RegistrationError otherwise."""
    try:
        hints = typing.get_type_hints(function)
    except NameError as error:
        raise RegistrationError(f"{where}: cannot resolve an annotation ({error})") from error
    found: list[Any] = []
    for parameter in inspect.signature(function).parameters:
        hint = hints.get(parameter)
        if hint is stream or typing.get_origin(hint) is stream:
            found.append(hint)
    if len(found) != 1:
        raise RegistrationError(
            f"{where}: a stream handler takes exactly one parameter annotated Stream[T], "
            f"found {len(found)}"
        )
    (item,) = typing.get_args(found[0]) or (None,)
    if not isinstance(item, type):
        raise RegistrationError(
            f"{where}: annotate the stream parameter as Stream[T] with a class T, got {found[0]!r}"
        )
    return item


def check_feeds(name: str, feeds: object) -> tuple[str, ...]:
    """``feeds`` as a tuple of names; a bare string (a common slip) is refused."""
    if isinstance(feeds, str) or not isinstance(feeds, Sequence | frozenset | set):
        raise RegistrationError(f"{name}: feeds must be a list of device names, got {feeds!r}")
    for target in feeds:
        if not isinstance(target, str):
            raise RegistrationError(f"{name}: feeds holds {target!r}, not a device name")
    return tuple(feeds)
