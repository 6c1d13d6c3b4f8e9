"""The device actor: runs one device's handler and owns its DeviceStore.

Three kinds share one actor. A *telemetry* device's loop belongs to the framework: one cycle
per tick of a drift-free schedule (a :class:`Metronome` shared by every device of that
interval), the result published as state, then the save policy asked. A *device* handler
runs its own loop; its policy is asked after each mutation (coalesced: a burst between two
checkpoints is one check) and after each ``ctx.publish_state``. A *command* device handles
one inbound message at a time.

Handler exceptions in telemetry and command handlers are reported and the loop goes on; the
policy is still asked, so a broker outage or a flaky sensor never stops persistence. A device
handler's exception ends the actor; the supervisor restarts it. Whatever ends the actor, its
``finally`` hands the final snapshot to the persistence actor (synchronously: nothing there can
be cancelled) and publishes ``offline``.
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Mapping
from typing import Any, Protocol

import attrs
import trio

from triolette.core.errors import HandlerTimeoutError, HeartbeatMissedError
from triolette.core.jsonstate import encode_state
from triolette.core.messages import Message
from triolette.core.policies import PersistPolicy, SaveOnShutdown
from triolette.core.topics import OFFLINE, ONLINE, check_name
from triolette.stores.devicestore import DeviceStore

from .metronome import Metronome
from .mqtt import MqttActor
from .persistence import PersistenceActor

logger = logging.getLogger("triolette.device")

TELEMETRY = "telemetry"
DEVICE = "device"
COMMAND = "command"


class Handler(Protocol):
    """A user handler with its arguments resolved: called with what the actor provides."""

    def __call__(
        self, ctx: DeviceContext, store: DeviceStore | None, message: Message | None
    ) -> Awaitable[Any]: ...


@attrs.frozen
class DeviceSpec:
    """One registered device: what the supervisor needs to start (and restart) its actor."""

    name: str
    kind: str
    call: Handler
    interval: float | None = None
    persist: PersistPolicy | None = None
    uses_store: bool = False
    accepts_commands: bool = False
    restart: str = "transient"
    timeout: float | None = None
    """Seconds a telemetry cycle or a command may take before it is cancelled."""
    heartbeat: float | None = None
    """Seconds a device handler may go without ``ctx.heartbeat()`` before it is restarted."""
    asyncio: bool = False
    """The handler is asyncio code, run in the app's trio-asyncio loop."""


class Hooks(Protocol):
    """How an actor tells the app about its life (cycles, errors, unsaved state)."""

    def cycle_done(self, device: str) -> bool:
        """Count a finished cycle; false when the device has run all the cycles it may."""
        ...

    def report(self, device: str, error: BaseException) -> None: ...

    def recovered(self, device: str) -> None: ...

    def ticks_skipped(self, device: str, count: int) -> None: ...

    def unsaved(self, device: str, error: BaseException) -> None: ...

    @property
    def shutdown_requested(self) -> bool: ...


class DeviceContext:
    """What a handler gets to talk to the outside world; inject it with ``ctx: DeviceContext``.

    Publishing waits for the broker's confirmation and returns whether it came; it never
    raises for a broker problem (the state is queued or reported instead).
    """

    def __init__(self, actor: DeviceActor) -> None:
        self._actor = actor

    @property
    def name(self) -> str:
        """The device name (also its store key and its topic level)."""
        return self._actor.spec.name

    @property
    def shutdown_requested(self) -> bool:
        """True once the app is stopping (handlers are cancelled too; this is for logs)."""
        return self._actor.hooks.shutdown_requested

    async def publish_state(self, state: Mapping[str, Any]) -> bool:
        """Publish ``state`` as this device's retained JSON state; return whether confirmed.

        Raises :class:`~triolette.StateNotJSONError` (naming the path) for a state that is not
        strict JSON. In a ``@app.device`` handler with ``persist=``, the policy is asked after.
        """
        published = await self._actor.publish_state(state)
        if self._actor.spec.kind == DEVICE:
            self._actor.consult(published)
        return published

    async def publish(
        self, suffix: str, payload: str | bytes, *, retain: bool = False, qos: int = 1
    ) -> bool:
        """Publish ``payload`` on ``{prefix}/{device}/{suffix}``; return whether confirmed.

        While the broker is away it returns false at once: a retained message is then kept
        (the latest per topic) and sent after the reconnect, others wait in a bounded queue.
        """
        if qos not in (0, 1):
            raise ValueError(f"{self.name}: qos must be 0 or 1, got {qos!r}")
        for level in suffix.split("/"):
            check_name(level, "topic suffix level")
        topic = f"{self._actor.mqtt.topics.prefix}/{self.name}/{suffix}"
        return await self._actor.mqtt.publish(Message(topic, payload, qos=qos, retain=retain))

    async def sleep(self, seconds: float) -> None:
        """Sleep on the app's clock (virtual under trio's autojump clock in tests)."""
        await trio.sleep(seconds)

    def commands(self) -> trio.MemoryReceiveChannel[Message]:
        """This device's inbound commands (``{prefix}/{device}/set``), for ``async for``."""
        inbox = self._actor.inbox
        if inbox is None:
            raise RuntimeError(f"{self.name} takes no commands")
        return inbox

    def report_error(self, error: BaseException) -> None:
        """Report ``error`` like a handler exception (log and error topic) and go on."""
        self._actor.report(error)

    def heartbeat(self) -> None:
        """Tell the watchdog of an ``@app.device(heartbeat=...)`` handler that it is alive.

        A handler that lets ``heartbeat`` seconds pass without calling this is cancelled and
        restarted, as if it had raised :class:`~triolette.HeartbeatMissedError`.
        """
        self._actor.beat()


