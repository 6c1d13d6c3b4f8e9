"""What an app declares: its registrations and adapters, checked at registration. No trio here.

A registration kind is a :class:`~triolette.core.kinds.DeviceKind` plus the options it takes;
:meth:`Registry.declare` checks every option (each error names the device), binds the
handler's injected arguments once, and records a
:class:`~triolette.runtime.registration.Registration` (plain data, what introspection reads).
A registration whose name and options are all known now has its :class:`DeviceSpec` at once
(:attr:`Registry.specs`); one with a ``name=`` callable, or a callable ``enabled=`` or
``interval=``, becomes devices when a serve starts (:mod:`triolette.runtime.expansion`).
Adding a kind is a new enum member, its options here, and its actor loop.
"""

from __future__ import annotations

import copy
import inspect
import typing
from collections.abc import Callable, Iterable
from typing import Any, TypeVar

import attrs

from triolette.actors.contracts import return_model
from triolette.actors.spec import DeviceSpec, Publish
from triolette.actors.stream_buffer import Stream
from triolette.actors.triggers import TriggerPayload, payload_of
from triolette.core.deferred import is_deferred
from triolette.core.errors import RegistrationError
from triolette.core.kinds import DeviceKind, Restart
from triolette.core.policies import PersistPolicy
from triolette.core.strategies import PublishStrategy
from triolette.core.stream import StreamOptions, stream_item
from triolette.core.topics import check_name
from triolette.runtime import option_checks as checks
from triolette.runtime.adapters import Adapters, Implementation
from triolette.runtime.device_scope import init_runner
from triolette.runtime.injection import FRAMEWORK_TYPES, NEVER_PROVIDED, Bound, bind
from triolette.runtime.registration import COMMON_OPTIONS, NameSpec, Registration
from triolette.runtime.schedule_options import schedule_options

F = TypeVar("F", bound=Callable[..., Any])
_RETURNING = (DeviceKind.TELEMETRY, DeviceKind.COMMAND)
"""The kinds whose handler returns its state: a return annotation naming a model shapes it."""


