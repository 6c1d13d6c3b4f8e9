"""App: what a bridge declares (options, devices, adapters), and the handle that serves it.

The devices are declared in a :class:`~triolette.runtime.registry.Registry` (plain data);
each :meth:`App.serve` builds a fresh :class:`~triolette.runtime.running.RunningApp` that owns
the actors and their lifecycle; :meth:`App.run` hands the process to
:func:`~triolette.runtime.process.run_process` (signals, exit status).
"""

from __future__ import annotations

import copy
import math
from collections.abc import Callable, Collection, Mapping, Sequence
from typing import Any, TypeVar

import attrs
import trio

from triolette.actors.transport import Transport
from triolette.core.backoff import RECONNECT, Backoff
from triolette.core.errors import RegistrationError, SettingsError, UnknownDeviceError
from triolette.core.kinds import DeviceKind
from triolette.core.topics import Topics, check_name
from triolette.runtime.adapter_restarts import RestartPolicy
from triolette.runtime.adapters import Implementation
from triolette.runtime.declaring import Declaring
from triolette.runtime.embedded import EmbeddedBroker
from triolette.runtime.health import AppStatistics
from triolette.runtime.introspection import Introspection
from triolette.runtime.lifecycle import Lifespan, check_lifespan
from triolette.runtime.registry import Registry
from triolette.runtime.reports import check_error_type_map
from triolette.runtime.running import Lifecycle, RunningApp
from triolette.runtime.shared_state import SharedState
from triolette.runtime.store_factory import StoreFactory, split_store
from triolette.runtime.supervisor import RestartLimit
from triolette.stores.protocol import Store

F = TypeVar("F", bound=Callable[..., Any])


