"""One ``serve()`` of an App: builds its actors, owns them, and runs their lifecycle.

Start, in order: the app's trio-asyncio loop (when some registration needs one), the embedded
broker, the settings, adapters, start-up hooks (:mod:`triolette.runtime.lifecycle`), the
registrations becoming this serve's devices (:func:`~triolette.runtime.expansion.expand`, with
the settings), shared state, the persistence actor (which loads every device's state in one
batch), the MQTT actor, the lifespan, then the supervisor with the devices, their metronomes
and the statistics log. Shutdown is :meth:`RunningApp._shut_down`, then the lifespan, shared
state and adapters close. The actors' callbacks (cycles, errors, unsaved state) arrive
here, never on the :class:`~triolette.App`; what they count and what a serve reports is
:mod:`triolette.runtime.bookkeeping`.

A little over 400 lines: the start and the shutdown share one deadline, one exit stack and the
set of actors that came up; kept together, the order of both reads top to bottom.
"""

from __future__ import annotations

import collections
import contextlib
import enum
import logging
from typing import TYPE_CHECKING, Any

import attrs
import trio

from triolette.actors import carry_over
from triolette.actors.device import DeviceActor
from triolette.actors.loops import ACTORS
from triolette.actors.metronome import Metronome
from triolette.actors.migrations import contracts_of
from triolette.actors.mqtt import MqttActor
from triolette.actors.paho import PahoTransport
from triolette.actors.persistence import PersistenceActor
from triolette.actors.spec import DeviceSpec
from triolette.actors.stream import StreamActor, wire_streams
from triolette.actors.transport import LogTransport, Transport
from triolette.core.errors import FlushIncompleteError, LeaseLostError
from triolette.core.kinds import DeviceKind
from triolette.core.messages import Message
from triolette.core.scope import Scope
from triolette.core.topics import Topics
from triolette.runtime import discovery
from triolette.runtime.bookkeeping import Bookkeeping
from triolette.runtime.device_scope import check_device_needs, device_scope
from triolette.runtime.embedded import watch_command
from triolette.runtime.expansion import expand
from triolette.runtime.health import (
    DeviceHealth,
)
from triolette.runtime.health_checks import HealthChecks
from triolette.runtime.heap import ServeHeap
from triolette.runtime.lease_keeper import keeper_for
from triolette.runtime.lifecycle import enter_lifespan, open_parts
from triolette.runtime.reports import Reports
from triolette.runtime.scheduling import Scheduling
from triolette.runtime.store_factory import store_at_start
from triolette.runtime.supervisor import Companion, Supervisor
from triolette.runtime.switching import keep_switches_short
from triolette.runtime.teardown import close

if TYPE_CHECKING:
    from triolette.runtime.app import App

logger = logging.getLogger("triolette.app")


class Lifecycle(enum.IntEnum):
    """Where a serve is; it only moves forward (ABANDONING is skipped by a clean stop)."""

    STARTING = 1
    SERVING = 2
    """Every actor started (state loaded, first connection attempt made)."""
    STOPPING = 3
    """Shutdown requested: the deadline runs."""
    ABANDONING = 4
    """The deadline passed (or a second signal): nothing waits for the flush any longer."""
    STOPPED = 5


