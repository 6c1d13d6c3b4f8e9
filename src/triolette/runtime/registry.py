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
import math
import typing
from collections.abc import Callable, Iterable, Mapping
from typing import Any, TypeVar

import attrs

from triolette.actors.contracts import return_model
from triolette.actors.spec import PUBLISH_CHOICES, DeviceSpec, Publish
from triolette.actors.stream_buffer import Stream
from triolette.actors.triggers import TriggerPayload, payload_of
from triolette.core.deferred import is_deferred
from triolette.core.errors import RegistrationError
from triolette.core.kinds import RESTART_TYPES, DeviceKind, Restart
from triolette.core.policies import PersistPolicy, SaveOnChange
from triolette.core.strategies import PublishStrategy
from triolette.core.stream import StreamOptions, check_feeds, check_options, stream_item
from triolette.core.topics import check_entity_name, check_name
from triolette.runtime.adapters import Adapters, Implementation
from triolette.runtime.device_scope import init_runner
from triolette.runtime.injection import FRAMEWORK_TYPES, NEVER_PROVIDED, Bound, bind
from triolette.runtime.registration import Enabled, NameSpec, Registration
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
        enabled: Enabled = True,
        init: Callable[..., Any] | None = None,
        summary: str | None = None,
        behavior: Iterable[str] = (),
        effects: Iterable[str] = (),
        tags: Iterable[str] = (),
        state_model: type | None = None,
        payload_model: type | None = None,
        discoverable: bool = True,
        state_version: int = 0,
        migrate: Mapping[int, Callable[[dict[str, Any]], dict[str, Any]]] | None = None,
        stream: StreamOptions | None = None,
        **scheduling: Any,
    ) -> Callable[[F], F]:
        """Check the options now; the returned decorator registers the handler.

        ``name=None`` declares a root entity named after the function (so does
        ``is_root=True`` with a name). ``enabled=False`` registers nothing and checks nothing.
        ``scheduling`` holds the options :func:`schedule_options` checks (``schedule``,
        ``retry``, ``group``...).
        """
        if enabled is False:
            return _left_out
        label = _label(name, is_root)
        if name is None:
            is_root = True
        elif isinstance(name, str):
            check_entity_name(name)
        elif _is_handler(name):
            raise TypeError(
                f"@app.{kind.value} needs parentheses: @app.{kind.value}() declares a root "
                f"entity, @app.{kind.value}('name') a named one"
            )
        elif not is_deferred(name):
            raise RegistrationError(f"name={name!r} is not a str, None or a callable")
        elif is_root:
            raise RegistrationError(f"{label}: a root entity needs a fixed name, not a callable")
        if not (enabled is True or is_deferred(enabled)):
            raise RegistrationError(f"{label}: enabled={enabled!r} is not a bool or a callable")
        extra = schedule_options(label, kind, interval=interval, publish=publish, **scheduling)
        if "strategy" in extra:
            publish = "now"
        if kind is DeviceKind.TELEMETRY and not is_deferred(interval) and "schedule" not in extra:
            interval = check_seconds(label, "interval", interval)
        for option, value in (("timeout", timeout), ("heartbeat", heartbeat)):
            if value is not None:
                check_seconds(label, option, value)
        if restart not in RESTART_TYPES:
            raise RegistrationError(
                f"{label}: restart={restart!r} is not one of {', '.join(RESTART_TYPES)}"
            )
        _check_policy(label, persist, has_store)
        _check_publish(label, publish, persist, has_store)
        if enabled is True and (isinstance(name, str) or is_root):
            self._refuse_taken(name if isinstance(name, str) else None, is_root)
        declared = {
            "kind": kind,
            "name_spec": None if name is None or isinstance(name, str) else name,
            "is_root": is_root,
            "enabled": enabled,
            "init": init,
            "interval": interval,
            "summary": _text(label, "summary", summary),
            "behavior": _texts(label, "behavior", behavior),
            "effects": _texts(label, "effects", effects),
            "tags": _texts(label, "tags", tags),
            "discoverable": _flag(label, "discoverable", discoverable),
        }
        options: dict[str, Any] = {
            "interval": None if is_deferred(interval) else interval,
            "persist": persist,
            "restart": restart,
            "timeout": None if timeout is None else float(timeout),
            "heartbeat": None if heartbeat is None else float(heartbeat),
            "asyncio": asyncio,
            **extra,
        }
        if publish != "now":  # only the kinds that take the option pass it on
            options["publish"] = publish
        options.update(
            state_model=_model(label, "state_model", state_model),
            payload_model=_model(label, "payload_model", payload_model),
            **_versions(label, state_version, migrate),
        )
        if stream is not None:
            options["stream"] = _check_stream(label, stream)

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
        spec = DeviceSpec(
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
        registration = Registration(name=name, func=function, spec=spec, **declared)
        self.registrations.append(registration)
        if registration.is_static:
            self.specs[name] = spec
        if registration.is_root and self._root is None:
            self._root = registration
        if registration.name_spec is None and registration.enabled is True:
            self._taken[name] = registration
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


def _label(name: object, is_root: bool) -> str:
    """How errors name a registration before its function is known."""
    if isinstance(name, str):
        return name
    return "a root entity" if name is None or is_root else f"name={name!r}"


def _is_handler(value: object) -> bool:
    """A function given where a name belongs: ``@app.device`` used without parentheses."""
    return inspect.iscoroutinefunction(value) or inspect.isasyncgenfunction(value)


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


def _text(device: str, option: str, value: object) -> str | None:
    if value is None or isinstance(value, str):
        return value
    raise RegistrationError(f"{device}: {option}={value!r} is not a str")


def _texts(device: str, option: str, values: Iterable[str]) -> tuple[str, ...]:
    """A list of strings as a tuple; one bare string is refused (it would become letters)."""
    try:
        items: tuple[Any, ...] = () if isinstance(values, str) else tuple(values)
    except TypeError:  # not iterable
        items = (None,)
    if isinstance(values, str) or not all(isinstance(v, str) for v in items):
        raise RegistrationError(f"{device}: {option}={values!r} is not a list of str")
    return items


def check_seconds(device: str, option: str, value: object, source: str = "") -> float:
    """``value`` as a positive, finite number of seconds, or an error naming the device
    (and, with ``source``, where the value came from)."""
    if isinstance(value, int | float) and not isinstance(value, bool) and 0 < value < math.inf:
        return float(value)
    raise RegistrationError(
        f"{device}: {option} must be a positive number of seconds, got {value!r}{source}"
    )


def _model(device: str, option: str, model: object) -> type | None:
    """``model`` if it is a model class (a pydantic ``BaseModel``, checked by its API so that
    pydantic is not imported here), or ``None``."""
    if model is None:
        return None
    if isinstance(model, type) and callable(getattr(model, "model_validate", None)):
        return model
    raise RegistrationError(
        f"{device}: {option}={model!r} is not a model class (a pydantic BaseModel subclass)"
    )


def _flag(device: str, option: str, value: object) -> bool:
    if isinstance(value, bool):
        return value
    raise RegistrationError(f"{device}: {option}={value!r} is not True or False")


def _versions(
    device: str, version: object, migrate: Mapping[int, Callable[..., Any]] | None
) -> dict[str, Any]:
    """``state_version`` (a whole number from 0) and ``migrate`` (one migration from each
    older version to the next: ``{0: fn, 1: fn}`` for version 2)."""
    if not isinstance(version, int) or isinstance(version, bool) or version < 0:
        raise RegistrationError(f"{device}: state_version={version!r} is not a whole number >= 0")
    steps = dict(migrate or {})
    wanted = set(range(version))
    if steps and set(steps) != wanted:
        raise RegistrationError(
            f"{device}: migrate= needs one migration from each version before {version} "
            f"(keys {sorted(wanted)}), got keys {sorted(steps, key=repr)}"
        )
    for step, function in steps.items():
        if not callable(function):
            raise RegistrationError(f"{device}: migrate[{step}]={function!r} is not callable")
    return {"state_version": version, "migrations": steps}


def _check_stream(name: str, stream: StreamOptions) -> StreamOptions:
    check_options(name, stream.maxsize, stream.backpressure)
    stale_after = stream.stale_after
    if stale_after is not None:
        stale_after = check_seconds(name, "stale_after", stale_after)
    return attrs.evolve(stream, stale_after=stale_after, feeds=check_feeds(name, stream.feeds))


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
