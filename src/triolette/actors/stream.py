"""The stream actor: a port pushes items into a :class:`Stream`, the handler reads them.

The actor owns the port's lifecycle: ``open()``, ``register_callback()``, ``start_scan()``
before the handler runs (a failure there is a crash: the supervisor restarts the stream with
backoff), ``stop_scan()`` and ``close()`` after it ended, shielded and bounded by
:data:`PORT_CLEANUP_SECONDS`, each failure logged. The handler is an async generator (each
yielded dict is published as the stream's state) or a coroutine reading ``Stream[T]``.

Overflows are not silent: the start of each episode is a WARNING and an error report
(``StreamFullError``), its end an INFO line with the number of items dropped. With
``stale_after``, no item within that many seconds marks the stream ``stale`` and holds it
(and the devices it ``feeds``) offline until the next item.
"""

from __future__ import annotations

import contextlib
import inspect
import logging
import typing
from collections.abc import Callable, Mapping
from typing import Any

import trio

from triolette.core.availability import Availability
from triolette.core.errors import RegistrationError
from triolette.core.scope import Scope
from triolette.core.stream import StreamOptions

from .device import DeviceContext
from .loops import HandlerActor
from .spec import DeviceSpec
from .stream_buffer import Stream

logger = logging.getLogger("triolette.stream")

PORT_CLEANUP_SECONDS = 5.0
"""How long ``stop_scan()`` and ``close()`` of a port may take together at the end."""
FRESHNESS = "freshness"
"""The availability hold of a stream that is stale."""


class StreamActor(HandlerActor):
    """Runs one ``@app.stream`` handler with its port and its :class:`Stream`."""

    @property
    def options(self) -> StreamOptions:
        options = self.spec.stream
        assert isinstance(options, StreamOptions)
        return options

    async def loop(self, ctx: DeviceContext) -> None:
        options, name = self.options, self.spec.name
        port = self.scope.get(options.port, asked_by=f"stream {name}")
        stream: Stream[Any] = Stream(
            options.maxsize,
            options.backpressure,
            name=name,
            on_overflow=self._overflowed,
            on_drained=self._drained,
        )
        self.scope.provide(Stream[options.item], stream)  # type: ignore[name-defined]
        self._tell(stream, "ok")
        try:
            await _call(port.open)
            await _call(port.register_callback, stream.feeder())
            await _call(port.start_scan)
            failure: Exception | None = None
            async with trio.open_nursery() as watchers:
                if options.stale_after is not None:
                    watchers.start_soon(self._watch_freshness, stream, options.stale_after)
                try:
                    await super().loop(ctx)
                except Exception as error:
                    failure = error  # raised below, outside the nursery, so it is not grouped
                watchers.cancel_scope.cancel()
            if failure is not None:
                raise failure
        finally:
            stream.close()
            with trio.move_on_after(PORT_CLEANUP_SECONDS, shield=True):
                await _cleanup(name, "stop_scan", port.stop_scan)
                await _cleanup(name, "close", port.close)
            self.mqtt.availability.release(name, FRESHNESS)

    async def call_handler(self, ctx: DeviceContext) -> None:
        """Run the handler: each dict an async generator yields is published as state.

        A yielded value that is not a JSON object is reported; the stream goes on. Each
        ``yield`` is a work boundary: the app's reactors run (their error ends the handler).
        """
        result: Any = self.spec.call(ctx, self.store, None)  # a generator for async def + yield
        if not inspect.isasyncgen(result):
            await result
            return
        async with contextlib.aclosing(result):
            state: Any
            async for state in result:
                if state is not None:
                    try:
                        self.publish_state_soon(state)
                    except Exception as error:  # not a JSON dict: reported, it goes on
                        self.report(error)
                await self.reached_boundary(ctx)

    async def _watch_freshness(self, stream: Stream[Any], bound: float) -> None:
        name = self.spec.name
        while True:
            with trio.move_on_after(bound) as waited:
                await stream.arrival()
            if not waited.cancelled_caught:
                continue
            logger.warning("%s: no item for %g s: stale, offline until the next one", name, bound)
            self.mqtt.availability.hold(name, FRESHNESS)
            self._tell(stream, "stale")
            await stream.arrival()
            logger.info("%s: items arrive again: online", name)
            self.mqtt.availability.release(name, FRESHNESS)
            self._tell(stream, "ok")

    def _overflowed(self, stream: Stream[Any], error: BaseException) -> None:
        logger.warning(
            "%s: the stream's buffer is full (%d items): %s from now on",
            self.spec.name,
            stream.maxsize,
            "failing" if stream.backpressure == "raise" else f"{stream.backpressure} items",
        )
        self.report(error)
        self._tell(stream, "overflowing")

    def _drained(self, stream: Stream[Any], dropped: int) -> None:
        logger.info(
            "%s: the stream's overflow is over: %d item(s) dropped (%d in all)",
            self.spec.name,
            dropped,
            stream.dropped,
        )
        self._tell(stream, "ok")

    def _tell(self, stream: Stream[Any], state: str) -> None:
        """Tell the app (when it listens: ``hooks.stream_state``) the stream's state."""
        tell = getattr(self.hooks, "stream_state", None)
        if tell is not None:
            tell(self.spec.name, state, stream.dropped)


async def _call(method: Callable[..., Any], *args: Any) -> None:
    """Call a port method, plain or ``async``."""
    result = method(*args)
    if inspect.isawaitable(result):
        await result


async def _cleanup(name: str, step: str, method: Callable[[], Any]) -> None:
    try:
        await _call(method)
    except Exception:
        logger.exception("%s: the port's %s() failed", name, step)


def wire_streams(
    specs: Mapping[str, DeviceSpec], scope: Scope, availability: Availability
) -> list[DeviceSpec]:
    """Check each stream's port and ``feeds``; tell ``availability`` what each one feeds.

    Returns the streams. Raises a RegistrationError naming the stream whose port no adapter
    provides, or whose ``feeds`` names no device (or a stream).
    """
    streams = [spec for spec in specs.values() if spec.stream is not None]
    for spec in streams:
        assert spec.stream is not None
        port = spec.stream.port
        if not scope.provides(port):
            shown = port_name(port)
            raise RegistrationError(
                f"{spec.name}: the stream reads from {shown}, which no adapter provides; "
                f"register one with app.adapter({shown}, factory)"
            )
        for target in spec.stream.feeds:
            fed = specs.get(target)
            if fed is None or fed.stream is not None:
                raise RegistrationError(
                    f"{spec.name}: feeds={target!r} names no device (a stream cannot feed "
                    "another stream)"
                )
        availability.feeds(spec.name, spec.stream.feeds)
    return streams


def provides(spec: DeviceSpec, need: Any) -> bool:
    """Whether the actor of ``spec`` provides ``need`` itself (a stream's ``Stream[T]``)."""
    return spec.stream is not None and typing.get_origin(need.annotation) is Stream


def port_name(port: Any) -> str:
    """How a port is shown: its class name (``GasMeter``, ``StreamablePort[Reading]``)."""
    origin, args = typing.get_origin(port), typing.get_args(port)
    if origin is not None and args:
        return f"{port_name(origin)}[{', '.join(map(port_name, args))}]"
    return str(getattr(port, "__qualname__", None) or repr(port))
