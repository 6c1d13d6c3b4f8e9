"""AppHarness: run an App in a test, with an in-memory broker, and look at what it published."""

from __future__ import annotations

from typing import Any

import trio
import trio.testing

from triolette.core.messages import Message
from triolette.runtime.app import App
from triolette.stores.protocol import Store

from .broker import MemoryBroker


class AppHarness:
    """An :class:`~triolette.App` wired to a :class:`MemoryBroker`, for one test run.

    ``await harness.run()`` runs one cycle of every telemetry device (with no telemetry
    devices: until every ``@app.device`` handler returned; with neither, until
    :meth:`trigger_shutdown`), then shuts down gracefully: the final flush has happened when it
    returns. To send commands, run it in a nursery, ``await harness.command(...)``, then
    :meth:`trigger_shutdown`. ``run(cycles=N)`` and ``run(duration=seconds)`` run longer;
    under pytest-trio's ``autojump_clock`` an hour of virtual time takes milliseconds.
    """

    def __init__(self, app: App, broker: MemoryBroker) -> None:
        self.app = app
        self.broker = broker

    @classmethod
    def create(
        cls, *, store: Store | None = None, name: str = "testapp", **app_options: Any
    ) -> AppHarness:
        """A harness around a new ``App(name, store=store, **app_options)``."""
        broker = MemoryBroker()
        app = App(name, store=store, transport=broker.client(), **app_options)
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
                await self.app.serve(cycles=limit)
            except Exception as error:
                failure = error
            nursery.cancel_scope.cancel()
        if failure is not None:
            raise failure

    def trigger_shutdown(self) -> None:
        """Start the graceful shutdown now (from a handler, a policy or another task)."""
        self.app.shutdown()

    async def command(self, device: str, payload: str | bytes) -> None:
        """Send ``payload`` to ``device``'s command topic, as a controller would.

        Waits until the app is serving, then until every task is blocked again (the handler
        ran up to its first wait). Raises ``LookupError`` when no device takes the command.
        """
        await self.app.wait_until_serving()
        if not self.broker.inject(self.app.topics.command(device), payload):
            raise LookupError(f"no device of {self.app.name!r} takes commands as {device!r}")
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

    async def _stop_when(self, duration: float | None) -> None:
        if duration is not None:
            await trio.sleep(duration)
        else:
            await self.app.wait_for_devices_to_return()
        self.app.shutdown()
