"""What one device adds to the app's scope: its configuration and its ``init=`` result.

A device's scope (:meth:`Scope.child` of the app's) is built for each start of its actor. It
holds the device's own configuration (the value of its name in a ``name=`` dict) and, once
its ``init=`` factory ran, that factory's result, each under its concrete type. Neither may
shadow what the framework or the app already provides (a ``DeviceContext``, the settings, an
adapter): a handler asking for that type would silently get the other object. No trio here.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from typing import Any

from triolette.actors.device import DeviceContext
from triolette.actors.spec import DeviceSpec, Handler
from triolette.actors.stream import provides as provided_by_actor
from triolette.core.errors import RegistrationError
from triolette.core.messages import Message
from triolette.core.scope import Scope
from triolette.runtime.injection import FRAMEWORK_TYPES, NEVER_PROVIDED, Need, check_needs
from triolette.stores.devicestore import DeviceStore

InitCall = Callable[[DeviceContext, DeviceStore | None, Message | None], None]
"""Runs an ``init=`` factory and provides its result in the device's scope."""


def device_scope(spec: DeviceSpec, app_scope: Scope) -> Scope:
    """A new scope for one start of ``spec``'s actor, over ``app_scope``.

    Its configuration is provided under its type, unless that is a built-in type (a plain
    dict of options is read with ``ctx.config``). Raises RegistrationError for a
    configuration whose type shadows something provided.
    """
    scope = app_scope.child()
    config = spec.config
    if config is not None and type(config) not in NEVER_PROVIDED:
        provide_own(scope, config, what=f"{spec.name}: its configuration (name= dict value)")
    return scope


def provide_own(scope: Scope, instance: Any, *, what: str) -> None:
    """Provide ``instance`` in a device's ``scope`` under its concrete type.

    Raises RegistrationError when that type is a framework type (DeviceContext, DeviceStore,
    Logger) or already provided by the app or by the device itself.
    """
    kind = type(instance)
    if kind in FRAMEWORK_TYPES:
        raise RegistrationError(
            f"{what} is a {kind.__qualname__}, which the framework provides to handlers"
        )
    if scope.provides(kind):
        raise RegistrationError(
            f"{what} is a {kind.__qualname__}, which this device's scope already provides; "
            "a handler asking for it could not tell the two apart: use a class of its own"
        )
    scope.provide(kind, instance, what=what)


def init_runner(call: Handler) -> InitCall:
    """Wrap a bound ``init=`` factory: run it, then provide its result in the device's scope.

    A ``None`` result provides nothing. A result of a built-in type (``dict``, ``int``...) is
    a RegistrationError: no handler can ask for one by type. Whatever the factory raises
    propagates (the start of the device fails; its restart policy applies).
    """

    def run_init(ctx: DeviceContext, store: DeviceStore | None, message: Message | None) -> None:
        result: Any = call(ctx, store, message)
        if result is None:
            return
        what = f"{ctx.name}: the result of init="
        if type(result) in NEVER_PROVIDED:
            raise RegistrationError(
                f"{what} is a {type(result).__qualname__}; a handler cannot ask for a built-in "
                "type, so return an instance of a class of yours (or None)"
            )
        provide_own(ctx.scope, result, what=what)

    return run_init


def check_device_needs(specs: Iterable[DeviceSpec], app_scope: Scope) -> None:
    """Refuse a serve in which some handler asks for something its device's scope lacks.

    What a device's ``init=`` provides is only known once it ran: needs its annotated return
    type meets are left out, and a device whose ``init=`` is not annotated is checked when
    its handler asks (a LookupError naming what is provided).
    """
    for spec in specs:
        scope = device_scope(spec, app_scope)
        if spec.init is not None and spec.init_returns is None:
            continue
        check_needs(
            (n for n in spec.needs if not _from_init(spec, n) and not provided_by_actor(spec, n)),
            scope,
        )


def _from_init(spec: DeviceSpec, need: Need) -> bool:
    returns, wanted = spec.init_returns, need.annotation
    return returns is not None and isinstance(wanted, type) and issubclass(returns, wanted)
