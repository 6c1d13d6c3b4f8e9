"""The device actor: runs one device's handler and owns its DeviceStore.

This module holds what every kind shares: the :class:`DeviceContext` handlers get, and the
:class:`DeviceActor` base that opens the store, announces the device, runs the kind's loop
(see :mod:`triolette.actors.loops`, one class per kind) and, whatever ends it, hands the final
snapshot to the persistence actor in its ``finally`` (synchronously: nothing there can be
cancelled) and publishes ``offline``.

A little over 400 lines: the context's methods are the handler's whole view of the runtime
(state, publishes, commands, settings, clock, adapters), each a few lines over the actor they
reach; split further, a handler author would read three files to learn what ``ctx`` offers.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Mapping
from typing import Any, Protocol, TypeVar, overload

import trio

from triolette.core.clock import ClockPort
from triolette.core.commands import Command
from triolette.core.jsonstate import encode_state
from triolette.core.messages import Message
from triolette.core.policies import PersistPolicy, SaveOnChange, SaveOnShutdown
from triolette.core.scope import MISSING, Scope
from triolette.core.topics import OFFLINE, ONLINE, check_level
from triolette.stores.devicestore import DeviceStore

from .clock import TrioClock
from .command_channel import CommandChannel, CommandStream
from .contracts import shaped_state, state_model_of
from .durable_publish import DurablePublisher
from .metronome import Metronome
from .mqtt import MqttActor
from .persistence import PersistenceActor
from .spec import DeviceSpec

logger = logging.getLogger("triolette.device")

_Handler = TypeVar("_Handler", bound=Callable[..., Any])


class Hooks(Protocol):
    """How an actor tells the running app about its life (cycles, errors, unsaved state)."""

    def cycle_done(self, device: str) -> bool:
        """Count a finished cycle; false when the device has run all the cycles it may."""
        ...

    @property
    def cycles_limited(self) -> bool:
        """Whether devices run a given number of cycles (then each waits for its publish)."""
        ...

    def report(self, device: str, error: BaseException) -> None: ...

    def rejected(self, device: str, error: BaseException) -> None:
        """A command handler refused bad input from the network (a malformed payload)."""
        ...

    def recovered(self, device: str) -> None: ...

    def ticks_skipped(self, device: str, count: int) -> None: ...

    def unsaved(self, device: str, error: BaseException) -> None: ...

    @property
    def shutdown_requested(self) -> bool: ...

    @property
    def settings(self) -> Any:
        """The app's settings object (``None`` without one)."""
        ...

    async def boundary(self, ctx: DeviceContext, store: DeviceStore | None) -> None:
        """A handler boundary went well (the reactors run); errors propagate."""
        ...


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
    def config(self) -> Any:
        """This device's own configuration (the value of its name in a ``name=`` dict), or
        ``None``."""
        return self._actor.spec.config

    @property
    def scope(self) -> Scope:
        """What this device's handlers may ask for by type (adapters, settings, shared state)."""
        return self._actor.scope

    @property
    def shutdown_requested(self) -> bool:
        """True once the app is stopping (handlers are cancelled too; this is for logs)."""
        return self._actor.hooks.shutdown_requested

    @property
    def settings(self) -> Any:
        """The app's settings object (``None`` without one), as handlers get it by type."""
        return self._actor.hooks.settings

    @property
    def clock(self) -> ClockPort:
        """The app's clock: ``now()`` (trio's current time) and ``await sleep(seconds)``."""
        clock: ClockPort = self.scope.find(ClockPort)
        return TrioClock() if clock is MISSING else clock

    def adapter(self, port: Any) -> Any:
        """The adapter instance registered for ``port``; a LookupError naming it otherwise."""
        return self.scope.get(port, asked_by=f"{self.name}: ctx.adapter()")

    async def publish_state(self, state: Mapping[str, Any] | Any) -> bool:
        """Publish ``state`` as this device's retained JSON state; return whether confirmed.

        ``state`` is a dict or a model instance (dumped as JSON, ``None`` fields left out).
        With ``state_model=`` it is validated first: a mismatch raises
        :class:`~triolette.ReturnValidationError` (naming the fields) and nothing is published.
        Raises :class:`~triolette.StateNotJSONError` (naming the path) for a state that is not
        strict JSON. In a ``@app.device`` handler with ``persist=``, the policy is asked after.
        """
        published = await self._actor.publish_state(state)
        self._actor.state_published(published)
        return published

    async def publish(
        self,
        suffix: str,
        payload: str | bytes,
        *,
        retain: bool = False,
        qos: int = 1,
        block: bool = False,
    ) -> bool:
        """Publish ``payload`` on ``{prefix}/{device}/{suffix}``; return whether confirmed.

        While the broker is away it returns false at once: a retained message is then kept
        (the latest per topic) and sent after the reconnect, others wait in a bounded queue.
        When that queue is full the message is dropped (one WARNING and one error report per
        episode), so the handler and its persistence go on through any outage. With
        ``block=True`` it waits for room instead (backpressure, for a stream that must not
        lose messages); cancelling that wait (a shutdown) queues nothing.
        """
        if qos not in (0, 1):
            raise ValueError(f"{self.name}: qos must be 0 or 1, got {qos!r}")
        for level in suffix.split("/"):
            check_level(level, "topic suffix level")
        topic = self._actor.mqtt.topics.under(self.name, suffix)
        message = Message(topic, payload, qos=qos, retain=retain)
        return await self._actor.mqtt.publish(message, block=block)

    async def sleep(self, seconds: float) -> None:
        """Sleep on the app's clock (virtual under trio's autojump clock in tests)."""
        await trio.sleep(seconds)

    @overload
    def commands(self) -> CommandStream[Command]: ...

    @overload
    def commands(self, timeout: float) -> CommandStream[Command | None]: ...

    @overload
    def commands(self, timeout: None) -> CommandStream[Command]: ...

    def commands(self, timeout: float | None = None) -> CommandStream[Any]:
        """This device's inbound commands (``{prefix}/{device}/set``), for ``async for``.

        Each is a :class:`~triolette.Command`. With ``timeout`` seconds, ``None`` comes
        whenever that long passes without a command (a handler's chance to poll). Raises
        RuntimeError for a device that takes no commands, ValueError for a timeout that is
        not positive.
        """
        if timeout is not None and not timeout > 0:
            raise ValueError(f"{self.name}: commands(timeout=) must be positive, got {timeout!r}")
        return self._actor.command_channel.stream("commands", timeout)

    @overload
    def on_command(self, handler: _Handler, /) -> _Handler: ...

    @overload
    def on_command(self, handler: None = None, /) -> Callable[[_Handler], _Handler]: ...

    @overload
    def on_command(self, sub_topic: str, /) -> Callable[[_Handler], _Handler]: ...

    def on_command(self, handler: Any = None, /) -> Any:
        """Register ``handler`` for this device's commands; also ``@ctx.on_command`` and
        ``@ctx.on_command()``. Only in an ``@app.device`` handler.

        The handler takes ``(sub_topic, payload)`` (``None`` and the text) or one parameter
        typed :class:`~triolette.Command`; it may be async. A task of the device's actor calls
        it for each command in order while the device handler runs (it ends with it). Its
        exception is reported like a handler's, and the next command is handled. A second
        registration, or one after ``ctx.commands()``, is a RuntimeError; a handler of another
        shape a TypeError. ``@ctx.on_command("sub")`` is a ValueError: only
        ``{prefix}/{device}/set`` is routed to a device.
        """
        if isinstance(handler, str):
            raise ValueError(
                f"{self.name}: on_command({handler!r}): sub-topic commands are not routed to a "
                f"device; register the plain form for {self._actor.mqtt.topics.command(self.name)}"
            )

        def register(function: _Handler) -> _Handler:
            self._actor.command_channel.serve(function)
            return function

        return register if handler is None else register(handler)

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
    """Runs ``spec`` once: load the store, run the kind's loop, hand over the final snapshot.

    Subclasses (one per kind) implement :meth:`loop`.
    """

    def __init__(
        self,
        spec: DeviceSpec,
        *,
        persistence: PersistenceActor | None,
        mqtt: MqttActor,
        hooks: Hooks,
        inbox: trio.MemoryReceiveChannel[Message] | None = None,
        metronome: Metronome | None = None,
        scope: Scope | None = None,
    ) -> None:
        self.spec = spec
        self.scope = scope if scope is not None else Scope()
        self.persistence = persistence
        self.mqtt = mqtt
        self.hooks = hooks
        self.inbox = inbox
        self.metronome = metronome
        self.store: DeviceStore | None = None
        self.command_channel = CommandChannel(
            spec.name, inbox, mqtt.topics.command(spec.name), self.report, self.went_well
        )
        """Who reads the commands: ``ctx.commands()`` or ``ctx.on_command`` handlers."""
        self._erred = False
        self._policy: PersistPolicy = spec.persist or SaveOnShutdown()
        self.durable: DurablePublisher | None = None  # publish="durable": states wait for it
        if spec.publish == "durable":
            self._policy = SaveOnChange()  # each state's cycle must be saved to be published
        self.state_model = state_model_of(spec)
        """What shapes the published state (``None``: dicts are published as they are)."""
        self._unsettled: trio.Event | None = None  # the cycle whose state is unconfirmed
        self._reaction_failed: trio.Event | None = None  # that cycle's reactor failed

    async def run(self) -> None:
        """Run until the loop returns (device kind) or the actor is cancelled.

        An exception of the loop propagates after the final snapshot was handed over.
        """
        spec = self.spec
        client = (
            self.persistence.client(spec.name) if spec.uses_store and self.persistence else None
        )
        try:
            if client is not None:
                self.store = await client.open_store(
                    clock=trio.current_time, on_change=self.store_changed
                )
                if spec.publish == "durable":
                    self.durable = DurablePublisher(self.mqtt, client)
            ctx = DeviceContext(self)
            if spec.init is not None:
                spec.init(ctx, self.store, None)  # an error: this start of the device failed
            self.mqtt.announce(spec.name, ONLINE)
            await self.loop(ctx)
        finally:
            self._unsettled = None  # a late confirmation no longer asks the policy
            self._hand_over_final_snapshot()
            if client is not None:
                client.close()
            self.mqtt.announce(spec.name, OFFLINE)

    async def loop(self, ctx: DeviceContext) -> None:
        raise NotImplementedError

    def store_changed(self) -> None:
        """The handler changed the store (only device handlers act on this)."""

    def state_published(self, published: bool) -> None:
        """A handler called ``ctx.publish_state`` (only device handlers act on this)."""

    def beat(self) -> None:
        """A handler called ``ctx.heartbeat()`` (only a watched device handler acts on this)."""

    async def reached_boundary(self, ctx: DeviceContext) -> None:
        """A work boundary of the handler: a generator device handler yielded.

        The app's reactors drain shared state with the handler's context and store. An
        exception raised here (a reactor's) ends the actor: the supervisor's restart policy
        applies, as for an exception of the handler itself.
        """
        await self.hooks.boundary(ctx, self.store)

    async def publish_state(self, state: Mapping[str, Any] | Any) -> bool:
        if self.state_model is not None or not isinstance(state, Mapping):
            state = shaped_state(self.spec.name, self.state_model, state)
        if not isinstance(state, Mapping):
            raise TypeError(f"{self.spec.name}: a state must be a dict, got {state!r}")
        payload = encode_state(self.spec.name, state)
        topic = self.mqtt.topics.state(self.spec.name)
        return await self.mqtt.publish(Message(topic, payload, retain=True))

    def state_message(self, state: Mapping[str, Any]) -> Message:
        """``state`` as this device's retained state message; raises for a bad state."""
        if not isinstance(state, Mapping):
            raise TypeError(f"{self.spec.name}: a state must be a dict, got {state!r}")
        payload = encode_state(self.spec.name, state)
        return Message(self.mqtt.topics.state(self.spec.name), payload, retain=True)

    def publish_state_soon(self, state: Mapping[str, Any] | Any, *, shaped: bool = False) -> None:
        """Queue ``state`` without waiting for the broker; ask the policy once it is settled.

        The policy is asked with ``published=True`` when the broker confirms, with false when
        the publish failed, the broker is away or counts as hung, or the next cycle begins
        first (see :meth:`settle_cycle`). A cycle that gets here went well: once the policy
        is asked without error, it counts as recovered (:meth:`went_well`). Raises what
        :meth:`publish_state` raises for a bad state; ``shaped`` says the state was already
        checked against the model (:func:`~triolette.actors.contracts.shaped_state`).
        """
        if not shaped and (self.state_model is not None or not isinstance(state, Mapping)):
            state = shaped_state(self.spec.name, self.state_model, state)
        message = self.state_message(state)
        cycle = self._unsettled = trio.Event()

        def settled(confirmed: bool) -> None:
            if self._unsettled is cycle:
                self._unsettled = None
                cycle.set()
                if self.consult(confirmed) and self._reaction_failed is not cycle:
                    self.went_well()  # the cycle that queued it went well up to here

        if not self.mqtt.publish_soon(message, settled):
            settled(False)

    def settle_cycle(self) -> None:
        """A new cycle begins: an earlier state still unconfirmed counts as not published."""
        if self._unsettled is not None:
            self._unsettled.set()
            self._unsettled = None
            if self.consult(False):
                self.went_well()

    async def wait_settled(self) -> None:
        """Wait for the last cycle's state to settle (for runs of a given number of cycles).

        Bounded by the publish timeout, past which a silent broker counts as lost anyway.
        Cancellable.
        """
        unsettled = self._unsettled
        if unsettled is not None:
            with trio.move_on_after(self.mqtt.publish_timeout):
                await unsettled.wait()

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

    async def react(self, ctx: DeviceContext) -> None:
        """A handler boundary went well: run the app's reactors; their error is reported
        like the handler's (the loop goes on). A ``yield`` boundary may call this too, or
        ``hooks.boundary`` directly to let the error end the handler instead."""
        try:
            await self.hooks.boundary(ctx, self.store)
        except Exception as error:
            self._reaction_failed = self._unsettled  # its confirmation is no recovery
            self.report(error)

    def went_well(self) -> None:
        """A clean cycle or command: the next error is news again."""
        if self._erred:
            self._erred = False
            self.hooks.recovered(self.spec.name)

    def _hand_over_final_snapshot(self) -> None:
        store = self.store
        if store is None or not store.loaded:
            return
        try:
            store.save()
        except Exception as error:
            self.hooks.unsaved(self.spec.name, error)
