"""One actor loop per device kind.

A *telemetry* device's loop belongs to the framework: one cycle per tick of a drift-free
schedule (a :class:`Metronome` shared by every device of that interval), the result published
as state, then the save policy asked. A *command* device handles one inbound message at a
time. A *device* handler runs its own loop; its policy is asked after each mutation
(coalesced: a burst between two checkpoints is one check), after each
``ctx.publish_state`` and, for an async generator handler, at each ``yield``.

Telemetry and command handler exceptions are reported and the loop goes on; the policy is
still asked, so a broker outage or a flaky sensor never stops persistence. A command handler
that raises ``ValueError``, ``KeyError`` or ``TypeError`` refused bad input from the network
(a malformed payload): that is reported as a rejection, one warning line. A device handler's
exception ends the actor; the supervisor restarts it.

A telemetry or command state with a model (``state_model=``, or the return annotation's) is
validated and dumped first (:mod:`triolette.actors.contracts`). A state that does not match
is a :class:`ReturnValidationError`, reported; that cycle publishes nothing, the policy is not
asked, and the store is put back as it was before the cycle, so nothing of it is ever saved.
A command with ``payload_model=`` whose payload does not match is rejected (one warning line,
an ``invalid_payload`` report) and its handler is not called.
"""

from __future__ import annotations

import contextlib
import logging
from collections.abc import AsyncGenerator, Mapping
from typing import Any, cast

import trio

from triolette.core.breaker import Circuit
from triolette.core.errors import (
    HandlerTimeoutError,
    HeartbeatMissedError,
    PayloadValidationError,
    ReturnValidationError,
    TrioletteError,
)
from triolette.core.kinds import DeviceKind
from triolette.core.messages import Message
from triolette.core.strategies import PublishGate

from .contracts import parse_payload, shaped_state
from .device import DeviceActor, DeviceContext
from .groups import GroupTurns
from .spec import DeviceSpec
from .triggers import SCHEDULED, Ticks, Trigger, TriggerPayload

logger = logging.getLogger("triolette.device")


class _CycleActor(DeviceActor):
    """Telemetry and command: one handler call at a time, each reported, none fatal."""

    gate: PublishGate | None = None
    """Which returned states are published (telemetry with a publish strategy)."""
    _failures = 0
    """Failed attempts since the last success: the retry backoff's attempt number."""

    async def handle(self, ctx: DeviceContext, message: Message | None) -> None:
        """One telemetry cycle or command: call, publish a returned dict, ask the policy.

        It never waits for the broker: a returned state is queued, and the policy is asked
        when the broker confirmed it, or with ``published=False`` when the publish failed or
        the next cycle began first (the broker is slow or hung). With ``publish="durable"``
        the store is saved first and the state offered to the :class:`DurablePublisher`,
        which queues it once the save is durable; the cycle waits for neither.
        """
        self.settle_cycle()
        now = trio.current_time() if self.gate is not None else 0.0  # the cycle's start
        queued = False
        ok = True
        kept = None if self.state_model is None else self._keep_store()
        try:
            result = await self._call(ctx, message)
            if result is not None and (
                self.state_model is not None or not isinstance(result, Mapping)
            ):
                result = shaped_state(self.spec.name, self.state_model, result)
        except ReturnValidationError as error:
            self._discard_cycle(kept, error, message)
            return
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
                        await self.react(ctx)
                    return
                if result is not None and (self.gate is None or self.gate.wants(result, now)):
                    self.publish_state_soon(result, shaped=True)  # a suppressed one: not a publish
                    queued = True
                    if self.gate is not None:
                        self.gate.published(result, now)
            except Exception as error:
                self.report(error)
                ok = False
        if not queued and self.consult(False) and ok:
            self.went_well()  # a queued state does this once it settled
        if ok:
            await self.react(ctx)

    def _failed(self, error: Exception, message: Message | None) -> None:
        self.report(error)

    def _keep_store(self) -> dict[str, Any] | None:
        """A copy of the store before the cycle (a device whose state has a model)."""
        return None if self.store is None else self.store.to_dict()

    def _discard_cycle(
        self, kept: dict[str, Any] | None, error: ReturnValidationError, message: Message | None
    ) -> None:
        """The state did not match its model: report it, publish nothing, save nothing.

        The policy is not asked, and the store is put back as it was before the cycle, so
        its changes in this cycle are never saved (by a later cycle's save or the shutdown's).
        """
        self._failed(error, message)
        store = self.store
        if kept is not None and store is not None:
            store.clear()
            store.update(kept)

    async def _call(self, ctx: DeviceContext, message: Message | None) -> Any:
        """Call the handler, again after a ``retry_on`` error while ``spec.retry`` allows.

        Between attempts it sleeps the backoff's delay (cancelled by a shutdown like any
        wait); the last attempt's error propagates.
        """
        retry = self.spec.retry
        if retry is None:
            return await self._attempt(ctx, message)
        attempt = 0
        while True:
            attempt += 1
            try:
                result = await self._attempt(ctx, message)
            except retry.retry_on as error:
                self._failures += 1
                if attempt > retry.retries:
                    raise
                delay = retry.backoff.delay(self._failures)
                logger.info(
                    "%s: attempt %d of %d failed (%s: %s); retrying in %.3g s",
                    *(self.spec.name, attempt, retry.retries + 1),
                    *(type(error).__name__, error, delay),
                )
                await trio.sleep(delay)
            else:
                self._failures = 0
                return result

    async def _attempt(self, ctx: DeviceContext, message: Message | None) -> Any:
        """Call the handler; past ``spec.timeout`` cancel it and raise HandlerTimeoutError."""
        seconds = self.spec.timeout
        if seconds is None:
            return await self.spec.call(ctx, self.store, message)
        with trio.move_on_after(seconds) as watchdog:
            return await self.spec.call(ctx, self.store, message)
        assert watchdog.cancelled_caught
        raise HandlerTimeoutError(self.spec.name, seconds)


