"""What an app declares: its device specs and adapters, checked at registration. No trio here.

A registration kind is a :class:`~triolette.core.kinds.DeviceKind` plus the options it takes;
:meth:`Registry.declare` checks every option (each error names the device), resolves the
handler's injected arguments once, and stores a plain :class:`DeviceSpec`. Adding a kind is a
new enum member, its options here, and its actor loop.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import Any, TypeVar

from triolette.actors.spec import PUBLISH_CHOICES, DeviceSpec, Publish
from triolette.actors.triggers import TriggerPayload, payload_of
from triolette.core.deferred import is_deferred
from triolette.core.errors import RegistrationError
from triolette.core.kinds import RESTART_TYPES, DeviceKind, Restart
from triolette.core.policies import PersistPolicy, SaveOnChange
from triolette.core.strategies import PublishStrategy
from triolette.core.topics import check_name
from triolette.runtime.adapters import Adapters, Implementation
from triolette.runtime.injection import bind
from triolette.runtime.schedule_options import schedule_options

F = TypeVar("F", bound=Callable[..., Any])


class Registry:
    """The declared devices (in registration order) and adapters of one app.

    ``locked_by`` names why nothing may be registered now (the app is serving), or is
    ``None``.
    """

    def __init__(self) -> None:
        self.specs: dict[str, DeviceSpec] = {}
        self.adapters = Adapters()
        self.locked_by: str | None = None

    def add_adapter(
        self,
        port: Any,
        factory: Implementation,
        dry_run: Implementation | None = None,
        *,
        asyncio: bool,
    ) -> None:
        if self.locked_by is not None:
            raise RegistrationError(f"adapter {port!r}: adapters must be registered before run")
        self.adapters.register(port, factory, dry_run, asyncio=asyncio)

    def declare(
        self,
        kind: DeviceKind,
        name: str,
        *,
        has_store: bool,
        persist: PersistPolicy | None,
        restart: Restart,
        interval: float | Callable[[Any], float] | None = None,
        timeout: float | None = None,
        heartbeat: float | None = None,
        asyncio: bool = False,
        publish: Publish | PublishStrategy = "now",
        **scheduling: Any,
    ) -> Callable[[F], F]:
        """Check the options now; the returned decorator registers the handler.

        ``scheduling`` holds the options :func:`schedule_options` checks (``schedule``,
        ``retry``, ``group``...).
        """
        check_name(name)
        extra = schedule_options(name, kind, interval=interval, publish=publish, **scheduling)
        if "strategy" in extra:
            publish = "now"
        deferred: tuple[tuple[str, Any], ...] = ()
        if kind is DeviceKind.TELEMETRY and is_deferred(interval):  # decided by the settings
            deferred, interval = (("interval", interval),), None
        elif kind is DeviceKind.TELEMETRY and "schedule" not in extra:
            interval = _seconds(name, "interval", interval)
        for option, value in (("timeout", timeout), ("heartbeat", heartbeat)):
            if value is not None:
                _seconds(name, option, value)
        self._refuse_taken(name)
        if restart not in RESTART_TYPES:
            raise RegistrationError(
                f"{name}: restart={restart!r} is not one of {', '.join(RESTART_TYPES)}"
            )
        _check_policy(name, persist, has_store)
        _check_publish(name, publish, persist, has_store)
        options: dict[str, Any] = {
            "interval": interval,
            "persist": persist,
            "restart": restart,
            "timeout": None if timeout is None else float(timeout),
            "heartbeat": None if heartbeat is None else float(heartbeat),
            "asyncio": asyncio,
            **extra,
        }
        if publish != "now":  # only the kinds that take the option pass it on
            options["publish"] = publish
        if deferred:
            options["deferred"] = deferred

        def register(function: F) -> F:
            self._register(kind, name, function, has_store=has_store, **options)
            return function

        return register

    def _register(
        self, kind: DeviceKind, name: str, function: Any, *, has_store: bool, **options: Any
    ) -> None:
        if self.locked_by is not None:
            raise RegistrationError(
                f"{name}: devices must be declared before the app runs ({self.locked_by})"
            )
        self._refuse_taken(name)  # two decorators made before either was applied
        # A telemetry handler may ask why its cycle runs (scheduled or triggered).
        telemetry = kind is DeviceKind.TELEMETRY
        extra = {TriggerPayload: payload_of} if telemetry else {}
        withheld = () if telemetry else (TriggerPayload,)
        bound = bind(name, kind, function, self.adapters.ports, extra, withheld)
        call, uses_store = bound.call, bound.uses_store
        if options["asyncio"]:
            from triolette.runtime.aio import through_asyncio  # only apps that need it

            call = through_asyncio(call)
        if uses_store and not has_store:
            raise RegistrationError(
                f"{name}: the handler takes a DeviceStore but the App has no store"
            )
        if options.get("publish") == "durable" and not uses_store:
            raise RegistrationError(
                f"{name}: publish='durable' needs a handler that takes a DeviceStore"
            )
        self.specs[name] = DeviceSpec(
            name=name, kind=kind, call=call, uses_store=uses_store, needs=bound.needs, **options
        )

    @property
    def needs_asyncio(self) -> bool:
        return any(spec.asyncio for spec in self.specs.values()) or self.adapters.need_asyncio

    def _refuse_taken(self, name: str) -> None:
        if name in self.specs:
            raise RegistrationError(f"{name}: a device of that name is already registered")


def _seconds(device: str, option: str, value: object) -> float:
    """``value`` as a positive, finite number of seconds, or an error naming the device."""
    if isinstance(value, int | float) and not isinstance(value, bool) and 0 < value < math.inf:
        return float(value)
    raise RegistrationError(
        f"{device}: {option} must be a positive number of seconds, got {value!r}"
    )


def _check_policy(device: str, persist: PersistPolicy | None, has_store: bool) -> None:
    if persist is None:
        return
    if isinstance(persist, type) or not callable(getattr(persist, "should_save", None)):
        hint = f" (did you mean {persist.__name__}()?)" if isinstance(persist, type) else ""
        raise RegistrationError(f"{device}: persist={persist!r} is not a save policy{hint}")
    if not has_store:
        raise RegistrationError(f"{device}: persist= needs a store; pass App(store=...)")


def _check_publish(
    device: str, publish: object, persist: PersistPolicy | None, has_store: bool
) -> None:
    """``publish="durable"`` saves every changed cycle itself: no other policy, a store."""
    if publish not in PUBLISH_CHOICES:
        raise RegistrationError(
            f"{device}: publish={publish!r} is not one of {', '.join(map(repr, PUBLISH_CHOICES))}"
        )
    if publish != "durable":
        return
    if not has_store:
        raise RegistrationError(f"{device}: publish='durable' needs a store; pass App(store=...)")
    if persist is not None and type(persist) is not SaveOnChange:
        raise RegistrationError(
            f"{device}: publish='durable' saves every cycle that changed the store; "
            f"persist={persist!r} would hold back or wait for the very publish: "
            "leave persist out or pass SaveOnChange()"
        )
