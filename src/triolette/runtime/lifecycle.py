"""What a serve builds before its devices and closes after them: settings, adapters,
``on_configure`` hooks, shared state, the lifespan. One ``AsyncExitStack``, owned by the serve.

Order at start (each step may use what the steps before it provided):

1. the settings are provided by their class, and the clock as ``ClockPort``;
2. the adapters are built and entered (their dry-run twins in a dry run);
3. the ``on_configure`` hooks run once, registration unlocked (adapters they register are
   built right after them);
4. deferred options (``interval=setting_ref(...)``) are resolved with the settings;
5. the shared state is built (after the adapters: a state object may take one);
6. later, once the store is loaded and MQTT started, the lifespan is entered; an object it
   yields is provided by its type.

At the end, after the devices stopped and the final flush, the stack closes in reverse:
lifespan, shared state, adapters; shielded, bounded by the shutdown deadline, each error
logged (:mod:`triolette.runtime.teardown`).
"""

from __future__ import annotations

import contextlib
import inspect
import math
from collections.abc import Callable, Iterable
from typing import TYPE_CHECKING, Any

import attrs

from triolette.actors.clock import TrioClock
from triolette.actors.spec import DeviceSpec
from triolette.core.clock import ClockPort
from triolette.core.deferred import resolve
from triolette.core.errors import RegistrationError, SettingsError
from triolette.core.scope import Scope
from triolette.runtime.factories import call_with, parameters
from triolette.runtime.teardown import enter_async

if TYPE_CHECKING:
    from triolette.runtime.app import App

Lifespan = Callable[["AppContext"], contextlib.AbstractAsyncContextManager[Any]]


class AppContext:
    """What a lifespan gets: the app's ``settings`` and ``adapter(port)``."""

    def __init__(self, app: App, scope: Scope) -> None:
        self.app = app
        self._scope = scope

    @property
    def settings(self) -> Any:
        return self.app.settings

    def adapter(self, port: Any) -> Any:
        """The adapter instance for ``port``; a LookupError naming the port otherwise."""
        return self._scope.get(port, asked_by="lifespan: adapter()")


def check_hook(hook: Callable[..., Any]) -> None:
    """Refuse (naming it) a configure hook that is not callable or cannot be injected."""
    what = f"on_configure hook {getattr(hook, '__qualname__', hook)!r}"
    if not callable(hook):
        raise RegistrationError(f"{what}: not callable (use @app.on_configure without parentheses)")
    parameters(hook, what)


def check_lifespan(lifespan: object) -> None:
    if lifespan is not None and not callable(lifespan):
        raise RegistrationError(f"lifespan: must be a function of an AppContext, got {lifespan!r}")


def provide_basics(app: App, scope: Scope) -> None:
    """The settings by their class (when the app has some), and the clock."""
    if app.settings is None and app.settings_class is not None:
        raise app.settings_error or SettingsError("settings", "the app's settings were not built")
    if app.settings is not None:
        scope.provide(type(app.settings), app.settings, what="the app's settings")
    if not scope.provides(ClockPort):
        scope.provide(ClockPort, TrioClock(), what="the clock")


async def open_parts(app: App, stack: contextlib.AsyncExitStack[Any], scope: Scope) -> None:
    """Steps 1, 2, 3 and 5 of the start (see the module). Errors propagate; what was entered
    before is closed with ``stack``."""
    provide_basics(app, scope)
    adapters = app.registry.adapters
    built = await adapters.enter(stack, scope, dry_run=app.dry_run)
    if app.configure_hooks:
        stack.callback(_restore_registrations(app))
        await run_configure_hooks(app, scope)
        adapters = app.registry.adapters
        await adapters.enter(stack, scope, dry_run=app.dry_run, skip=frozenset(built))
    await app.shared.build(stack, scope)


def _restore_registrations(app: App) -> Callable[[], None]:
    """What the hooks register lasts for their serve: the next serve runs them again."""
    registry = app.registry
    specs, adapters, shared = dict(registry.specs), registry.adapters.copy(), app.shared.copy()

    def restore() -> None:
        registry.specs, registry.adapters, app.shared = specs, adapters, shared

    return restore


async def run_configure_hooks(app: App, scope: Scope) -> None:
    """Call each hook once (async ones awaited), with registration unlocked meanwhile.

    What they register is undone when the serve's stack closes (see :func:`open_parts`).
    """
    registry = app.registry
    locked_by, registry.locked_by = registry.locked_by, None
    try:
        for hook in list(app.configure_hooks):
            what = f"on_configure hook {getattr(hook, '__qualname__', hook)!r}"
            result = call_with(hook, scope, what)
            if inspect.isawaitable(result):
                await result
    finally:
        registry.locked_by = locked_by


async def enter_lifespan(app: App, stack: contextlib.AsyncExitStack[Any], scope: Scope) -> None:
    """Step 6: enter ``app.lifespan``; provide a yielded object by its type (a clash with
    something already provided is a RegistrationError)."""
    if app.lifespan is None:
        return
    value = await enter_async(stack, app.lifespan(AppContext(app, scope)), "lifespan")
    if value is not None:
        scope.provide(type(value), value, what="the lifespan's object")


def resolve_options(specs: Iterable[DeviceSpec], settings: Any) -> list[DeviceSpec]:
    """The specs with their deferred options decided by ``settings`` (step 4).

    A deferred ``interval`` must give a positive, finite number of seconds; otherwise a
    RegistrationError names the device and the option.
    """
    resolved = []
    for spec in specs:
        if spec.deferred:
            values: dict[str, Any] = {
                option: _seconds(
                    spec.name, option, resolve(value, settings, what=f"{spec.name}: {option}")
                )
                for option, value in spec.deferred
            }
            spec = attrs.evolve(spec, deferred=(), **values)
        resolved.append(spec)
    return resolved


def _seconds(device: str, option: str, value: object) -> float:
    if isinstance(value, int | float) and not isinstance(value, bool) and 0 < value < math.inf:
        return float(value)
    raise RegistrationError(
        f"{device}: {option} must be a positive number of seconds, got {value!r} from the settings"
    )