class TelemetryActor(_CycleActor):
    """The first cycle at once, then one per tick of the shared metronome (or the cron).

    The app owns what outlives a restart and hands it in: the ``trigger`` request slot, the
    ``circuit`` breaker state, the ``group`` turns shared by the members of a group.
    """

    def __init__(
        self,
        spec: DeviceSpec,
        *,
        ticks: Ticks | None = None,
        trigger: Trigger | None = None,
        circuit: Circuit | None = None,
        group: GroupTurns | None = None,
        **parts: Any,
    ) -> None:
        super().__init__(spec, **parts)
        self.ticks = ticks
        self.trigger = trigger
        self.circuit = circuit
        self.group = group
        self.gate = PublishGate(spec.strategy) if spec.strategy is not None else None
        self.trigger_payload = SCHEDULED
        """Why the running cycle runs (injected as ``TriggerPayload``)."""
        self._cycle_failed = False

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
        ticks: Ticks | None = self.ticks
        if ticks is None:  # the metronome of its interval, in this device's phase
            assert self.metronome is not None
            ticks = self.metronome.lane()
        current = ticks.fired
        payload = SCHEDULED
        while True:
            await self._cycle(ctx, payload)
            if self.hooks.cycles_limited:  # the count says "done" only once it is settled
                await self.wait_settled()
            if not self.hooks.cycle_done(self.spec.name):
                await trio.sleep_forever()  # done: wait for the shutdown
            if self.trigger is None:
                tick, payload = await ticks.next_tick(after=current), SCHEDULED
            else:  # a triggered cycle comes back with the tick unchanged
                tick, payload = await self.trigger.wait(ticks, current)
            if tick > current + 1:
                self.hooks.ticks_skipped(self.spec.name, tick - current - 1)
            current = tick

    async def _cycle(self, ctx: DeviceContext, payload: TriggerPayload) -> None:
        """One cycle: skipped by an open circuit, in the group's turn if grouped."""
        circuit = self.circuit
        if circuit is not None and not circuit.allow():
            logger.info("%s: circuit open, cycle skipped", self.spec.name)
            await trio.lowlevel.checkpoint()
            return
        self.trigger_payload = payload
        self._cycle_failed = False
        if self.group is None:
            await self.handle(ctx, None)
        else:
            async with self.group.turn(self.spec.name):  # one member at a time
                await self.handle(ctx, None)
        if circuit is not None:
            if self._cycle_failed:
                circuit.failed()
            else:
                circuit.succeeded()

    def _failed(self, error: Exception, message: Message | None) -> None:
        self._cycle_failed = True
        self.report(error)


class CommandActor(_CycleActor):
    """One inbound message at a time, in order."""

    async def loop(self, ctx: DeviceContext) -> None:
        assert self.inbox is not None
        async for message in self.inbox:
            await self.handle(ctx, message)

    async def _call(self, ctx: DeviceContext, message: Message | None) -> Any:
        """With ``payload_model=``, the payload is validated first: a bad one is a
        :class:`PayloadValidationError` and the handler is not called."""
        model = self.spec.payload_model
        if model is not None and message is not None:
            parse_payload(self.spec.name, model, message.text)
        return await super()._call(ctx, message)

    def _failed(self, error: Exception, message: Message | None) -> None:
        bad_input = isinstance(error, PayloadValidationError) or (
            isinstance(error, ValueError | KeyError | TypeError)
            and not isinstance(error, TrioletteError)
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
            self.command_channel.nursery = nursery  # ctx.on_command handlers run here
            if self.spec.persist is not None and self.store is not None:
                nursery.start_soon(self._consult_on_change)
            if self.spec.heartbeat is not None:
                nursery.start_soon(self._watch_heartbeat, self.spec.heartbeat, nursery.cancel_scope)
            try:
                await self.call_handler(ctx)
            except Exception as error:
                failure = error  # raised below, outside the nursery, so it is not grouped
            nursery.cancel_scope.cancel()
        if failure is None and self._missed_heartbeat is not None:
            failure = self._missed_heartbeat
        if failure is not None:
            raise failure

    async def call_handler(self, ctx: DeviceContext) -> None:
        """Await the handler; a generator one is run to its end, a boundary at each ``yield``.

        The generator is closed (``aclose``) however the run ends, so its ``finally`` runs.
        A kind with its own way of running the handler (a stream) overrides this.
        """
        if not self.spec.generator:
            await self.spec.call(ctx, self.store, None)
            return
        generator = cast(AsyncGenerator[Any, None], self.spec.call(ctx, self.store, None))
        async with contextlib.aclosing(generator):
            async for _ in generator:  # what it yields is not used
                await self.work_boundary(ctx)

    async def work_boundary(self, ctx: DeviceContext) -> None:
        """After a ``yield``: the save policy is asked, the heartbeat counts, then
        :meth:`reached_boundary` runs."""
        self.consult(False)
        self.beat()
        await self.reached_boundary(ctx)

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