class App(Declaring, Introspection):
    """An IoT-to-MQTT bridge: devices declared with decorators, run by :meth:`serve`.

    ``store`` is the backend for device state (``None``: devices cannot take a
    ``DeviceStore``), or a synchronous factory each serve calls with the settings injected by
    class (:mod:`triolette.runtime.store_factory`; ``store`` is then the last one built).
    ``transport`` is the broker connection; without one, publishes are only
    logged. ``shutdown_timeout`` is the one deadline of a shutdown, counted from the request
    (a signal, :meth:`shutdown`, ``cycles`` done, an escalation): the devices stopping, the
    final flush and the MQTT goodbye all fit in it. 8 s by default: inside the 10 s a
    container gets between SIGTERM and SIGKILL. ``publish_timeout`` bounds how long a publish
    waits for the broker's confirmation; a broker that leaves a QoS 1 message unconfirmed for
    longer is treated as lost (one WARNING, then the reconnect path). ``outbox_size`` bounds
    each of the two outbound queues (QoS 0, QoS 1) that hold messages while the broker is away.
    ``retained_commands`` names the devices that take a command the broker kept as retained;
    the others ignore such a command (it would run again on every start). ``description``
    says what the bridge does (help texts, the registry).

    ``settings_class`` (a subclass of :class:`triolette.Settings`) is built here already, so
    decorator arguments can read ``app.settings``, and again by :meth:`run` (honouring
    ``--env-file``); when it cannot be built here, ``app.settings`` stays ``None`` and the
    error is raised by :meth:`serve` (:meth:`run`: one line, exit status 3). ``adapters``
    maps a port to its implementation, or to ``(implementation, dry_run_twin)`` (see
    :meth:`adapter`). ``dry_run=True`` uses the twins (as ``--dry-run`` does). ``lifespan``
    is a function of an :class:`~triolette.runtime.lifecycle.AppContext` returning an async
    context manager: entered before the devices start, exited after the final flush.

    Error reports: ``error_type_map`` maps exception classes (exact match) to the
    ``error_type`` label of their reports; ``publish_error_messages=False`` publishes the
    class name instead of ``str(error)``; an error that keeps repeating is published again
    every ``error_reminder_every`` seconds (``None``: only once). Adapters with an
    ``async health_check()`` are probed every ``health_check_interval`` seconds (``None``:
    never); see :mod:`triolette.runtime.health_checks`. One that fails
    ``restart_after_failures`` probes in a row (0: never restarted) is restarted, waiting
    ``restart_cooldown`` seconds, at most ``max_restarts`` times until it has been healthy
    for ``sustained_health_reset`` seconds; see :mod:`triolette.runtime.adapter_restarts`.
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
        store: Store | StoreFactory | None = None,
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
        settings_class: type[Any] | None = None,
        adapters: Mapping[Any, Implementation | tuple[Implementation, Implementation]]
        | None = None,
        dry_run: bool = False,
        lifespan: Lifespan | None = None,
        description: str = "IoT-to-MQTT bridge",
        error_type_map: Mapping[type[BaseException], str] | None = None,
        publish_error_messages: bool = True,
        error_reminder_every: float | None = 3600.0,
        health_check_interval: float | None = 30.0,
        restart_after_failures: int = 5,
        max_restarts: int = 3,
        restart_cooldown: float = 5.0,
        sustained_health_reset: float = 300.0,
    ) -> None:
        # Over 50 lines: one assignment per option, each checked where it is stored.
        self.name = check_name(name, "app name")
        self.version = version
        self.description = description
        """What the bridge does, in one line (help texts, the registry)."""
        self.store, self.store_factory = split_store(store)
        self.transport = transport
        self._topics = Topics(check_name(topic_prefix or name, "topic prefix"))
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
        self.settings: Any = None
        """The app's settings object (``None`` without one); handlers may take it by type."""
        self.settings_class = settings_class
        """The pydantic-settings class :meth:`run` builds ``settings`` from (``None``: none)."""
        self.settings_error: SettingsError | None = None
        """Why ``settings_class`` could not be built at construction (raised by a serve)."""
        if settings_class is not None:
            self._build_settings(settings_class)
        self.dry_run = dry_run
        """Use the adapters' dry-run twins (``--dry-run`` sets it)."""
        check_lifespan(lifespan)
        self.lifespan = lifespan
        self.shared = SharedState()
        """The ``@app.state`` factories and ``@app.react`` reactors."""
        self.configure_hooks: list[Callable[..., Any]] = []
        """The ``@app.on_configure`` hooks, run once at the start of each serve."""
        self.discovery_options = None
        """Home Assistant discovery's options, once :meth:`discovery` turned it on."""
        for port, implementation in (adapters or {}).items():
            if isinstance(implementation, tuple):
                self.adapter(port, *implementation)
            else:
                self.adapter(port, implementation)
        self._running: RunningApp | None = None
        self._shutdown_pending = False
        self._began: trio.Event | None = None
        self.error_type_map = check_error_type_map(error_type_map)
        """Exception class (exact) -> the ``error_type`` label of its error reports."""
        self.publish_error_messages = publish_error_messages
        """False: error reports carry the exception's class name as ``message``."""
        self.error_reminder_every = _positive_or_none("error_reminder_every", error_reminder_every)
        self.health_check_interval = _positive_or_none(
            "health_check_interval", health_check_interval
        )
        self.adapter_restarts = RestartPolicy.checked(
            after_failures=restart_after_failures,
            max_restarts=max_restarts,
            cooldown=restart_cooldown,
            sustained_health_reset=sustained_health_reset,
        )
        """When a health-checked adapter is restarted (see :mod:`.adapter_restarts`)."""

    def __repr__(self) -> str:
        return f"<App {self.name!r}: {len(self.registry.specs)} devices>"

    @property
    def topics(self) -> Topics:
        """The topic layout: the prefix, and the root entity (if one is registered)."""
        root = self.registry.root
        return attrs.evolve(self._topics, root=root.name if root else None)

    @topics.setter
    def topics(self, topics: Topics) -> None:
        self._topics = attrs.evolve(topics, root=None)

    def copy_with(self, **options: Any) -> App:
        """A new App with this one's devices and adapters, and ``options`` changed.

        ``options`` are attribute names (``store``, ``transport``, ``embedded_broker``,
        ``topics``, ``shutdown_timeout``, ...). The copy serves on its own; devices declared
        on it later are not added to this App. The harness runs a module-level app this way.
        """
        known = set(vars(self)) | {"topics"}
        unknown = sorted(set(options) - known | {o for o in options if o[0] == "_"})
        if unknown:
            raise TypeError(f"App {self.name!r} has no option {', '.join(unknown)}")
        clone = copy.copy(self)
        clone.registry = self.registry.copy()  # the adapters' registrations are shared
        clone.shared = self.shared.copy()
        clone.configure_hooks = list(self.configure_hooks)
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

    def cli(self, argv: Sequence[str] | None = None) -> None:
        """cosalette's entry point, kept for bridges that call it: the same as :meth:`run`,
        with the same flags (``--dry-run``, ``--log-level``, ``--env-file``, ``--version``...).
        """
        self.run(argv)

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

    def trigger(self, name: str, payload: str | bytes = "") -> None:
        """Run one cycle of telemetry ``name`` now, with ``payload`` as its ``TriggerPayload``.

        For telemetry declared with ``triggerable="local"`` or ``"both"``; anything else
        raises :class:`~triolette.UnknownDeviceError`. Thread-safe and non-blocking: from
        another thread the request is handed to the app's trio run (and dropped if that run
        has ended). Requests made while one is pending coalesce (the last payload wins). Not
        serving yet: RuntimeError; after the serve ended: dropped.
        """
        spec = self.registry.specs.get(name)
        if spec is None or "local" not in spec.triggers:
            raise UnknownDeviceError(name, "no telemetry of that name takes local triggers")
        running = self._running
        if running is None:
            raise RuntimeError(f"App {self.name!r} is not serving: nothing to trigger yet")
        running.scheduling.request(name, payload)

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

    def asyncapi(self, **options: Any) -> dict[str, Any]:
        """The AsyncAPI 3.0 document of this app's topics and payloads, as JSON-safe data.

        ``options``: those of :func:`~triolette.build_registry_snapshot` (``settings=``).
        """
        from triolette.runtime.asyncapi import asyncapi_document
        from triolette.runtime.registry_view import build_registry_snapshot

        return asyncapi_document(build_registry_snapshot(self, **options))

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

    # -- settings, shared state, start-up hooks ----------------------------------------------

    def _build_settings(self, settings_class: type[Any]) -> None:
        from triolette.runtime.app_settings import load_settings

        try:
            self.settings = load_settings(settings_class)
        except SettingsError as error:  # run() rebuilds them, maybe with an --env-file
            self.settings_error = error


def _positive_or_none(option: str, value: float | None) -> float | None:
    if value is None:
        return None
    if isinstance(value, int | float) and not isinstance(value, bool) and 0 < value < math.inf:
        return float(value)
    raise RegistrationError(f"{option} must be a positive number of seconds or None, got {value!r}")
