"""What a bridge declares: devices of each kind, adapters, streams, routers, shared state.

:class:`Declaring` is the half of :class:`~triolette.App` that registers: every decorator and
``add_*`` method checks its options (each error names the device) and records a registration
in ``self.registry``. Nothing here runs; a serve turns the registrations into devices.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING, Any, Literal, TypeVar, Unpack, overload

from triolette.actors.spec import Publish
from triolette.core.breaker import CircuitBreaker
from triolette.core.cron import CronSchedule
from triolette.core.errors import RegistrationError
from triolette.core.kinds import DeviceKind, Restart
from triolette.core.policies import PersistPolicy
from triolette.core.retry import RetryBackoff
from triolette.core.strategies import PublishStrategy
from triolette.core.stream import Backpressure, StreamOptions
from triolette.runtime.adapters import Implementation
from triolette.runtime.lifecycle import check_hook
from triolette.runtime.registration import Common, NameSpec
from triolette.runtime.registry import Registry
from triolette.runtime.router import Router
from triolette.runtime.shared_state import SharedState
from triolette.stores.protocol import Store

if TYPE_CHECKING:
    from triolette.runtime.discovery import Discovery

F = TypeVar("F", bound=Callable[..., Any])


class Declaring:
    """The registering methods of an App; it provides ``registry``, ``store`` and
    ``configure_hooks``."""

    registry: Registry
    store: Store | None
    store_factory: Callable[..., Store] | None
    shared: SharedState
    configure_hooks: list[Callable[..., Any]]
    discovery_options: Discovery | None

    @property
    def has_store(self) -> bool:
        """Whether devices may take a ``DeviceStore`` (a store, or a factory to build one)."""
        return self.store is not None or self.store_factory is not None

    # -- declaring devices -------------------------------------------------------------------

    def telemetry(
        self,
        name: NameSpec = None,
        *,
        interval: float | Callable[[Any], float] | None = None,
        persist: PersistPolicy | None = None,
        restart: Restart = "transient",
        timeout: float | None = None,
        asyncio: bool = False,
        publish: Publish | PublishStrategy = "now",
        schedule: CronSchedule | str | None = None,
        group: str | None = None,
        retry: int = 0,
        retry_on: type[Exception] | tuple[type[Exception], ...] | None = None,
        backoff: RetryBackoff | None = None,
        circuit_breaker: CircuitBreaker | None = None,
        triggerable: bool | Literal["mqtt", "local", "both"] = False,
        min_interval: float | None = None,
        **common: Unpack[Common],
    ) -> Callable[[F], F]:
        """Declare a polled device: the handler runs every ``interval`` seconds.

        ``interval`` may be decided by the settings: ``setting_ref("poll.seconds")`` or a
        function of the settings, called when a serve starts (a result that is not a positive
        number of seconds stops the start, naming the device and the option).

        Its returned dict is published as the device state (``None``: nothing this cycle);
        then ``persist`` decides whether the store is saved. Exceptions are reported and the
        loop goes on. With ``timeout``, a cycle still running after that many seconds (a hung
        sensor read) is cancelled and reported as a :class:`~triolette.HandlerTimeoutError`.
        ``restart`` is the restart type (see :meth:`device`). With ``asyncio=True`` the
        handler is asyncio code, run in the app's trio-asyncio loop. ``interval`` may be a
        callable given the settings (or the device's configuration) when a serve starts.

        ``publish="durable"`` publishes a state only once the batch holding the store's
        changes of its cycle is durable, so a dashboard never shows a count that a crash or
        a power cut can take back; the store is then saved every cycle that changed it
        (``persist`` must be left out or be ``SaveOnChange()``) and the handler must take the
        store. The default ``"now"`` queues the state as soon as the handler returned.

        The scheduling options (see the schedules guide): ``publish=`` also takes a publish
        strategy (``Every(...)``, ``OnChange(...)``, combined with ``|`` and ``&``), which
        publishes as ``"now"`` does, only the readings it lets through. ``schedule=`` is a
        cron schedule (Quartz, seconds first) instead of ``interval``. ``retry=N`` tries a
        failing handler up to N more times in the same cycle, on ``retry_on`` exceptions
        (``OSError`` by default, which includes a timed-out attempt), ``backoff`` apart
        (``ExponentialBackoff(2, 60)`` by default); ``timeout`` bounds each attempt.
        ``circuit_breaker=CircuitBreaker(n)`` skips a cycle after n failed ones in a row.
        ``triggerable`` (``True``/``"mqtt"``, ``"local"``, ``"both"``) also runs a cycle on a
        message on ``{prefix}/{name}/set`` or on :meth:`trigger`, at most once per
        ``min_interval`` seconds. Telemetry of one ``group`` never runs at the same time.
        Every decorator also takes ``name`` (``None``: a root entity, named after the
        function, whose topics have no device level; a callable: given the settings when a
        serve starts, it returns a list of names, or a dict of name to that device's
        configuration) and the options of :class:`Common`.
        """
        # Over 50 lines: the signature lists every telemetry option, so editors and type
        # checkers show them; the body only passes them on.
        return self._declare(
            DeviceKind.TELEMETRY,
            name,
            interval=interval,
            persist=persist,
            restart=restart,
            timeout=timeout,
            asyncio=asyncio,
            publish=publish,
            schedule=schedule,
            group=group,
            retry=retry,
            retry_on=retry_on,
            backoff=backoff,
            circuit_breaker=circuit_breaker,
            triggerable=triggerable,
            min_interval=min_interval,
            **common,
        )

    def device(
        self,
        name: NameSpec = None,
        *,
        persist: PersistPolicy | None = None,
        restart: Restart = "transient",
        heartbeat: float | None = None,
        asyncio: bool = False,
        **common: Unpack[Common],
    ) -> Callable[[F], F]:
        """Declare a device that runs its own loop; restarted with backoff if it crashes.

        The handler is an ``async def`` function, or an async generator whose every
        ``yield`` is a work boundary: there the save policy is asked and the heartbeat
        counts. With ``persist``, the policy is asked after each store mutation and each
        ``ctx.publish_state``. Inbound commands arrive through ``ctx.commands()``.
        ``restart``: ``"transient"`` (restarted after a crash, done after a normal return),
        ``"permanent"`` (restarted after either) or ``"temporary"`` (never restarted).
        With ``heartbeat``, a handler that goes that many seconds without calling
        ``ctx.heartbeat()`` (or yielding) is cancelled and counts as crashed
        (``HeartbeatMissedError``). With ``asyncio=True`` the handler is asyncio code (it
        may await ``asyncio.sleep`` or an asyncio library), run in the app's trio-asyncio
        loop. The other options: see :meth:`telemetry`.
        """
        return self._declare(
            DeviceKind.DEVICE,
            name,
            persist=persist,
            restart=restart,
            heartbeat=heartbeat,
            asyncio=asyncio,
            **common,
        )

    def command(
        self,
        name: NameSpec = None,
        *,
        persist: PersistPolicy | None = None,
        restart: Restart = "transient",
        timeout: float | None = None,
        asyncio: bool = False,
        retry: int = 0,
        retry_on: type[Exception] | tuple[type[Exception], ...] | None = None,
        backoff: RetryBackoff | None = None,
        **common: Unpack[Common],
    ) -> Callable[[F], F]:
        """Declare a device driven by messages on ``{prefix}/{name}/set``.

        The handler gets each message (``payload: str``, ``topic: str``); a returned dict is
        published as state. A ``ValueError``, ``KeyError`` or ``TypeError`` from the handler
        is a rejected command (bad input from the network): one WARNING line, identical ones
        counted. Other exceptions are reported as errors. Either way the next message is
        handled; so is a handler still running after ``timeout`` seconds, which is
        cancelled. ``asyncio=True``: the handler is asyncio code. ``retry``, ``retry_on`` and
        ``backoff`` retry a failing handler as :meth:`telemetry` does. A root command
        (``@app.command()``) listens on ``{prefix}/set``. The other options: see
        :meth:`telemetry`.
        """
        return self._declare(
            DeviceKind.COMMAND,
            name,
            persist=persist,
            restart=restart,
            timeout=timeout,
            asyncio=asyncio,
            retry=retry,
            retry_on=retry_on,
            backoff=backoff,
            **common,
        )

    def add_telemetry(
        self, name: NameSpec, func: Callable[..., Any], *, is_root: bool = False, **options: Any
    ) -> None:
        """Register ``func`` as :meth:`telemetry` does (same ``options``, same checks).

        ``is_root=True`` makes it the root entity (topics without a device level) under
        ``name``, which is still its store key.
        """
        self._declare(DeviceKind.TELEMETRY, name, is_root=is_root, **options)(func)

    def add_device(
        self, name: NameSpec, func: Callable[..., Any], *, is_root: bool = False, **options: Any
    ) -> None:
        """Register ``func`` as :meth:`device` does; ``is_root``: see :meth:`add_telemetry`."""
        self._declare(DeviceKind.DEVICE, name, is_root=is_root, **options)(func)

    def add_command(
        self, name: NameSpec, func: Callable[..., Any], *, is_root: bool = False, **options: Any
    ) -> None:
        """Register ``func`` as :meth:`command` does; ``is_root``: see :meth:`add_telemetry`."""
        self._declare(DeviceKind.COMMAND, name, is_root=is_root, **options)(func)

    def _declare(self, kind: DeviceKind, name: NameSpec, **options: Any) -> Callable[[F], F]:
        options.setdefault("persist", None)
        options.setdefault("restart", "transient")
        return self.registry.declare(kind, name, has_store=self.has_store, **options)

    def adapter(
        self,
        port: Any,
        implementation: Implementation,
        dry_run: Implementation | None = None,
        *,
        asyncio: bool = False,
    ) -> None:
        """Register a hardware adapter: handlers annotated with ``port`` get the instance.

        ``implementation`` is a class, a factory, or a ``"module:Class"`` string imported
        when the app starts; it is called when the app starts, with the settings (and
        adapters registered before) for parameters annotated with their types. ``dry_run``
        is its twin, used instead in a dry run. If the instance is an async context manager
        it is entered before any device starts and exited after the final flush; with
        ``asyncio=True`` it is an asyncio one, entered and used in the app's trio-asyncio loop
        (from ``asyncio=True`` handlers). A serve whose handlers ask for a port no adapter
        provides is refused before any device starts, naming the handler and the parameter.
        """
        self.registry.add_adapter(port, implementation, dry_run, asyncio=asyncio)

    # -- streams and routers --------------------------------------------------------------------

    def stream(
        self,
        name: str | None = None,
        *,
        maxsize: int = 0,
        backpressure: Backpressure = "drop_newest",
        stale_after: float | None = None,
        feeds: Sequence[str] = (),
        summary: str | None = None,
        persist: PersistPolicy | None = None,
        restart: Restart = "transient",
        state_model: type | None = None,
    ) -> Callable[[F], F]:
        """Declare a stream: the handler reads the items an adapter pushes.

        The handler takes exactly one ``Stream[T]`` parameter; an adapter registered as
        ``StreamablePort[T]`` feeds it (see :mod:`triolette.actors.stream`). It is an async
        generator (each yielded dict is published as state) or a coroutine. ``maxsize``
        bounds the buffer (0: unbounded); ``backpressure`` says what a full one does:
        ``"drop_newest"``, ``"drop_oldest"`` or ``"raise"`` (the handler's read raises
        :class:`~triolette.StreamFullError`). With ``stale_after``, no item within that many
        seconds marks the stream stale and holds it and the devices it ``feeds`` offline
        until the next item. ``name`` defaults to the handler's name; ``persist``,
        ``restart`` and ``state_model`` work as for :meth:`device`; ``summary`` is a
        description.
        """

        def register(function: F) -> F:
            options = StreamOptions(
                item=None,
                maxsize=maxsize,
                backpressure=backpressure,
                stale_after=stale_after,
                feeds=feeds,  # type: ignore[arg-type]  # checked by the registry
                summary=summary,
            )
            return self.registry.declare(
                DeviceKind.STREAM,
                name if name is not None else function.__name__,
                has_store=self.has_store,
                persist=persist,
                restart=restart,
                state_model=state_model,
                stream=options,
            )(function)

        return register

    def include_router(self, router: Router, prefix: str | None = None) -> None:
        """Register what ``router`` recorded, its names under ``prefix/router.prefix/``.

        The registrations are copied now (later ones on the router are not added); the
        same router may be included several times under different prefixes.
        """
        router.replay(self, prefix)

    # -- shared state and start-up hooks ----------------------------------------------------

    @overload
    def state(self, factory: F) -> F: ...

    @overload
    def state(self, factory: None = None) -> Callable[[F], F]: ...

    def state(self, factory: F | None = None) -> F | Callable[[F], F]:
        """Register a factory of one object per serve, injected by its return annotation.

        Forms and order: :mod:`triolette.runtime.shared_state`. Built after the adapters,
        closed in reverse after the final flush. A RegistrationError without a return
        annotation or for a type registered twice.
        """

        def register(function: F) -> F:
            self._check_unlocked("state factories")
            self.shared.add_factory(function)
            return function

        return register if factory is None else register(factory)

    def react(self, state: type, *, drain: Callable[[Any], Any] | None = None) -> Callable[[F], F]:
        """Register a reactor of ``state`` (an ``@app.state`` type), awaited with the drained
        ``events`` after each handler boundary that went well, when there are any
        (``drain(state)``, default ``state.drain_events()``). Its error is reported like the
        handler's."""

        def register(function: F) -> F:
            self._check_unlocked("reactors")
            self.shared.add_reactor(state, function, drain)
            return function

        return register

    def on_configure(self, hook: F) -> F:
        """Register a hook (sync or async) run once when a serve starts, after the adapters:
        it may take the settings and adapters, and register devices, adapters and state for
        that serve. An error stops the start."""
        check_hook(hook)
        self._check_unlocked("on_configure hooks")
        self.configure_hooks.append(hook)
        return hook

    def _check_unlocked(self, what: str) -> None:
        if self.registry.locked_by is not None:
            raise RegistrationError(f"{what} must be registered before the app runs")

    # -- Home Assistant ------------------------------------------------------------------------

    def discovery(
        self,
        prefix: str = "homeassistant",
        *,
        enrich: Callable[[Any, str | None, dict[str, Any]], None] | None = None,
    ) -> None:
        """Announce the devices to Home Assistant (MQTT discovery) whenever the app serves.

        One entity per model field with consumer metadata (:mod:`triolette.schema`), retained
        under ``prefix``; with a store, the configs of entities removed since the last start
        are cleared. ``enrich(device_spec, field, config)`` edits each config in place, last
        (``None, None`` for the bridge's own entity). See the Home Assistant guide. A bad
        ``prefix`` is a RegistrationError.
        """
        from triolette.runtime.discovery import Discovery

        self._check_unlocked("discovery")
        self.discovery_options = Discovery(prefix, enrich)
