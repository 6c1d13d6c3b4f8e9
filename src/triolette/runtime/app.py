"""App: the declared devices, and the composition root that runs them.

``serve()`` starts, in order: the persistence actor (which loads every device's state in one
batch), the MQTT actor, then the device supervisor. Shutdown is cancellation of the supervisor
only. Each device actor hands its final snapshot over as it stops; then the runtime closes its
own mailbox handles, and the persistence actor (which outside cancellation cannot reach) writes
what is pending, closes the backend and ends. ``serve()`` returns once that happened, or raises
:class:`~triolette.FlushIncompleteError` naming the devices whose state is not durable.
"""

from __future__ import annotations

import contextlib
import logging
import math
import os
import signal
from collections.abc import Awaitable, Callable
from typing import Any, TypeVar

import trio

from triolette.actors.device import COMMAND, DEVICE, TELEMETRY, DeviceActor, DeviceSpec
from triolette.actors.metronome import Metronome
from triolette.actors.mqtt import LogTransport, MqttActor, Transport
from triolette.actors.paho import PahoTransport
from triolette.actors.persistence import PersistenceActor
from triolette.core.backoff import Backoff
from triolette.core.errors import (
    ConnectError,
    FlushIncompleteError,
    HandlerTimeoutError,
    HeartbeatMissedError,
    RegistrationError,
    RestartLimitError,
    StoreLockedError,
)
from triolette.core.messages import Message
from triolette.core.policies import PersistPolicy
from triolette.core.repeats import RepeatFilter
from triolette.core.topics import Topics, check_name
from triolette.runtime.adapters import Adapters
from triolette.runtime.embedded import EmbeddedBroker
from triolette.runtime.health import AppStatistics, heartbeat_body, statistics_line
from triolette.runtime.injection import bind
from triolette.runtime.supervisor import (
    RESTART_TYPES,
    TRANSIENT,
    RestartLimit,
    Supervisor,
)
from triolette.stores.protocol import Store

logger = logging.getLogger("triolette.app")

STUCK_GRACE = 1.0
"""Seconds :meth:`App.run` waits, after abandoning a shutdown, before it exits regardless."""

F = TypeVar("F", bound=Callable[..., Any])

_NEW, _RUNNING, _STOPPED = "new", "running", "stopped"