class Registry:
    """The declared devices (in registration order) and adapters of one app.

    ``locked_by`` names why nothing may be registered now (the app is serving), or is
    ``None``.
    """

    def __init__(self) -> None:
        self.specs: dict[str, DeviceSpec] = {}
        """The devices of the static registrations (see :attr:`Registration.is_static`)."""
        self.registrations: list[Registration] = []
        """Every registration, in order (``enabled=False`` ones are left out)."""
        self.adapters = Adapters()
        self.locked_by: str | None = None
        self._root: Registration | None = None
        self._taken: dict[str | None, Registration] = {}
        """The enabled registrations of a fixed name by name, and the root one under ``None``."""

    def copy(self) -> Registry:
        """A registry with these registrations; what is registered on it later is its own.
        The adapters' registrations are shared (each serve builds its own instances)."""
        clone = copy.copy(self)
        clone.specs = dict(self.specs)
        clone.registrations = list(self.registrations)
        clone._taken = dict(self._taken)
        clone.locked_by = None
        return clone

    def restore(self, saved: Registry) -> None:
        """Take back the registrations of ``saved`` (a :meth:`copy`); the lock stays."""
        locked_by = self.locked_by
        vars(self).update(vars(saved))
        self.locked_by = locked_by

    @property
    def root(self) -> Registration | None:
        """The root entity's registration (the first, if the settings choose between two)."""
        return self._root

    @property
    def names(self) -> frozenset[str]:
        """The names known before a serve (not those a ``name=`` callable will give)."""
        return frozenset(r.name for r in self.registrations if r.name_spec is None)

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
        name: NameSpec,
        *,
        has_store: bool,
        persist: PersistPolicy | None,
        restart: Restart,
        interval: float | Callable[[Any], float] | None = None,
        timeout: float | None = None,
        heartbeat: float | None = None,
        asyncio: bool = False,
        publish: Publish | PublishStrategy = "now",
        is_root: bool = False,
        stream: StreamOptions | None = None,
        **given: Any,
    ) -> Callable[[F], F]:
        """Check the options now; the returned decorator registers the handler.

        ``name=None`` declares a root entity named after the function (so does
        ``is_root=True`` with a name). ``given`` holds the options of
        :class:`~triolette.runtime.registration.Common` and those :func:`schedule_options`
        checks (``schedule``, ``retry``, ``group``...). ``enabled=False`` registers nothing
        and checks nothing.
        """
        # Over 50 lines: every option is checked here, in one place, before anything is recorded.
        common = {key: given.pop(key) for key in COMMON_OPTIONS if key in given}
        enabled = common.get("enabled", True)
        if enabled is False:
            return _left_out
        label = checks.label(name, is_root)
        is_root = checks.check_name_spec(kind, name, is_root, label)
        if not (enabled is True or is_deferred(enabled)):
            raise RegistrationError(f"{label}: enabled={enabled!r} is not a bool or a callable")
        extra = schedule_options(label, kind, interval=interval, publish=publish, **given)
        if "strategy" in extra:
            publish = "now"
        if kind is DeviceKind.TELEMETRY and not is_deferred(interval) and "schedule" not in extra:
            interval = checks.check_seconds(label, "interval", interval)
        checks.check_common(label, restart, timeout=timeout, heartbeat=heartbeat)
        checks.check_policy(label, persist, has_store)
        checks.check_publish(label, publish, persist, has_store)
        if enabled is True and (isinstance(name, str) or is_root):
            self._refuse_taken(name if isinstance(name, str) else None, is_root)
        declared = {
            "kind": kind,
            "name_spec": None if name is None or isinstance(name, str) else name,
            "is_root": is_root,
            "enabled": enabled,
            "init": common.get("init"),
            "interval": interval,
            **checks.metadata(label, common),
        }
        options: dict[str, Any] = {
            "interval": None if is_deferred(interval) else interval,
            "persist": persist,
            "restart": restart,
            "timeout": None if timeout is None else float(timeout),
            "heartbeat": None if heartbeat is None else float(heartbeat),
            "asyncio": asyncio,
            **extra,
            **checks.contract(label, common),
        }
        if publish != "now":  # only the kinds that take the option pass it on
            options["publish"] = publish
        if stream is not None:
            options["stream"] = checks.check_stream(label, stream)

        def register(function: F) -> F:
            static = name if isinstance(name, str) else None
            self._register(static, function, declared, has_store=has_store, **options)
            return function

        return register

    def _register(
        self,
        name: str | None,
        function: Any,
        declared: dict[str, Any],
        *,
        has_store: bool,
        **options: Any,
    ) -> None:
        """Bind ``function`` and record the registration; ``name`` is ``None`` when it is
        the function's (a root entity, or names from a ``name=`` callable)."""
        kind: DeviceKind = declared["kind"]
        if name is None:
            name = check_name(getattr(function, "__name__", None), "name (the function's name)")
        if self.locked_by is not None:
            raise RegistrationError(
                f"{name}: devices must be declared before the app runs ({self.locked_by})"
            )
        if declared["name_spec"] is None and declared["enabled"] is True:
            self._refuse_taken(name, declared["is_root"])  # a literal duplicate
        spec = self._spec(name, kind, function, declared, has_store, options)
        self._record(Registration(name=name, func=function, spec=spec, **declared))

    def _spec(
        self,
        name: str,
        kind: DeviceKind,
        function: Any,
        declared: dict[str, Any],
        has_store: bool,
        options: dict[str, Any],
    ) -> DeviceSpec:
        """Bind the handler (and its ``init=``) and make the device's spec; a handler that
        takes what this app cannot give is refused, naming the device."""
        # Over 50 lines: binding the handler and its init= and refusing what the app cannot
        # give are one step; the spec is built from what they found.
        if kind is DeviceKind.STREAM:
            item = stream_item(f"{name}: handler {function.__qualname__!r}", function, Stream)
            options["stream"] = attrs.evolve(options["stream"], item=item)
        # A telemetry handler may ask why its cycle runs (scheduled or triggered).
        telemetry = kind is DeviceKind.TELEMETRY
        extra = {TriggerPayload: payload_of} if telemetry else {}
        withheld = () if telemetry else (TriggerPayload,)
        bound = bind(name, kind, function, self.adapters.ports, extra, withheld)
        call, uses_store = bound.call, bound.uses_store
        generator = inspect.isasyncgenfunction(function)
        if options["asyncio"]:
            if generator:
                raise RegistrationError(
                    f"{name}: an async generator handler cannot run as asyncio code"
                )
            from triolette.runtime.aio import through_asyncio  # only apps that need it

            call = through_asyncio(call)
        init = declared["init"]
        init_bound = None if init is None else _bind_init(name, kind, init, self.adapters.ports)
        if init_bound is not None:
            uses_store = uses_store or init_bound.uses_store
        if uses_store and not has_store:
            raise RegistrationError(
                f"{name}: the handler takes a DeviceStore but the App has no store"
            )
        if options.get("publish") == "durable" and not bound.uses_store:
            raise RegistrationError(
                f"{name}: publish='durable' needs a handler that takes a DeviceStore"
            )
        return DeviceSpec(
            name=name,
            kind=kind,
            call=call,
            uses_store=uses_store,
            needs=bound.needs + (init_bound.needs if init_bound else ()),
            is_root=declared["is_root"],
            init=None if init_bound is None else init_runner(init_bound.call),
            init_returns=None if init is None else _returns(init),
            returns_model=return_model(function) if kind in _RETURNING else None,
            generator=generator,
            **options,
        )

    def _record(self, registration: Registration) -> None:
        self.registrations.append(registration)
        if registration.is_static:
            self.specs[registration.name] = registration.spec
        if registration.is_root and self._root is None:
            self._root = registration
        if registration.name_spec is None and registration.enabled is True:
            self._taken[registration.name] = registration
            if registration.is_root:
                self._taken[None] = registration

    @property
    def fixed_names(self) -> list[str]:
        """The devices every serve has, whatever the settings: a fixed name, enabled."""
        return [r.name for r in self.registrations if r.name_spec is None and r.enabled is True]

    @property
    def has_dynamic(self) -> bool:
        """Whether the settings decide some devices (a ``name=`` or ``enabled=`` callable)."""
        return any(r.name_spec is not None or r.enabled is not True for r in self.registrations)

    @property
    def needs_asyncio(self) -> bool:
        asyncio = any(r.spec.asyncio for r in self.registrations)
        return asyncio or self.adapters.need_asyncio

    def _refuse_taken(self, name: str | None, is_root: bool) -> None:
        """Refuse a second enabled registration of ``name``, or a second root entity.

        Registrations with a callable ``enabled=`` are left to the expansion, which checks
        the devices that are enabled.
        """
        if name is not None and name in self._taken:
            raise RegistrationError(f"{name}: a device of that name is already registered")
        root = self._taken.get(None)
        if is_root and root is not None:
            raise RegistrationError(
                f"{name + ': ' if name else ''}an app has at most one root entity "
                f"(registered without a name); {root} is one already"
            )