class RunningApp(Bookkeeping):
    """The actors of one serve of ``app`` and its single lifecycle :attr:`state`.

    With ``cycles``, each telemetry device runs that many cycles and then waits; once all
    have, the app shuts down by itself.
    """

    def __init__(self, app: App, cycles: int | None) -> None:
        # Over 50 lines: the actors of one serve are built here, in the order they start.
        self.app = app
        self.state = Lifecycle.STARTING
        self._moved = trio.Event()
        # The devices known now; :meth:`_prepare` plans again with those the settings and the
        # start-up hooks make.
        static = list(app.registry.specs.values())
        self.topics = _with_root(app.topics, static)
        self.started_at = trio.current_time()
        self.stop_deadline: float | None = None
        self._heap = ServeHeap()
        self.skipped: dict[str, int] = {}
        self._cycle_limit = cycles
        self._cycle_event: trio.Event | None = None
        self.mqtt = MqttActor(
            app.transport or LogTransport(),
            self.topics,
            outbox_size=app.outbox_size,
            publish_timeout=app.publish_timeout,
            reconnect=app.reconnect_backoff,
            heartbeat=self._heartbeat,
            heartbeat_every=app.heartbeat_every,
            retained_commands=app.retained_commands,
        )
        self.reports = Reports(
            app.name,
            self.mqtt,
            error_types=app.error_type_map,
            publish_messages=app.publish_error_messages,
            remind_every=app.error_reminder_every,
        )
        self.health_checks = HealthChecks(
            self.mqtt.availability, app.health_check_interval, app.adapter_restarts
        )
        if app.store_factory is not None:  # a new store for each serve
            app.store = store_at_start(app.store_factory, app.settings)
        store = app.store
        self.persistence = (
            PersistenceActor(
                store,
                mailbox_size=app.mailbox_size,
                on_error=self._backend_failed,
                on_recovered=self.reports.backend_recovered,
            )
            if store is not None
            else None
        )
        self.lease = keeper_for(app, on_lost=self._lease_lost)
        """Holds the devices' lease in a shared store (PostgreSQL, Redis); else ``None``."""
        self.devices_returned = trio.Event()
        self._inboxes: dict[str, trio.MemoryReceiveChannel[Message]] = {}
        self._plan(static)
        self._up: list[PersistenceActor | MqttActor] = []
        """The actors that started, so the shutdown waits for them."""
        self._carried: list[Message] = []  # kept in the store by the last stop
        self.scope = Scope()
        """What handlers may ask for by type (each device's scope falls back to it); filled
        before the devices start."""
        self._parts = contextlib.AsyncExitStack()
        """The adapters, shared state and lifespan: closed after the final flush."""
        self._preparing = trio.CancelScope()  # building them; cancelled by abandon()

    def _plan(self, specs: list[DeviceSpec]) -> None:
        """What depends on the devices: again once the start-up hooks and settings decided."""
        self.specs = specs
        self.cycles = {s.name: 0 for s in specs if s.kind is DeviceKind.TELEMETRY}
        self.health = DeviceHealth(self.cycles)
        self._inboxes = {
            s.name: self._inboxes.get(s.name) or self._open_inbox(s.name)
            for s in specs
            if s.accepts_commands
        }
        followers = collections.Counter(s.interval for s in specs if s.interval)
        self._metronomes = {i: Metronome(i, followers=n) for i, n in followers.items()}
        self.scheduling = Scheduling(specs, self.mqtt)
        app = self.app
        self.supervisor = Supervisor(
            specs,
            self._actor_for,
            flush=self.persistence.flush if self.persistence else _nothing_to_flush,
            report=self.reports.report,
            recovered=self.reports.recovered,
            backoff=app.restart_backoff,
            limit=app.restart_limit,
            flush_timeout=app.shutdown_timeout,
            all_returned=self.devices_returned,
        )
        if self.state >= Lifecycle.STOPPING:
            self.supervisor.scope.cancel()

    # -- the lifecycle ------------------------------------------------------------------------

    def _move(self, state: Lifecycle) -> None:
        if state > self.state:
            self.state = state
            self._moved.set()
            self._moved = trio.Event()

    async def wait_for(self, state: Lifecycle) -> None:
        """Wait until the lifecycle reached ``state`` (or a later one)."""
        while self.state < state:
            await self._moved.wait()

    @property
    def shutdown_requested(self) -> bool:
        return self.state >= Lifecycle.STOPPING or self.supervisor.escalation is not None

    def shutdown(self) -> None:
        """Start the graceful shutdown (the deadline starts now); safe to call any time."""
        if self.state < Lifecycle.STOPPING:
            self.stop_deadline = trio.current_time() + self.app.shutdown_timeout
            self._move(Lifecycle.STOPPING)
            self._heap.stopping()  # until serve() releases it, once the stop is over
        self.supervisor.scope.cancel()
        if self.lease is not None:
            self.lease.stop_waiting()  # a standby stops waiting for its turn

    def abandon(self) -> None:
        """Stop waiting for the flush and the broker (deadline passed, or a second signal)."""
        if self.state >= Lifecycle.ABANDONING:
            return
        self.shutdown()
        self._move(Lifecycle.ABANDONING)
        persistence = self.persistence
        if persistence is not None and not persistence.stopped.is_set():
            senders = persistence.statistics().mailbox_senders
            persistence.abandon()
            if senders and not (self.lease is not None and self.lease.lost):
                logger.error(
                    "shutdown deadline passed with %d persistence mailbox handle(s) still open "
                    "(a leaked handle or a hung backend)",
                    senders,
                )
        self.mqtt.abandon()
        self._preparing.cancel()

    # -- serving ------------------------------------------------------------------------------

    async def serve(self, task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED) -> None:
        """Start every actor, run the devices until the shutdown, then shut down.

        Raises what :meth:`App.serve` documents.
        """
        failure: Exception | None = None
        try:
            async with self._asyncio_loop(), trio.open_nursery() as root:
                root.start_soon(self._enforce_deadline)
                try:
                    if await self._prepare() and await self._start(root):
                        await enter_lifespan(self.app, self._parts, self.scope)
                        task_status.started()
                        self._move(Lifecycle.SERVING)
                        await self._run_devices()
                except Exception as error:
                    failure = error
                finally:
                    await self._shut_down()
                    await close(self._parts, self._teardown_deadline)
                    root.cancel_scope.cancel()  # the deadline and the embedded broker
        finally:
            self._heap.release()
            self._move(Lifecycle.STOPPED)
        if failure is not None:
            raise failure
        self._raise_outcome()

    async def _prepare(self) -> bool:
        """Settings, adapters, start-up hooks, deferred options, shared state (see
        :mod:`triolette.runtime.lifecycle`); false when :meth:`abandon` cut it short."""
        with self._preparing:
            await open_parts(self.app, self._parts, self.scope)
            specs = expand(self.app.registry.registrations, self.app.settings)
            self.topics = self.mqtt.topics = _with_root(self.app.topics, specs)
            self._plan(specs)
        return not self._preparing.cancelled_caught

    def _teardown_deadline(self) -> float:
        assert self.stop_deadline is not None
        return self.stop_deadline

    async def _start(self, root: trio.Nursery) -> bool:
        """Start the actors; false when a standby was asked to stop before its turn came."""
        broker = self.app.embedded_broker
        if broker is not None:
            await root.start(broker.run)
            self.mqtt.transport = self.app.transport or self._embedded_transport()
        if self.lease is not None and not await root.start(self.lease.run, self._stored_keys()):
            return False
        if self.persistence is not None:
            self.persistence.declare(contracts_of(self.specs))
            await root.start(self.persistence.run, self._stored_keys())
            self._up.append(self.persistence)
            self._carried = carry_over.decode(self.persistence.view(carry_over.KEY))
            self.mqtt.carry_over(self._carried)
        await root.start(self.mqtt.run)
        self._up.append(self.mqtt)
        return True

    def _stored_keys(self) -> list[str]:
        """The keys this app keeps in its store: its devices' and the undelivered messages'."""
        keys = [*(spec.name for spec in self.specs if spec.uses_store), carry_over.KEY]
        return keys + discovery.stored_keys(self.app)

    def _lease_lost(self, error: LeaseLostError) -> None:
        """Another bridge may own the devices now: stop them and write nothing more."""
        self.abandon()

    def _backend_failed(self, keys: list[str], error: BaseException) -> None:
        if isinstance(error, LeaseLostError) and self.lease is not None:
            self.lease.lose(error)  # the store refused a write: a newer lease holds a device
        self.reports.backend_failed(keys, error)

    async def _run_devices(self) -> None:
        companions: list[Companion] = [m.run for m in self._metronomes.values()]
        companions.append(self._heap.keep_frozen)  # the collector's full walks held the loop
        companions.append(keep_switches_short)  # the loop gets the GIL back sooner
        if self.app.log_statistics_every is not None:
            companions.append(self._log_statistics)
        check_device_needs(self.specs, self.scope)
        companions.extend(discovery.companions(self))  # Home Assistant's configs, if on
        devices = {spec.name: spec for spec in self.specs}
        for spec in wire_streams(devices, self.scope, self.mqtt.availability):
            self.health.stream_state(spec.name, "ok", 0)
        self.health_checks.add_adapters(self.app.registry.adapters, self.specs, self.scope)
        if self.health_checks:
            companions.insert(0, self.health_checks.run)
        await self.supervisor.run(companions)

    async def _shut_down(self) -> None:
        """The shutdown, in order, within one deadline counted from the request.

        1. The devices stop: the supervisor's scope is cancelled (already, when a shutdown
           was requested); each device hands its final snapshot over as it stops.
        2. The final flush: the persistence actor writes what is pending. Errors of the
           flush still reach the error topic, as MQTT is still up.
        3. The MQTT goodbye: ``offline`` is published and the connection closed. QoS 1
           messages it could not deliver are kept in the store for the next start, and the
           persistence actor writes them and closes the backend.
        4. The embedded broker stops, when :meth:`serve` leaves its nursery.

        At the deadline (or a second signal) :meth:`abandon` ends every wait; the devices
        whose state is not known to be durable are noted as unsaved.
        """
        self.shutdown()
        self.reports.tell_counted()
        persistence = self.persistence if self.persistence in self._up else None
        if persistence is not None:
            await persistence.wait_durable(self._time_left())  # the final snapshots
        if self.mqtt in self._up:
            self.mqtt.close()
            with trio.move_on_after(self._time_left(), shield=True):
                await self.mqtt.stopped.wait()
            if not self.mqtt.stopped.is_set():
                self.mqtt.abandon()
        if persistence is not None:
            self._keep_undelivered(persistence)
            persistence.close()
            if not await persistence.wait_stopped(self._time_left()):
                self.abandon()
        if persistence is not None:  # empty after a clean stop
            for key in persistence.not_durable():
                self.reports.unsaved.setdefault(key, "not durable when the shutdown ended")

    def _keep_undelivered(self, persistence: PersistenceActor) -> None:
        """Write the QoS 1 messages MQTT could not deliver to the store (or clear the last)."""
        undelivered = self.mqtt.undelivered
        if (undelivered or self._carried) and not persistence.stopped.is_set():
            with persistence.client(carry_over.KEY) as client:
                client.submit(carry_over.KEY, carry_over.encode(undelivered))
            if undelivered:
                logger.warning(
                    "kept %d undelivered QoS 1 messages in the store for the next start",
                    len(undelivered),
                )

    def _raise_outcome(self) -> None:
        if self.lease is not None and self.lease.lost is not None:
            raise self.lease.lost  # the reason the devices stopped and their state was dropped
        unsaved = self.reports.unsaved
        if unsaved:  # lost state outranks the reason the app stopped
            raise FlushIncompleteError(list(unsaved), "; ".join(sorted(set(unsaved.values()))))
        if self.supervisor.escalation is not None:
            raise self.supervisor.escalation

    def _time_left(self) -> float:
        assert self.stop_deadline is not None
        return max(0.0, self.stop_deadline - trio.current_time())

    async def _enforce_deadline(self) -> None:
        """At the shutdown deadline, stop waiting for devices, the flush and the broker."""
        await self.wait_for(Lifecycle.STOPPING)
        assert self.stop_deadline is not None
        await trio.sleep_until(self.stop_deadline)
        logger.error(
            "the shutdown deadline (%g s) passed: stopping without waiting any longer",
            self.app.shutdown_timeout,
        )
        self.abandon()

    def _asyncio_loop(self) -> contextlib.AbstractAsyncContextManager[Any]:
        """The app's trio-asyncio loop, opened only when some registration needs one."""
        if self.app.registry.needs_asyncio or self.app.embedded_broker is not None:
            from triolette.runtime.aio import open_loop  # importing trio-asyncio patches asyncio

            return open_loop()
        return contextlib.nullcontext()

    def _embedded_transport(self) -> Transport:
        """A connection to the embedded broker, and a line saying how to watch it."""
        app, broker = self.app, self.app.embedded_broker
        assert broker is not None
        logger.info(
            "embedded MQTT broker at %s; watch what %s publishes with: %s  (or %s)",
            broker.url,
            app.name,
            watch_command(broker.port, app.topics.prefix, host=broker.host),
            broker.subscribe_hint(app.topics.prefix),
        )
        host = "127.0.0.1" if broker.host in ("0.0.0.0", "::", "") else broker.host
        return PahoTransport(host, broker.port, client_id=app.name, keepalive=30)

    def _actor_for(self, spec: DeviceSpec) -> DeviceActor:
        return _ACTORS[spec.kind](
            spec,
            persistence=self.persistence,
            mqtt=self.mqtt,
            hooks=self,
            inbox=self._inboxes.get(spec.name),
            metronome=self._metronomes.get(spec.interval) if spec.interval else None,
            scope=device_scope(spec, self.scope),
            **self.scheduling.parts_for(spec),
        )

    def _open_inbox(self, device: str) -> trio.MemoryReceiveChannel[Message]:
        send, receive = trio.open_memory_channel[Message](16)

        def deliver(message: Message) -> bool:
            try:
                send.send_nowait(message)
            except trio.WouldBlock:
                return False
            return True

        self.mqtt.route(device, deliver)
        return receive


async def _nothing_to_flush(key: str) -> None:
    return None


def _with_root(topics: Topics, specs: list[DeviceSpec]) -> Topics:
    """``topics`` with the root entity among ``specs`` (its topics have no device level)."""
    return attrs.evolve(topics, root=next((s.name for s in specs if s.is_root), None))


_ACTORS: dict[DeviceKind, type[DeviceActor]] = {**ACTORS, DeviceKind.STREAM: StreamActor}