class DeviceActor:
    """Runs ``spec`` once: load the store, run the handler, hand over the final snapshot."""

    def __init__(
        self,
        spec: DeviceSpec,
        *,
        persistence: PersistenceActor | None,
        mqtt: MqttActor,
        hooks: Hooks,
        inbox: trio.MemoryReceiveChannel[Message] | None = None,
        metronome: Metronome | None = None,
    ) -> None:
        self.spec = spec
        self.persistence = persistence
        self.mqtt = mqtt
        self.hooks = hooks
        self.inbox = inbox
        self.metronome = metronome
        self._erred = False
        self.store: DeviceStore | None = None
        self._policy: PersistPolicy = spec.persist or SaveOnShutdown()
        self._changed = trio.Event()
        self._beat = trio.Event()
        self._missed_heartbeat: HeartbeatMissedError | None = None

    async def run(self) -> None:
        """Run until the handler returns (device kind) or the actor is cancelled.

        A device handler's exception propagates after the final snapshot was handed over.
        """
        spec = self.spec
        client = (
            self.persistence.client(spec.name) if spec.uses_store and self.persistence else None
        )
        try:
            if client is not None:
                self.store = await client.open_store(
                    clock=trio.current_time, on_change=self._note_change
                )
            self.mqtt.announce(spec.name, ONLINE)
            ctx = DeviceContext(self)
            if spec.kind == TELEMETRY:
                await self._run_telemetry(ctx)
            elif spec.kind == COMMAND:
                await self._run_commands(ctx)
            else:
                await self._run_device(ctx)
        finally:
            self._hand_over_final_snapshot()
            if client is not None:
                client.close()
            self.mqtt.announce(spec.name, OFFLINE)

    async def publish_state(self, state: Mapping[str, Any]) -> bool:
        if not isinstance(state, Mapping):
            raise TypeError(f"{self.spec.name}: a state must be a dict, got {state!r}")
        payload = encode_state(self.spec.name, state)
        topic = self.mqtt.topics.state(self.spec.name)
        return await self.mqtt.publish(Message(topic, payload, retain=True))

    def consult(self, published: bool) -> bool:
        """Ask the policy and save if it says so; errors are reported (returning false)."""
        store = self.store
        if store is None:
            return True
        try:
            if self._policy.should_save(store, published):
                store.save()
        except Exception as error:
            self.report(error)
            return False
        return True

    def report(self, error: BaseException) -> None:
        """Report ``error`` (log and error topics); the next clean cycle clears it."""
        self._erred = True
        self.hooks.report(self.spec.name, error)

    async def _run_telemetry(self, ctx: DeviceContext) -> None:
        metronome = self.metronome
        assert metronome is not None
        current = metronome.fired
        while True:  # the first cycle at once, then one per tick of the shared metronome
            await self._handle(ctx, None)
            if not self.hooks.cycle_done(self.spec.name):
                await trio.sleep_forever()  # done: wait for the shutdown
            tick = await metronome.next_tick(after=current)
            if tick > current + 1:
                self.hooks.ticks_skipped(self.spec.name, tick - current - 1)
            current = tick

    async def _run_commands(self, ctx: DeviceContext) -> None:
        assert self.inbox is not None
        async for message in self.inbox:
            await self._handle(ctx, message)

    async def _handle(self, ctx: DeviceContext, message: Message | None) -> None:
        """One telemetry cycle or command: call, publish a returned dict, ask the policy."""
        published = False
        ok = True
        try:
            if self.spec.timeout is None:
                result = await self.spec.call(ctx, self.store, message)
            else:
                result = await self._call_with_watchdog(ctx, message, self.spec.timeout)
            if result is not None:
                published = await self.publish_state(result)
        except Exception as error:
            self.report(error)
            ok = False
        if self.consult(published) and ok and self._erred:
            self._erred = False
            self.hooks.recovered(self.spec.name)  # a clean cycle: the next error is news

    async def _call_with_watchdog(
        self, ctx: DeviceContext, message: Message | None, seconds: float
    ) -> Any:
        """Call the handler; past ``seconds`` cancel it and raise :class:`HandlerTimeoutError`."""
        with trio.move_on_after(seconds) as watchdog:
            return await self.spec.call(ctx, self.store, message)
        assert watchdog.cancelled_caught
        raise HandlerTimeoutError(self.spec.name, seconds)

    async def _run_device(self, ctx: DeviceContext) -> None:
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

    def _note_change(self) -> None:
        self._changed.set()

    async def _consult_on_change(self) -> None:
        while True:
            await self._changed.wait()
            self._changed = trio.Event()
            self.consult(False)

    def _hand_over_final_snapshot(self) -> None:
        store = self.store
        if store is None or not store.loaded:
            return
        try:
            store.save()
        except Exception as error:
            self.hooks.unsaved(self.spec.name, error)