class App:
    """An IoT-to-MQTT bridge: devices declared with decorators, run by :meth:`serve`.

    ``store`` is the backend for device state (``None``: devices cannot take a
    ``DeviceStore``). ``transport`` is the broker connection; without one, publishes are only
    logged. ``shutdown_timeout`` is the one deadline of a shutdown, counted from the request
    (a signal, :meth:`shutdown`, ``cycles`` done, an escalation): the devices stopping, the
    final flush and the MQTT goodbye all fit in it. 8 s by default: inside the 10 s a
    container gets between SIGTERM and SIGKILL.
    """

    def __init__(
        self,
        name: str,
        version: str = "0.0.0",
        *,
        store: Store | None = None,
        transport: Transport | None = None,
        topic_prefix: str | None = None,
        shutdown_timeout: float = 8.0,
        publish_timeout: float = 5.0,
        restart_backoff: Backoff | None = None,
        restart_limit: RestartLimit | None = None,
        mailbox_size: int = 256,
        log_statistics_every: float | None = 300.0,
        heartbeat_every: float | None = 60.0,
        reconnect_backoff: Backoff | None = None,
        embedded_broker: EmbeddedBroker | None = None,
    ) -> None:
        self.name = check_name(name, "app name")
        self.version = version
        self.store = store
        self.transport = transport
        self.topics = Topics(check_name(topic_prefix or name, "topic prefix"))
        self.shutdown_timeout = shutdown_timeout
        self.publish_timeout = publish_timeout
        self.restart_backoff = restart_backoff or Backoff()
        self.restart_limit = restart_limit or RestartLimit()
        self.mailbox_size = mailbox_size
        self.log_statistics_every = log_statistics_every
        self.heartbeat_every = heartbeat_every
        self.embedded_broker = embedded_broker
        self.reconnect_backoff = reconnect_backoff or Backoff(initial=0.5, maximum=30, jitter=0.5)
        self._specs: dict[str, DeviceSpec] = {}
        self._adapters = Adapters()
        self._state = _NEW
        self._shutdown_requested = False
        self._supervisor: Supervisor | None = None
        self._persistence: PersistenceActor | None = None
        self._mqtt: MqttActor | None = None
        self._unsaved: dict[str, str] = {}
        self._cycles: dict[str, int] = {}
        self._cycle_limit: int | None = None
        self._cycle_event: trio.Event | None = None
        self._devices_returned = trio.Event()
        self._repeats = RepeatFilter()
        self._skipped: dict[str, int] = {}
        self._watchdog_firings = 0
        self._serving = trio.Event()
        self._started_at = 0.0
        self._stop_deadline: float | None = None
        self._stopping = trio.Event()
        self._abandoned = trio.Event()

    # -- declaring devices -------------------------------------------------------------------

    def telemetry(
        self,
        name: str,
        *,
        interval: float,
        persist: PersistPolicy | None = None,
        restart: str = TRANSIENT,
        timeout: float | None = None,
        asyncio: bool = False,
    ) -> Callable[[F], F]:
        """Declare a polled device: the handler runs every ``interval`` seconds.

        Its returned dict is published as the device state (``None``: nothing this cycle);
        then ``persist`` decides whether the store is saved. Exceptions are reported and the
        loop goes on. With ``timeout``, a cycle still running after that many seconds (a hung
        sensor read) is cancelled and reported as a :class:`~triolette.HandlerTimeoutError`.
        ``restart`` is the restart type (see :meth:`device`). With ``asyncio=True`` the
        handler is asyncio code, run in the app's trio-asyncio loop.
        """
        if not (isinstance(interval, int | float) and 0 < interval < math.inf):
            raise RegistrationError(f"{name}: interval must be a positive number of seconds")
        return self._decorator(
            TELEMETRY, name, float(interval), persist, restart, timeout, asyncio=asyncio
        )

    def device(
        self,
        name: str,
        *,
        persist: PersistPolicy | None = None,
        restart: str = TRANSIENT,
        heartbeat: float | None = None,
        asyncio: bool = False,
    ) -> Callable[[F], F]:
        """Declare a device that runs its own loop; restarted with backoff if it crashes.

        With ``persist``, the policy is asked after each store mutation and each
        ``ctx.publish_state``. Inbound commands arrive through ``ctx.commands()``.
        ``restart``: ``"transient"`` (restarted after a crash, done after a normal return),
        ``"permanent"`` (restarted after either) or ``"temporary"`` (never restarted).
        With ``heartbeat``, a handler that goes that many seconds without calling
        ``ctx.heartbeat()`` is cancelled and counts as crashed (``HeartbeatMissedError``).
        With ``asyncio=True`` the handler is asyncio code (it may await ``asyncio.sleep`` or
        an asyncio library), run in the app's trio-asyncio loop.
        """
        return self._decorator(
            DEVICE, name, None, persist, restart, heartbeat=heartbeat, asyncio=asyncio
        )

    def command(
        self,
        name: str,
        *,
        persist: PersistPolicy | None = None,
        restart: str = TRANSIENT,
        timeout: float | None = None,
        asyncio: bool = False,
    ) -> Callable[[F], F]:
        """Declare a device driven by messages on ``{prefix}/{name}/set``.

        The handler gets each message (``payload: str``, ``topic: str``); a returned dict is
        published as state. Exceptions are reported and the next message is handled; so is a
        handler still running after ``timeout`` seconds, which is cancelled. ``asyncio=True``:
        the handler is asyncio code.
        """
        return self._decorator(COMMAND, name, None, persist, restart, timeout, asyncio=asyncio)

    def adapter(self, port: Any, factory: Callable[[], Any], *, asyncio: bool = False) -> None:
        """Register a hardware adapter: handlers annotated with ``port`` get the instance.

        ``factory()`` builds it when the app starts. If it is an async context manager it is
        entered before any device starts and exited after every device stopped; with
        ``asyncio=True`` it is an asyncio one, entered and used in the app's trio-asyncio loop
        (from ``asyncio=True`` handlers). Register an adapter before the devices that take it.
        """
        if self._state != _NEW:
            raise RegistrationError(f"adapter {port!r}: adapters must be registered before run")
        self._adapters.register(port, factory, asyncio=asyncio)

    @property
    def device_names(self) -> list[str]:
        return list(self._specs)

    def _decorator(
        self,
        kind: str,
        name: str,
        interval: float | None,
        persist: PersistPolicy | None,
        restart: str,
        timeout: float | None = None,
        *,
        heartbeat: float | None = None,
        asyncio: bool = False,
    ) -> Callable[[F], F]:
        check_name(name)
        for option, value in (("timeout", timeout), ("heartbeat", heartbeat)):
            if value is not None and not (isinstance(value, int | float) and value > 0):
                raise RegistrationError(f"{name}: {option} must be a positive number of seconds")
        if name in self._specs:
            raise RegistrationError(f"{name}: a device of that name is already registered")
        if restart not in RESTART_TYPES:
            raise RegistrationError(
                f"{name}: restart={restart!r} is not one of {', '.join(RESTART_TYPES)}"
            )
        if persist is not None:
            if isinstance(persist, type) or not callable(getattr(persist, "should_save", None)):
                hint = f" (did you mean {persist.__name__}()?)" if isinstance(persist, type) else ""
                raise RegistrationError(f"{name}: persist={persist!r} is not a save policy{hint}")
            if self.store is None:
                raise RegistrationError(f"{name}: persist= needs a store; pass App(store=...)")

        def register(function: F) -> F:
            if self._state != _NEW:
                raise RegistrationError(f"{name}: devices must be declared before the app runs")
            if name in self._specs:  # two decorators made before either was applied
                raise RegistrationError(f"{name}: a device of that name is already registered")
            call, uses_store = bind(name, kind, function, self._adapters.providers())
            if asyncio:
                from triolette.runtime.aio import through_asyncio  # only apps that need it

                call = through_asyncio(call)
            if uses_store and self.store is None:
                raise RegistrationError(
                    f"{name}: the handler takes a DeviceStore but the App has no store"
                )
            if kind == TELEMETRY:
                self._cycles[name] = 0
            self._specs[name] = DeviceSpec(
                name=name,
                kind=kind,
                call=call,
                interval=interval,
                persist=persist,
                uses_store=uses_store,
                accepts_commands=kind in (DEVICE, COMMAND),
                restart=restart,
                timeout=None if timeout is None else float(timeout),
                heartbeat=None if heartbeat is None else float(heartbeat),
                asyncio=asyncio,
            )
            return function

        return register

    # -- running -----------------------------------------------------------------------------

    async def serve(
        self,
        *,
        cycles: int | None = None,
        task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED,
    ) -> None:
        """Run every device until :meth:`shutdown` (or cancellation), then flush and return.

        With ``cycles``, each telemetry device runs that many cycles and then waits; once all
        have, the app shuts down by itself (``cycles=1``: poll every sensor once and exit).

        Raises :class:`~triolette.FlushIncompleteError` naming the devices whose final state
        is not durable (the backend kept failing, or ``shutdown_timeout`` passed). Errors while
        starting (a store locked by another process, a broker that refuses us) propagate.
        An App serves once.
        """
        if self._state != _NEW:
            raise RuntimeError(f"App {self.name!r} has already run; an App serves once")
        if cycles is not None and cycles < 1:
            raise ValueError(f"cycles must be at least 1, got {cycles}")
        self._state = _RUNNING
        self._started_at = trio.current_time()
        self._cycle_limit = cycles
        specs = list(self._specs.values())
        mqtt = self._mqtt = MqttActor(
            self.transport or LogTransport(),
            self.topics,
            publish_timeout=self.publish_timeout,
            reconnect=self.reconnect_backoff,
            heartbeat=self._heartbeat,
            heartbeat_every=self.heartbeat_every,
        )
        persistence = self._persistence = (
            PersistenceActor(
                self.store,
                mailbox_size=self.mailbox_size,
                on_error=self._backend_failed,
                on_recovered=self._backend_recovered,
            )
            if self.store is not None
            else None
        )
        inboxes = {
            spec.name: self._open_inbox(mqtt, spec.name) for spec in specs if spec.accepts_commands
        }
        metronomes = {
            spec.interval: Metronome(spec.interval) for spec in specs if spec.interval is not None
        }
        supervisor = self._supervisor = Supervisor(
            specs,
            lambda spec: DeviceActor(
                spec,
                persistence=persistence,
                mqtt=mqtt,
                hooks=self,
                inbox=inboxes.get(spec.name),
                metronome=metronomes.get(spec.interval) if spec.interval else None,
            ),
            flush=persistence.flush if persistence else _nothing_to_flush,
            report=self.report,
            recovered=self.recovered,
            backoff=self.restart_backoff,
            limit=self.restart_limit,
            flush_timeout=self.shutdown_timeout,
            all_returned=self._devices_returned,
        )
        if self._shutdown_requested:
            supervisor.scope.cancel()
        failure: Exception | None = None
        mqtt_started = persistence_started = False
        deadline = trio.CancelScope()
        try:
            async with self._asyncio_loop(), trio.open_nursery() as root:
                root.start_soon(_run_in, deadline, self._enforce_deadline)
                embedded = trio.CancelScope()
                try:
                    if self.embedded_broker is not None:
                        await root.start(_run_in, embedded, self.embedded_broker.run)
                        mqtt.transport = self.transport or self._embedded_transport()
                    if persistence is not None:
                        keys = [spec.name for spec in specs if spec.uses_store]
                        await root.start(persistence.run, keys)
                        persistence_started = True
                    await root.start(mqtt.run)
                    mqtt_started = True
                    task_status.started()
                    self._serving.set()
                    companions = [metronome.run for metronome in metronomes.values()]
                    if self.log_statistics_every is not None:
                        companions.append(self._log_statistics)
                    async with contextlib.AsyncExitStack() as adapters:
                        await self._adapters.enter(adapters)
                        await supervisor.run(companions)
                except Exception as error:
                    failure = error
                finally:
                    self._begin_stop()
                    await self._finish(
                        persistence if persistence_started else None,
                        mqtt if mqtt_started else None,
                    )
                    deadline.cancel()
                    embedded.cancel()  # after the MQTT actor said goodbye through it
        finally:
            self._state = _STOPPED
        if failure is not None:
            raise failure
        if self._unsaved:  # lost state outranks the reason the app stopped
            raise FlushIncompleteError(
                list(self._unsaved), "; ".join(sorted(set(self._unsaved.values())))
            )
        if supervisor.escalation is not None:
            raise supervisor.escalation

    def _asyncio_loop(self) -> contextlib.AbstractAsyncContextManager[Any]:
        """The app's trio-asyncio loop, opened only when some registration needs one."""
        if (
            any(spec.asyncio for spec in self._specs.values())
            or self._adapters.need_asyncio
            or self.embedded_broker is not None
        ):
            from triolette.runtime.aio import open_loop  # importing trio-asyncio patches asyncio

            return open_loop()
        return contextlib.nullcontext()

    def _embedded_transport(self) -> Transport:
        """A connection to the embedded broker, and a line saying how to watch it."""
        broker = self.embedded_broker
        assert broker is not None
        logger.info(
            "embedded MQTT broker at %s; watch what %s publishes with: "
            "triolette watch --port %d '%s/#'  (or %s)",
            broker.url,
            self.name,
            broker.port,
            self.topics.prefix,
            broker.subscribe_hint(self.topics.prefix),
        )
        host = "127.0.0.1" if broker.host in ("0.0.0.0", "::", "") else broker.host
        return PahoTransport(host, broker.port, client_id=self.name, keepalive=30)

    def shutdown(self) -> None:
        """Start a graceful shutdown: stop every device, then flush. Safe to call any time.

        The ``shutdown_timeout`` deadline starts now (or when serving starts, if not yet).
        """
        self._shutdown_requested = True
        if self._supervisor is not None:
            self._begin_stop()
            self._supervisor.scope.cancel()

    def _begin_stop(self) -> None:
        """Start the shutdown deadline, once."""
        if self._stop_deadline is None:
            self._stop_deadline = trio.current_time() + self.shutdown_timeout
            self._stopping.set()

    def _time_left(self) -> float:
        assert self._stop_deadline is not None
        return max(0.0, self._stop_deadline - trio.current_time())

    async def _enforce_deadline(self) -> None:
        """At the shutdown deadline, stop waiting for devices, the flush and the broker."""
        await self._stopping.wait()
        assert self._stop_deadline is not None
        await trio.sleep_until(self._stop_deadline)
        logger.error(
            "the shutdown deadline (%g s) passed: stopping without waiting any longer",
            self.shutdown_timeout,
        )
        self._abandon()

    def run(self) -> None:
        """Serve in a new trio run until SIGINT or SIGTERM, then shut down gracefully.

        A second signal stops at once without waiting for the flush: a write already in a
        worker thread is not interrupted, but nothing waits for it either, and every device
        whose state is not known to be durable is reported by name.

        Exit status: 0 after a clean stop, 1 if some device's state could not be saved, 2 if
        the restart limit stopped the app (the message names the device), 3 if at start-up the
        broker refused us for good (a host name that does not resolve, bad credentials) or
        another process holds the store's lock.
        """
        try:
            trio.run(self._serve_until_signalled)
        except FlushIncompleteError as error:
            logger.critical("%s", error)
            raise SystemExit(1) from error
        except RestartLimitError as error:
            logger.critical("%s", error)
            raise SystemExit(2) from error
        except (ConnectError, StoreLockedError) as error:  # retrying would not help
            logger.critical("%s", error)
            raise SystemExit(3) from error

    async def _serve_until_signalled(self) -> None:
        failure: Exception | None = None
        with trio.open_signal_receiver(signal.SIGINT, signal.SIGTERM) as signals:
            async with trio.open_nursery() as nursery:
                nursery.start_soon(self._watch_signals, signals)
                nursery.start_soon(self._exit_if_stuck)
                try:
                    await self.serve()
                except Exception as error:  # raised below, outside the nursery: not grouped
                    failure = error
                nursery.cancel_scope.cancel()
        if failure is not None:
            raise failure

    async def _exit_if_stuck(self) -> None:
        """Once the shutdown was abandoned, end the process if serving cannot end.

        A device blocked in a call that cannot be cancelled (a worker thread reading a hung
        sensor) keeps the trio run open forever. After :data:`STUCK_GRACE` seconds this logs
        which devices are stuck, waits (as long again, at most) for a backend write already
        under way to finish, and exits with status 1 like a power cut would: the built-in
        stores replace state atomically, so what is on disk loads.
        """
        await self._abandoned.wait()
        await trio.sleep(STUCK_GRACE)
        stuck = sorted(self._supervisor.active) if self._supervisor else []
        logger.critical(
            "shutdown could not finish: %s did not stop (blocked in a call that cannot be "
            "cancelled?); exiting without them",
            ", ".join(stuck) or "a task",
        )
        if self._persistence is not None:
            await trio.to_thread.run_sync(
                self._persistence.backend_idle.wait, STUCK_GRACE, abandon_on_cancel=True
            )
        logging.shutdown()
        os._exit(1)

    async def _watch_signals(self, signals: Any) -> None:
        count = 0
        async for signum in signals:
            count += 1
            if count == 1:
                logger.info("%s: stopping (flushing device state)", signal.Signals(signum).name)
                self.shutdown()
            else:
                logger.warning("second signal: stopping without waiting for the flush")
                self._abandon()

    def statistics(self) -> AppStatistics:
        return AppStatistics(
            persistence=self._persistence.statistics() if self._persistence else None,
            mqtt=self._mqtt.statistics() if self._mqtt else None,
            cycles=dict(self._cycles),
            restarts=dict(self._supervisor.restarts) if self._supervisor else {},
            errors_repeated=self._repeats.suppressed,
            crashes=dict(self._supervisor.crashes) if self._supervisor else {},
            watchdog_firings=self._watchdog_firings,
            skipped_ticks=dict(self._skipped),
            failed=dict(self._supervisor.failed) if self._supervisor else {},
        )

    # -- what actors tell the app (the device Hooks) -----------------------------------------

    @property
    def shutdown_requested(self) -> bool:
        escalated = self._supervisor is not None and self._supervisor.escalation is not None
        return self._shutdown_requested or escalated

    def cycle_done(self, device: str) -> bool:
        count = self._cycles[device] = self._cycles[device] + 1
        if self._cycle_event is not None:  # only when someone waits: this runs every cycle
            self._cycle_event.set()
            self._cycle_event = None
        limit = self._cycle_limit
        if limit is None:
            return True
        if count == limit and all(done >= limit for done in self._cycles.values()):
            self.shutdown()
        return count < limit

    async def wait_for_cycles(self, cycles: int) -> None:
        """Wait until every telemetry device has completed ``cycles`` cycles."""
        while any(count < cycles for count in self._cycles.values()):
            if self._cycle_event is None:
                self._cycle_event = trio.Event()
            await self._cycle_event.wait()

    async def wait_for_devices_to_return(self) -> None:
        """Wait until every ``@app.device`` handler has returned (forever if there are none)."""
        await self._devices_returned.wait()

    async def wait_until_serving(self) -> None:
        """Wait until :meth:`serve` has started every actor (state loaded, first connection
        attempt made: devices run while the broker is away)."""
        await self._serving.wait()

    async def wait_until_connected(self) -> None:
        """Wait until the app is serving, connected to the broker and subscribed to its
        command topics (again after each reconnect)."""
        await self._serving.wait()
        assert self._mqtt is not None
        await self._mqtt.wait_connected()

    @property
    def has_telemetry(self) -> bool:
        return bool(self._cycles)

    def _heartbeat(self) -> bytes:
        uptime = trio.current_time() - self._started_at
        return heartbeat_body(self.statistics(), self.version, uptime, len(self._specs))

    async def _log_statistics(
        self, *, task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED
    ) -> None:
        """Every ``log_statistics_every`` seconds, one INFO line an operator can grep for."""
        assert self.log_statistics_every is not None
        task_status.started()
        while True:
            await trio.sleep(self.log_statistics_every)
            logger.info("%s", statistics_line(self.statistics()))

    def report(self, device: str | None, error: BaseException) -> None:
        """Log ``error`` and publish it on the error topics; a repeat is only counted.

        A repeat is the same error (type and message) as the last one of ``device``, with no
        clean cycle in between. It is logged at DEBUG, without its traceback.
        """
        if isinstance(error, HandlerTimeoutError | HeartbeatMissedError):
            self._watchdog_firings += 1
        if not self._repeats.is_new(device, error):
            logger.debug("%s: %s again (%s)", device, type(error).__name__, error)
            return
        logger.error("%s: %s: %s", device or self.name, type(error).__name__, error, exc_info=error)
        if self._mqtt is not None:
            self._mqtt.report_error(device, error)

    def recovered(self, device: str) -> None:
        self._repeats.clear(device)

    def ticks_skipped(self, device: str, count: int) -> None:
        self._skipped[device] = self._skipped.get(device, 0) + count

    def unsaved(self, device: str, error: BaseException) -> None:
        self._unsaved[device] = str(error) or type(error).__name__
        self.report(device, error)

    # -- internals ---------------------------------------------------------------------------

    def _backend_recovered(self) -> None:
        self._repeats.clear(None)  # the next backend error is news again

    def _backend_failed(self, keys: list[str], error: BaseException) -> None:
        # The persistence actor logs each failure with its keys and retry delay itself.
        if self._repeats.is_new(None, error) and self._mqtt is not None:
            self._mqtt.report_error(None, error)

    def _open_inbox(self, mqtt: MqttActor, device: str) -> trio.MemoryReceiveChannel[Message]:
        send, receive = trio.open_memory_channel[Message](16)

        def deliver(message: Message) -> bool:
            try:
                send.send_nowait(message)
            except trio.WouldBlock:
                return False
            return True

        mqtt.route(device, deliver)
        return receive

    async def _finish(self, persistence: PersistenceActor | None, mqtt: MqttActor | None) -> None:
        """After the devices: close our handles and wait, within the deadline, for the actors."""
        # Persistence first, so errors of the final flush still reach the error topic.
        if persistence is not None:
            persistence.close()
        flushed = persistence is None or await persistence.wait_stopped(self._time_left())
        if not flushed:
            self._abandon()
        if mqtt is not None:  # None: it never started
            mqtt.close()
            with trio.move_on_after(self._time_left(), shield=True):
                await mqtt.stopped.wait()
            if not mqtt.stopped.is_set():
                mqtt.abandon()
        if persistence is not None:  # empty after a clean stop
            for key in persistence.not_durable():
                self._unsaved.setdefault(key, "not durable when the shutdown ended")

    def _abandon(self) -> None:
        """Stop waiting for the flush (deadline passed, or a second signal). Once."""
        if self._abandoned.is_set():
            return
        self._abandoned.set()
        persistence = self._persistence
        if persistence is not None and not persistence.stopped.is_set():
            senders = persistence.statistics().mailbox_senders
            persistence.abandon()
            if senders:
                logger.error(
                    "shutdown deadline passed with %d persistence mailbox handle(s) still open "
                    "(a leaked handle or a hung backend)",
                    senders,
                )
        if self._mqtt is not None:
            self._mqtt.abandon()
        if self._supervisor is not None:
            self._supervisor.scope.cancel()


async def _run_in(
    scope: trio.CancelScope,
    task: Callable[..., Awaitable[None]],
    *,
    task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED,
) -> None:
    """Run ``task`` inside ``scope``, so its owner can stop it alone; passes ``started`` on."""
    with scope:
        if task_status is trio.TASK_STATUS_IGNORED:
            await task()
        else:
            await task(task_status=task_status)


async def _nothing_to_flush(key: str) -> None:
    return None
