"""App: what a bridge declares (options, devices, adapters), and the handle that serves it.

The devices are declared in a :class:`~triolette.runtime.registry.Registry` (plain data);
each :meth:`App.serve` builds a fresh :class:`~triolette.runtime.running.RunningApp` that owns
the actors and their lifecycle; :meth:`App.run` hands the process to
:func:`~triolette.runtime.process.run_process` (signals, exit status).
"""

from __future__ import annotations

import copy
import math
from collections.abc import Callable, Collection, Sequence
from typing import Any, TypeVar

import trio

from triolette.actors.spec import Publish
from triolette.actors.transport import Transport
from triolette.core.backoff import RECONNECT, Backoff
from triolette.core.kinds import DeviceKind, Restart
from triolette.core.policies import PersistPolicy
from triolette.core.topics import Topics, check_name
from triolette.runtime.embedded import EmbeddedBroker
from triolette.runtime.health import AppStatistics
from triolette.runtime.registry import Registry
from triolette.runtime.running import Lifecycle, RunningApp
from triolette.runtime.supervisor import RestartLimit
from triolette.stores.protocol import Store

F = TypeVar("F", bound=Callable[..., Any])


class App:
    """An IoT-to-MQTT bridge: devices declared with decorators, run by :meth:`serve`.

    ``store`` is the backend for device state (``None``: devices cannot take a
    ``DeviceStore``). ``transport`` is the broker connection; without one, publishes are only
    logged. ``shutdown_timeout`` is the one deadline of a shutdown, counted from the request
    (a signal, :meth:`shutdown`, ``cycles`` done, an escalation): the devices stopping, the
    final flush and the MQTT goodbye all fit in it. 8 s by default: inside the 10 s a
    container gets between SIGTERM and SIGKILL. ``publish_timeout`` bounds how long a publish
    waits for the broker's confirmation; a broker that leaves a QoS 1 message unconfirmed for
    longer is treated as lost (one WARNING, then the reconnect path). ``outbox_size`` bounds
    each of the two outbound queues (QoS 0, QoS 1) that hold messages while the broker is away.
    ``retained_commands`` names the devices that take a command the broker kept as retained;
    the others ignore such a command (it would run again on every start).

    With a shared store (PostgreSQL, Redis) the app holds a lease on its devices while it
    serves, ``lease_seconds`` long (renewed every third): a second app claiming them refuses
    to start (:class:`~triolette.LeaseHeldError`), unless it is a ``standby``, which waits
    and takes over once the holder's lease ends. See the multi-host guide.
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
        outbox_size: int = 256,
        log_statistics_every: float | None = 300.0,
        heartbeat_every: float | None = 60.0,
        reconnect_backoff: Backoff | None = None,
        embedded_broker: EmbeddedBroker | None = None,
        retained_commands: Collection[str] = (),
        standby: bool = False,
        lease_seconds: float = 10.0,
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
        self.outbox_size = outbox_size
        self.log_statistics_every = log_statistics_every
        self.heartbeat_every = heartbeat_every
        self.embedded_broker = embedded_broker
        self.retained_commands = frozenset(retained_commands)
        """Devices that take commands the broker kept (retained); others ignore them."""
        self.reconnect_backoff = reconnect_backoff or RECONNECT
        if not (isinstance(lease_seconds, int | float) and 0 < lease_seconds < math.inf):
            raise ValueError(f"lease_seconds must be a positive number, got {lease_seconds!r}")
        self.standby = standby
        """With a shared store: wait for the devices' lease instead of refusing to start."""
        self.lease_seconds = lease_seconds
        """With a shared store: the length of the devices' lease (renewed every third)."""
        self.registry = Registry()
        """The declared devices and adapters."""
        self._running: RunningApp | None = None
        self._shutdown_pending = False
        self._began: trio.Event | None = None

    def __repr__(self) -> str:
        return f"<App {self.name!r}: {len(self.registry.specs)} devices>"

    # -- declaring devices -------------------------------------------------------------------

    def telemetry(
        self,
        name: str,
        *,
        interval: float,
        persist: PersistPolicy | None = None,
        restart: Restart = "transient",
        timeout: float | None = None,
        asyncio: bool = False,
        publish: Publish = "now",
    ) -> Callable[[F], F]:
        """Declare a polled device: the handler runs every ``interval`` seconds.

        Its returned dict is published as the device state (``None``: nothing this cycle);
        then ``persist`` decides whether the store is saved. Exceptions are reported and the
        loop goes on. With ``timeout``, a cycle still running after that many seconds (a hung
        sensor read) is cancelled and reported as a :class:`~triolette.HandlerTimeoutError`.
        ``restart`` is the restart type (see :meth:`device`). With ``asyncio=True`` the
        handler is asyncio code, run in the app's trio-asyncio loop.

        ``publish="durable"`` publishes a state only once the batch holding the store's
        changes of its cycle is durable, so a dashboard never shows a count that a crash or
        a power cut can take back; the store is then saved every cycle that changed it
        (``persist`` must be left out or be ``SaveOnChange()``) and the handler must take the
        store. The default ``"now"`` queues the state as soon as the handler returned.
        """
        return self.registry.declare(
            DeviceKind.TELEMETRY,
            name,
            has_store=self.store is not None,
            interval=interval,
            persist=persist,
            restart=restart,
            timeout=timeout,
            asyncio=asyncio,
            publish=publish,
        )

    def device(
        self,
        name: str,
        *,
        persist: PersistPolicy | None = None,
        restart: Restart = "transient",
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
        return self.registry.declare(
            DeviceKind.DEVICE,
            name,
            has_store=self.store is not None,
            persist=persist,
            restart=restart,
            heartbeat=heartbeat,
            asyncio=asyncio,
        )

    def command(
        self,
        name: str,
        *,
        persist: PersistPolicy | None = None,
        restart: Restart = "transient",
        timeout: float | None = None,
        asyncio: bool = False,
    ) -> Callable[[F], F]:
        """Declare a device driven by messages on ``{prefix}/{name}/set``.

        The handler gets each message (``payload: str``, ``topic: str``); a returned dict is
        published as state. A ``ValueError``, ``KeyError`` or ``TypeError`` from the handler
        is a rejected command (bad input from the network): one WARNING line, identical ones
        counted. Other exceptions are reported as errors. Either way the next message is
        handled; so is a handler still running after ``timeout`` seconds, which is
        cancelled. ``asyncio=True``: the handler is asyncio code.
        """
        return self.registry.declare(
            DeviceKind.COMMAND,
            name,
            has_store=self.store is not None,
            persist=persist,
            restart=restart,
            timeout=timeout,
            asyncio=asyncio,
        )

    def adapter(self, port: Any, factory: Callable[[], Any], *, asyncio: bool = False) -> None:
        """Register a hardware adapter: handlers annotated with ``port`` get the instance.

        ``factory()`` builds it when the app starts. If it is an async context manager it is
        entered before any device starts and exited after every device stopped; with
        ``asyncio=True`` it is an asyncio one, entered and used in the app's trio-asyncio loop
        (from ``asyncio=True`` handlers). Register an adapter before the devices that take it.
        """
        self.registry.add_adapter(port, factory, asyncio=asyncio)

    @property
    def device_names(self) -> list[str]:
        return list(self.registry.specs)

    @property
    def has_telemetry(self) -> bool:
        return any(s.kind is DeviceKind.TELEMETRY for s in self.registry.specs.values())

    def copy_with(self, **options: Any) -> App:
        """A new App with this one's devices and adapters, and ``options`` changed.

        ``options`` are attribute names (``store``, ``transport``, ``embedded_broker``,
        ``topics``, ``shutdown_timeout``, ...). The copy serves on its own; devices declared
        on it later are not added to this App. The harness runs a module-level app this way.
        """
        unknown = sorted(set(options) - set(vars(self)) | {o for o in options if o[0] == "_"})
        if unknown:
            raise TypeError(f"App {self.name!r} has no option {', '.join(unknown)}")
        clone = copy.copy(self)
        # The specs are copied; the adapters are shared, as the handlers' injection reads the
        # instances from them.
        clone.registry = copy.copy(self.registry)
        clone.registry.specs = dict(self.registry.specs)
        clone.registry.locked_by = None
        clone._running, clone._shutdown_pending, clone._began = None, False, None
        for option, value in options.items():
            setattr(clone, option, value)
        return clone

    # -- running -----------------------------------------------------------------------------

    @property
    def running(self) -> RunningApp | None:
        """The current serve, or the last one after it ended (``None`` before the first).

        Its ``state`` is the lifecycle; its actors are for tests and tools, not handlers.
        """
        return self._running

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
        An App serves again after a serve ended; serving it twice at once is a RuntimeError.
        """
        if self._running is not None and self._running.state is not Lifecycle.STOPPED:
            raise RuntimeError(
                f"App {self.name!r} is already serving; an App serves once at a time"
            )
        if cycles is not None and cycles < 1:
            raise ValueError(f"cycles must be at least 1, got {cycles}")
        running = self._running = RunningApp(self, cycles)
        self.registry.locked_by = f"App {self.name!r} is serving"
        if self._shutdown_pending:
            self._shutdown_pending = False
            running.shutdown()
        if self._began is not None:
            self._began.set()
            self._began = None
        try:
            await running.serve(task_status)
        finally:
            self.registry.locked_by = None

    def run(self, argv: Sequence[str] | None = None) -> None:
        """Serve in a new trio run until SIGINT or SIGTERM, then shut down gracefully.

        Takes the settings of ``triolette run``: its flags from ``argv`` (default
        ``sys.argv[1:]``; ``[]`` for none), then ``TRIOLETTE_*`` variables, then what the app's
        code set; plus ``--version`` and ``--env-file``. Bad settings: one line on stderr and
        ``SystemExit(3)``. See :func:`~triolette.runtime.process.run_process` for the second
        signal and the exit status (raised as ``SystemExit``).
        """
        from triolette.runtime.launch import run_app  # the command line's layer, loaded on use

        run_app(self, argv)

    def shutdown(self) -> None:
        """Start a graceful shutdown: stop every device, then flush. Safe to call any time.

        The ``shutdown_timeout`` deadline starts now; called when the app is not serving, the
        next serve stops as soon as it started.
        """
        running = self._running
        if running is not None and running.state is not Lifecycle.STOPPED:
            running.shutdown()
        else:
            self._shutdown_pending = True

    def statistics(self) -> AppStatistics:
        """The counters of the current serve (or of the last one, once it ended)."""
        if self._running is not None:
            return self._running.statistics()
        names = self.registry.specs.values()
        return AppStatistics(
            persistence=None,
            mqtt=None,
            cycles={s.name: 0 for s in names if s.kind is DeviceKind.TELEMETRY},
            restarts={},
            errors_repeated=0,
            crashes={},
            watchdog_firings=0,
            skipped_ticks={},
            failed={},
        )

    # -- waiting for the app (tests, tools) ------------------------------------------------------

    async def current_run(self) -> RunningApp:
        """The serve in progress; if none, wait for the next one to begin."""
        while self._running is None or self._running.state is Lifecycle.STOPPED:
            if self._began is None:
                self._began = trio.Event()
            await self._began.wait()
        return self._running

    async def wait_until_serving(self) -> None:
        """Wait until a serve has started every actor (state loaded, first connection attempt
        made: devices run while the broker is away)."""
        running = await self.current_run()
        await running.wait_for(Lifecycle.SERVING)

    async def wait_until_connected(self) -> None:
        """Wait until the app is serving, connected to the broker and subscribed to its
        command topics (again after each reconnect)."""
        running = await self.current_run()
        await running.wait_for(Lifecycle.SERVING)
        await running.mqtt.wait_connected()

    async def wait_for_cycles(self, cycles: int) -> None:
        """Wait until every telemetry device of the current serve completed ``cycles`` cycles."""
        running = await self.current_run()
        await running.wait_for_cycles(cycles)

    async def wait_for_devices_to_return(self) -> None:
        """Wait until every ``@app.device`` handler has returned (forever if there are none)."""
        running = await self.current_run()
        await running.devices_returned.wait()
