"""AppHarness: run an App in a test, with an in-memory broker, and look at what it published."""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator
from typing import Any

import trio
import trio.testing

from triolette.core.messages import Message
from triolette.runtime.app import App
from triolette.stores.memory import MemoryStore
from triolette.stores.protocol import Store

from .broker import MemoryBroker


class AppHarness:
    """An :class:`~triolette.App` wired to a :class:`MemoryBroker`, for one test.

    ``await harness.run()`` runs one cycle of every telemetry device (with no telemetry
    devices: until every ``@app.device`` handler returned; with neither, until
    :meth:`trigger_shutdown`), then shuts down gracefully: the final flush has happened when it
    returns. ``run(cycles=N)`` and ``run(duration=seconds)`` run longer; under pytest-trio's
    ``autojump_clock`` an hour of virtual time takes milliseconds. To send commands, serve
    it with ``async with harness.serving(): await harness.command(...)``.
    """

    def __init__(self, app: App, broker: MemoryBroker) -> None:
        self.app = app
        self.broker = broker
        self._runs = 0
        self._ended = False

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
        has a store), the in-memory broker and ``app_options`` instead: the given App is not
        changed, so several tests can use it.
        """
        broker = MemoryBroker()
        if app is None:
            app = App(name, store=store, transport=broker.client(), **app_options)
        else:
            if store is None and app.store is not None:
                store = MemoryStore()
            app = app.copy_with(
                store=store, transport=broker.client(), embedded_broker=None, **app_options
            )
        return cls(app, broker)

    async def run(self, *, cycles: int | None = None, duration: float | None = None) -> None:
        """Run the app, shut it down gracefully, return after the final flush.

        Stops after exactly ``cycles`` cycles of every telemetry device (default 1; a device
        that is done waits for the others), or after ``duration`` seconds, or when
        :meth:`trigger_shutdown` is called, whichever comes first. Raises what ``App.serve``
        raises.
        """
        if cycles is not None and duration is not None:
            raise ValueError("pass cycles or duration, not both")
        if cycles is not None and not self.app.has_telemetry:
            raise ValueError("cycles= counts telemetry cycles, and this app has no telemetry")
        if duration is None and (cycles is not None or self.app.has_telemetry):
            limit: int | None = 1 if cycles is None else cycles
        else:
            limit = None
        failure: Exception | None = None
        async with trio.open_nursery() as nursery:
            if limit is None:
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
        failures: list[Exception] = []
        ready = trio.Event()

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
        """Start the graceful shutdown now (from a handler, a policy or another task)."""
        self.app.shutdown()

    async def command(self, device: str, payload: str | bytes) -> None:
        """Send ``payload`` to ``device``'s command topic, as a controller would.

        Waits until the app is serving, then until every task is blocked again (the handler
        ran up to its first wait) and what the handler saved is durable. Raises
        ``RuntimeError`` once the harness's run has ended, and ``LookupError`` when no device
        takes the command.
        """
        self._refuse_if_stopped(device)
        await self.app.wait_until_serving()
        self._refuse_if_stopped(device)
        if not self.broker.inject(self.app.topics.command(device), payload):
            raise LookupError(f"no device of {self.app.name!r} takes commands as {device!r}")
        await self.settle()

    async def settle(self) -> None:
        """Wait until every task is blocked and everything saved so far is durable.

        ``trio.testing.wait_all_tasks_blocked()`` alone may return while a backend write is
        under way (a task waiting for a worker thread counts as blocked); this also waits for
        the persistence actor's flush. Cancelling the wait does not cancel a write.
        """
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

    def _refuse_if_stopped(self, device: str) -> None:
        running = self.app.running
        stopping = running is not None and running.shutdown_requested
        if self._ended or (self._runs and stopping):
            raise RuntimeError(
                f"cannot send {device!r} a command: the app {self.app.name!r} has stopped "
                "(to keep it serving, use 'async with harness.serving():')"
            )

    async def _stop_when(self, duration: float | None) -> None:
        if duration is not None:
            await trio.sleep(duration)
        else:
            await self.app.wait_for_devices_to_return()
        self.app.shutdown()


class _Started:
    """The ``task_status`` of a serve: sets ``ready`` once the app is serving."""

    def __init__(self, ready: trio.Event | None) -> None:
        self._ready = ready

    def started(self, value: None = None) -> None:
        if self._ready is not None:
            self._ready.set()