def _left_out(function: F) -> F:
    """The decorator of an ``enabled=False`` registration: it registers nothing."""
    return function


def _bind_init(device: str, kind: DeviceKind, init: Any, ports: Iterable[Any]) -> Bound:
    """Bind an ``init=`` factory like a handler; it must be synchronous and return a class
    of its own (not a framework type, not a built-in one)."""
    bound = bind(device, kind, init, list(ports), role="init")
    returns = _returns(init)
    if returns in FRAMEWORK_TYPES or returns in NEVER_PROVIDED:
        raise RegistrationError(
            f"{device}: init= is annotated to return {returns.__qualname__}; handlers could "
            "not ask for its result by type: return an instance of a class of yours"
        )
    return bound


def _returns(init: Any) -> Any:
    """The class ``init`` is annotated to return, or ``None``."""
    try:
        returns = inspect.signature(init).return_annotation
    except (TypeError, ValueError):
        return None
    if isinstance(returns, str):  # a postponed annotation
        try:
            returns = typing.get_type_hints(init).get("return")
        except Exception:  # an unresolvable name: treated as not annotated
            return None
    returns = typing.get_origin(returns) or returns  # dict[str, int] returns a dict
    if returns in (inspect.Signature.empty, None, type(None)) or not isinstance(returns, type):
        return None
    return returns
