"""AppHarness: run an App in a test, with an in-memory broker, and look at what it published.

From trio tests it runs the app in the test's own trio run; from asyncio tests (a ported
cosalette suite) in a trio guest run on the test's asyncio loop (:mod:`.guest`).

A little over 400 lines: the harness is one object a test talks to (run, serve, command,
clock, assertions); the assertions live in :mod:`.recorded` and the guest run in
:mod:`.guest` already.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import json
import math
from collections.abc import AsyncIterator, Awaitable, Callable, Mapping
from typing import Any

import trio
import trio.testing

from triolette.core.messages import Message
from triolette.runtime.app import App
from triolette.runtime.running import Lifecycle
from triolette.stores.memory import MemoryStore
from triolette.stores.protocol import Store

from .broker import MemoryBroker
from .clock import FakeClock
from .direct import call_command
from .guest import AsyncioSide, in_trio
from .mock_mqtt import MockMqttClient
from .recorded import Recorded


class AppHarness(Recorded):
    """An :class:`~triolette.App` wired to a :class:`MockMqttClient`, for one test.

    ``await harness.run()`` runs one cycle of every telemetry device (with no telemetry
    devices: until every ``@app.device`` handler returned; with neither, until
    :meth:`trigger_shutdown`), then shuts down gracefully: the final flush has happened when it
    returns. ``run(cycles=N)`` and ``run(duration=seconds)`` run longer; under pytest-trio's
    ``autojump_clock`` an hour of virtual time takes milliseconds. To send commands, serve
    it with ``async with harness.serving(): await harness.command(...)``.

    Built by keywords as cosalette's harness is (``AppHarness(app=app, mqtt=MockMqttClient(),
    clock=FakeClock(), settings=..., shutdown_event=asyncio.Event())``), it runs a copy of
    ``app`` (:meth:`App.copy_with`) on ``mqtt`` (and with ``settings``, when given); the
    app's store is kept. With a ``shutdown_event``, ``run()`` serves until it is set (or
    :meth:`trigger_shutdown`). ``clock`` must be the clock of the trio run: from asyncio the
    harness makes it so (a new :class:`FakeClock` if none is given); in a trio test take the
    ``fake_clock`` fixture, or none (then it wraps the run's ``MockClock``, if any).
    """

    def __init__(
        self,
        app: App,
        broker: MemoryBroker | None = None,
        *,
        mqtt: MockMqttClient | None = None,
        clock: FakeClock | None = None,
        settings: Any = None,
        shutdown_event: trio.Event | asyncio.Event | None = None,
    ) -> None:
        if mqtt is None:
            mqtt = MockMqttClient(broker)
        elif broker is not None and broker is not mqtt.broker:
            raise ValueError("pass a broker or an mqtt client on another broker, not both")
        changes: dict[str, Any] = {}
        if app.transport is not mqtt:
            changes.update(transport=mqtt, embedded_broker=None)
        if settings is not None:  # an App with settings (App(settings_class=...)) takes them
            changes["settings"] = settings
        self.app = app.copy_with(**changes) if changes else app
        self.mqtt = mqtt
        self.broker = mqtt.broker
        self.clock = clock
        self.settings = settings if settings is not None else getattr(self.app, "settings", None)
        self.shutdown_event = shutdown_event
        self._runs = 0
        self._ended = False
        self._aio = AsyncioSide()
        self._in_run = self._aio.call
        mqtt.settle, mqtt.ready, mqtt.bridge = self.settle, self._until_connected, self._in_run

    @classmethod
    def create(
        cls,
        *,
        store: Store | None = None,
        name: str = "testapp",
        app: App | None = None,
        **app_options: Any,
    ) -> AppHarness:
        """A harness around a new ``App(name, store=store, **app_options)``.

        With ``app`` (an existing App, such as your module's ``app``), the harness runs a copy
        of it (:meth:`App.copy_with`) with ``store`` (default: a new ``MemoryStore`` if the app
        has a store or a store factory, which is not called), a :class:`MockMqttClient` and
        ``app_options`` instead: the given App is not changed, so several tests can use it.
        """
        mqtt = MockMqttClient()
        if app is None:
            app = App(name, store=store, transport=mqtt, **app_options)
        else:
            if store is None and (app.store is not None or app.store_factory is not None):
                store = MemoryStore()
            app = app.copy_with(
                store=store, store_factory=None, transport=mqtt, embedded_broker=None, **app_options
            )
        return cls(app, mqtt=mqtt)

    async def run(self, *, cycles: int | None = None, duration: float | None = None) -> None:
        """Run the app, shut it down gracefully, return after the final flush.

        Stops after exactly ``cycles`` cycles of every telemetry device (default 1; a device
        that is done waits for the others), or after ``duration`` seconds, or when
        :meth:`trigger_shutdown` is called (or the ``shutdown_event`` is set: with one, and
        neither ``cycles`` nor ``duration``, only then), whichever comes first. Raises what
        ``App.serve`` raises. Awaited from asyncio code, it runs the app in a trio guest run on
        that loop (cancelling the asyncio task shuts the app down, then cancels).
        """
        if cycles is not None and duration is not None:
            raise ValueError("pass cycles or duration, not both")
        if cycles is not None and not self.app.has_telemetry:
            raise ValueError("cycles= counts telemetry cycles, and this app has no telemetry")
        if not in_trio():
            if self.app.registry.needs_asyncio:
                raise RuntimeError(
                    f"App {self.app.name!r} has asyncio=True registrations, whose trio-asyncio "
                    "loop cannot run inside a guest run: test it from a trio test"
                )
            self.clock = self.clock if self.clock is not None else FakeClock()
            event = self.shutdown_event if isinstance(self.shutdown_event, asyncio.Event) else None
            main = functools.partial(self._run, cycles, duration)
            await self._aio.run(main, self.clock, event, self.app.shutdown)
            return
        if isinstance(self.shutdown_event, asyncio.Event):
            raise TypeError("an asyncio.Event as shutdown_event needs an asyncio test")
        self._adopt_clock()
        await self._run(cycles, duration)

    async def _run(self, cycles: int | None, duration: float | None) -> None:
        until_event = self.shutdown_event is not None and cycles is None and duration is None
        if until_event or duration is not None or (cycles is None and not self.app.has_telemetry):
            limit: int | None = None
        else:
            limit = 1 if cycles is None else cycles
        failure: Exception | None = None
        async with trio.open_nursery() as nursery:
            if isinstance(self.shutdown_event, trio.Event):
                nursery.start_soon(self._stop_on, self.shutdown_event.wait)
            if limit is None and not until_event:
                nursery.start_soon(self._stop_when, duration)
            try:
                await self._serve(cycles=limit)
            except Exception as error:
                failure = error
            nursery.cancel_scope.cancel()
        if failure is not None:
            raise failure

    @contextlib.asynccontextmanager
    async def serving(self) -> AsyncIterator[AppHarness]:
        """Serve the app until the block ends, then shut it down and wait for the final flush.

        Telemetry devices cycle on, commands are handled, for as long as the test needs.
        Raises what ``App.serve`` raises (an exception of the block itself wins).
        """
        if not in_trio():
            raise RuntimeError(
                "serving() needs a trio test; from asyncio, run asyncio.create_task(harness.run()) "
                "with a shutdown_event and call trigger_shutdown() at the end"
            )
        failures: list[Exception] = []
        ready = trio.Event()
        self._adopt_clock()

        async def serve() -> None:
            try:
                await self._serve(cycles=None, ready=ready)
            except Exception as error:
                failures.append(error)
            ready.set()

        async with trio.open_nursery() as nursery:
            nursery.start_soon(serve)
            await ready.wait()
            if not failures:
                try:
                    yield self
                except Exception as error:  # raised below, outside the nursery: not grouped
                    failures.insert(0, error)
                finally:
                    self.trigger_shutdown()
        if failures:
            raise failures[0]

    def trigger_shutdown(self) -> None:
        """Start the graceful shutdown now (from a handler, a policy, another task, or asyncio
        code beside the app's guest run); sets the ``shutdown_event`` too."""
        event = self.shutdown_event
        if isinstance(event, asyncio.Event):
            event.set()
        if not in_trio() and self._aio.running:
            self._aio.call_soon(self._shutdown_now)
        else:
            self._shutdown_now()

    def _shutdown_now(self) -> None:
        if isinstance(self.shutdown_event, trio.Event):
            self.shutdown_event.set()
        self.app.shutdown()

    async def command(self, device: str, payload: str | bytes) -> None:
        """Send ``payload`` to ``device``'s command topic, as a controller would.

        Waits until the app is serving, then until every task is blocked again (the handler
        ran up to its first wait) and what the handler saved is durable. Raises
        ``RuntimeError`` once the harness's run has ended (or when no run is under way), and
        ``LookupError`` when no device takes the command.
        """
        await self.inject_command(device, payload)

    async def inject_command(
        self,
        device: str | None,
        payload: str | bytes | Mapping[str, Any],
        *,
        topic: str | None = None,
    ) -> None:
        """:meth:`command` as cosalette's harness spells it: a dict ``payload`` is sent as
        JSON, ``topic`` (a full topic) replaces ``{prefix}/{device}/set``, and ``device=None``
        means the app's own ``{prefix}/set``. Callable from asyncio code while :meth:`run`
        runs there."""
        if not in_trio():
            await self._in_run(self.inject_command, device, payload, topic=topic)
            return
        text = json.dumps(payload) if isinstance(payload, Mapping) else payload
        name = device if device is not None else self.app.name
        if topic is None:
            topic = f"{self.app.topics.prefix}/set" if device is None else None
        self._refuse_if_stopped(name)
        await self._until_running()
        await self.app.wait_until_serving()
        self._refuse_if_stopped(name)
        if not self.broker.inject(topic or self.app.topics.command(name), text):
            raise LookupError(f"no device of {self.app.name!r} takes commands as {name!r}")
        await self.settle()

    async def call_command(
        self, name: str, payload: str | bytes | Mapping[str, Any], *, topic: str | None = None
    ) -> Any:
        """Call the ``@app.command`` handler ``name`` directly, without serving (cosalette's
        ``call_command``): no init, adapters, reactors or store. A returned state is recorded
        on :attr:`mqtt` as the retained state and returned. See
        :func:`~triolette.testing.direct.call_command` for the errors."""
        return await call_command(self.app, self.mqtt, name, payload, topic=topic)

    def override_state(self, state_type: type, instance: Any) -> None:
        """Serve with ``instance`` as the ``@app.state`` object of ``state_type`` (cosalette's
        ``override_state``): its factory is not called, and the instance is not closed.

        For the harness's app only (a copy of the given App when the harness made one). A
        ``RegistrationError`` when the app has no factory of that type, ``TypeError`` for an
        instance of another type, ``RuntimeError`` while the app serves.
        """
        running = self.app.running
        if running is not None and running.state is not Lifecycle.STOPPED:
            raise RuntimeError("override_state() before the run, not while the app serves")
        self.app.shared = self.app.shared.copy()  # the given App keeps its own factories
        self.app.shared.override(state_type, instance)

    async def advance_time(self, seconds: float) -> None:
        """Move the app's time ``seconds`` forward, firing every timer due on the way in order,
        and return once the app settled (see :meth:`settle`).

        On a manual ``MockClock`` (a :class:`FakeClock`) it jumps from deadline to deadline; on
        an autojumping one it sleeps (virtual time); on the real clock it sleeps for real.
        """
        if not in_trio():
            await self._in_run(self.advance_time, seconds)
            return
        clock = trio.lowlevel.current_clock()
        if not _is_manual(clock):
            await trio.sleep(seconds)
            await self.settle()
            return
        assert isinstance(clock, FakeClock | trio.testing.MockClock)
        end = clock.current_time() + seconds
        while True:
            await self.settle()
            step = trio.lowlevel.current_statistics().seconds_to_next_deadline
            remaining = end - clock.current_time()
            if step > remaining:
                clock.jump(max(remaining, 0.0))
                await self.settle()
                return
            clock.jump(max(step, 0.0))

    async def wait_for_publish_count(
        self, topic: str, count: int, *, max_rounds: int = 10_000
    ) -> None:
        if not in_trio():
            await self._in_run(super().wait_for_publish_count, topic, count, max_rounds=max_rounds)
            return
        await super().wait_for_publish_count(topic, count, max_rounds=max_rounds)

    wait_for_publish_count.__doc__ = Recorded.wait_for_publish_count.__doc__

    async def settle(self) -> None:
        """Wait until every task is blocked and everything saved so far is durable.

        ``trio.testing.wait_all_tasks_blocked()`` alone may return while a backend write is
        under way (a task waiting for a worker thread counts as blocked); this also waits for
        the persistence actor's flush. Cancelling the wait does not cancel a write.
        """
        if not in_trio():
            await self._in_run(self.settle)
            return
        await trio.testing.wait_all_tasks_blocked()
        running = self.app.running
        if running is not None and running.persistence is not None:
            await running.persistence.flush()
            await trio.testing.wait_all_tasks_blocked()

    @property
    def messages(self) -> list[Message]:
        """Every message the app published, in order."""
        return list(self.broker.messages)

    def states(self, device: str) -> list[Any]:
        """Every state ``device`` published, decoded, oldest first."""
        return self.broker.payloads(self.app.topics.state(device))

    def state(self, device: str) -> Any:
        """The retained state of ``device`` (decoded), or ``None``."""
        states = self.states(device)
        return states[-1] if states else None

    def errors(self, device: str | None = None) -> list[Any]:
        """The error reports of ``device`` (or of the app topic), decoded."""
        topic = self.app.topics.app_error if device is None else self.app.topics.error(device)
        return self.broker.payloads(topic)

    async def _serve(self, *, cycles: int | None, ready: trio.Event | None = None) -> None:
        self._runs += 1
        self._ended = False
        try:
            await self.app.serve(cycles=cycles, task_status=_Started(ready))
        finally:
            self._ended = True

    def _refuse_if_stopped(self, device: str, what: str = "send {device!r} a command") -> None:
        running = self.app.running
        stopping = running is not None and running.shutdown_requested
        if self._ended or (self._runs and stopping):
            raise RuntimeError(
                f"cannot {what.format(device=device)}: the app {self.app.name!r} has stopped "
                "(to keep it serving, use 'async with harness.serving():')"
            )

    async def _until_connected(self) -> None:
        self._refuse_if_stopped("", "deliver a message")
        await self._until_running()
        await self.app.wait_until_connected()

    async def _until_running(self) -> None:
        """Return once a serve of the app began (a task started just now gets to begin it);
        ``RuntimeError`` rather than waiting for ever when none does."""
        began = False

        async def begin(cancel_scope: trio.CancelScope) -> None:
            nonlocal began
            await self.app.current_run()
            began = True
            cancel_scope.cancel()

        async with trio.open_nursery() as nursery:
            nursery.start_soon(begin, nursery.cancel_scope)
            await trio.testing.wait_all_tasks_blocked()  # then nothing will start a run
            nursery.cancel_scope.cancel()
        if not began:
            raise RuntimeError(
                f"the app {self.app.name!r} is not running: start harness.run() in a "
                "nursery, or use 'async with harness.serving():'"
            )

    async def _stop_when(self, duration: float | None) -> None:
        if duration is not None:
            await trio.sleep(duration)
        else:
            await self.app.wait_for_devices_to_return()
        self.app.shutdown()

    async def _stop_on(self, signal: Callable[[], Awaitable[object]]) -> None:
        await signal()
        self.app.shutdown()

    def _adopt_clock(self) -> None:
        """Check the harness clock is the run's clock; without one, wrap the run's MockClock."""
        running = trio.lowlevel.current_clock()
        if self.clock is None:
            if isinstance(running, FakeClock):
                self.clock = running
            elif isinstance(running, trio.testing.MockClock):
                self.clock = FakeClock(running)
        elif running is not self.clock and running is not self.clock.trio_clock:
            raise ValueError(
                "the harness's FakeClock is not the clock of this trio run, so the app would "
                "not follow it: take the fake_clock fixture (or autojump_clock and no clock=)"
            )


def _is_manual(clock: trio.abc.Clock) -> bool:
    """Whether time on ``clock`` moves only when jumped (a FakeClock, a manual MockClock)."""
    if isinstance(clock, trio.testing.MockClock):
        return math.isinf(clock.autojump_threshold)
    return isinstance(clock, FakeClock)


class _Started:
    """The ``task_status`` of a serve: sets ``ready`` once the app is serving."""

    def __init__(self, ready: trio.Event | None) -> None:
        self._ready = ready

    def started(self, value: None = None) -> None:
        if self._ready is not None:
            self._ready.set()
