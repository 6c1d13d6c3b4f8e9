"""One actor loop per device kind.

A *telemetry* device's loop belongs to the framework: one cycle per tick of a drift-free
schedule (a :class:`Metronome` shared by every device of that interval), the result published
as state, then the save policy asked. A *command* device handles one inbound message at a
time. A *device* handler runs its own loop; its policy is asked after each mutation
(coalesced: a burst between two checkpoints is one check) and after each
``ctx.publish_state``.

Telemetry and command handler exceptions are reported and the loop goes on; the policy is
still asked, so a broker outage or a flaky sensor never stops persistence. A command handler
that raises ``ValueError``, ``KeyError`` or ``TypeError`` refused bad input from the network
(a malformed payload): that is reported as a rejection, one warning line. A device handler's
exception ends the actor; the supervisor restarts it.
"""

from __future__ import annotations

from typing import Any

import trio

from triolette.core.errors import HandlerTimeoutError, HeartbeatMissedError, TrioletteError
from triolette.core.kinds import DeviceKind
from triolette.core.messages import Message

from .device import DeviceActor, DeviceContext
from .spec import DeviceSpec


class _CycleActor(DeviceActor):
    """Telemetry and command: one handler call at a time, each reported, none fatal."""

    async def handle(self, ctx: DeviceContext, message: Message | None) -> None:
        """One telemetry cycle or command: call, publish a returned dict, ask the policy.

        It never waits for the broker: a returned state is queued, and the policy is asked
        when the broker confirmed it, or with ``published=False`` when the publish failed or
        the next cycle began first (the broker is slow or hung). With ``publish="durable"``
        the store is saved first and the state offered to the :class:`DurablePublisher`,
        which queues it once the save is durable; the cycle waits for neither.
        """
        self.settle_cycle()
        queued = False
        ok = True
        try:
            result = await self._call(ctx, message)
        except Exception as error:
            self._failed(error, message)
            ok = False
        else:
            try:
                if result is not None and self.durable is not None:
                    state = self.state_message(result)  # a bad state: saved, not published
                    if self.consult(False):  # saved: publish once durable
                        self.durable.offer(state)
                        self.went_well()
                    return
                if result is not None:
                    self.publish_state_soon(result)
                    queued = True
            except Exception as error:
                self.report(error)
                ok = False
        if not queued and self.consult(False) and ok:
            self.went_well()  # a queued state does this once it settled

    def _failed(self, error: Exception, message: Message | None) -> None:
        self.report(error)

    async def _call(self, ctx: DeviceContext, message: Message | None) -> Any:
        """Call the handler; past ``spec.timeout`` cancel it and raise HandlerTimeoutError."""
        seconds = self.spec.timeout
        if seconds is None:
            return await self.spec.call(ctx, self.store, message)
        with trio.move_on_after(seconds) as watchdog:
            return await self.spec.call(ctx, self.store, message)
        assert watchdog.cancelled_caught
        raise HandlerTimeoutError(self.spec.name, seconds)


class TelemetryActor(_CycleActor):
    """The first cycle at once, then one per tick of the shared metronome."""

    async def loop(self, ctx: DeviceContext) -> None:
        durable = self.durable
        if durable is None:
            await self._cycles(ctx)
            return
        failure: Exception | None = None
        async with trio.open_nursery() as nursery:
            nursery.start_soon(durable.run)
            try:
                await self._cycles(ctx)
            except Exception as error:
                failure = error  # raised below, outside the nursery, so it is not grouped
            nursery.cancel_scope.cancel()
        if failure is not None:
            raise failure

    async def wait_settled(self) -> None:
        if self.durable is None:
            await super().wait_settled()
            return
        with trio.move_on_after(self.mqtt.publish_timeout):
            await self.durable.wait_idle()

    async def _cycles(self, ctx: DeviceContext) -> None:
        assert self.metronome is not None
        lane = self.metronome.lane()
        current = lane.fired
        while True:
            await self.handle(ctx, None)
            if self.hooks.cycles_limited:  # the count says "done" only once it is settled
                await self.wait_settled()
            if not self.hooks.cycle_done(self.spec.name):
                await trio.sleep_forever()  # done: wait for the shutdown
            tick = await lane.next_tick(after=current)
            if tick > current + 1:
                self.hooks.ticks_skipped(self.spec.name, tick - current - 1)
            current = tick


class CommandActor(_CycleActor):
    """One inbound message at a time, in order."""

    async def loop(self, ctx: DeviceContext) -> None:
        assert self.inbox is not None
        async for message in self.inbox:
            await self.handle(ctx, message)

    def _failed(self, error: Exception, message: Message | None) -> None:
        bad_input = isinstance(error, ValueError | KeyError | TypeError) and not isinstance(
            error, TrioletteError
        )
        if bad_input:
            self._erred = True
            self.hooks.rejected(self.spec.name, error)
        else:
            self.report(error)


class HandlerActor(DeviceActor):
    """An ``@app.device`` handler running its own loop, optionally watched by a heartbeat."""

    def __init__(self, spec: DeviceSpec, **parts: Any) -> None:
        super().__init__(spec, **parts)
        self._changed = trio.Event()
        self._beat = trio.Event()
        self._missed_heartbeat: HeartbeatMissedError | None = None

    async def loop(self, ctx: DeviceContext) -> None:
        failure: Exception | None = None
        async with trio.open_nursery() as nursery:
            if self.spec.persist is not None and self.store is not None:
                nursery.start_soon(self._consult_on_change)
            if self.spec.heartbeat is not None:
                nursery.start_soon(self._watch_heartbeat, self.spec.heartbeat, nursery.cancel_scope)
            try:
                await self.spec.call(ctx, self.store, None)
            except Exception as error:
                failure = error  # raised below, outside the nursery, so it is not grouped
            nursery.cancel_scope.cancel()
        if failure is None and self._missed_heartbeat is not None:
            failure = self._missed_heartbeat
        if failure is not None:
            raise failure

    def state_published(self, published: bool) -> None:
        self.consult(published)

    def store_changed(self) -> None:
        self._changed.set()

    def beat(self) -> None:
        self._beat.set()

    async def _watch_heartbeat(self, seconds: float, handler: trio.CancelScope) -> None:
        """Cancel the handler when ``seconds`` pass without a ``ctx.heartbeat()``."""
        while True:
            self._beat = trio.Event()
            with trio.move_on_after(seconds) as waited:
                await self._beat.wait()
            if waited.cancelled_caught:
                self._missed_heartbeat = HeartbeatMissedError(self.spec.name, seconds)
                handler.cancel()
                return

    async def _consult_on_change(self) -> None:
        while True:
            await self._changed.wait()
            self._changed = trio.Event()
            self.consult(False)


ACTORS: dict[DeviceKind, type[DeviceActor]] = {
    DeviceKind.TELEMETRY: TelemetryActor,
    DeviceKind.COMMAND: CommandActor,
    DeviceKind.DEVICE: HandlerActor,
}
"""The actor class that runs each kind."""
