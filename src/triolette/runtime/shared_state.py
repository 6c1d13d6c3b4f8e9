"""Shared state (``@app.state``) and the reactors that drain its events (``@app.react``).

A *state factory* builds one object per serve, injected into every handler that asks for its
type: the factory's return annotation. Its form says how it is closed:

- a function (sync or async) returning ``T``: not closed;
- a generator annotated ``Iterator[T]`` / ``Generator[T, ...]``, or a function returning a
  ``ContextManager[T]``: exited at the end;
- an async generator annotated ``AsyncIterator[T]``, or a function returning an
  ``AsyncContextManager[T]``: exited at the end.

Factories run in registration order after the adapters were entered, so they may take the
settings, adapters and earlier state by annotation; they are closed in reverse order after
the devices stopped and the final flush (see :mod:`triolette.runtime.teardown`).

A *reactor* drains domain events from a state object after each successful handler boundary
(a telemetry cycle, a command) and gets them as its ``events`` parameter, plus what a handler
of the device at that boundary could ask for.
"""

from __future__ import annotations

import collections.abc
import contextlib
import inspect
import logging
import typing
from collections.abc import Callable, Iterable
from typing import Any

import attrs

from triolette.actors.device import DeviceContext
from triolette.core.errors import RegistrationError
from triolette.core.scope import Scope
from triolette.runtime.factories import call_with, parameters
from triolette.runtime.teardown import enter_async, enter_sync
from triolette.stores.devicestore import DeviceStore

logger = logging.getLogger("triolette.app")

MAX_EVENTS = 100_000
"""At most this many events from one drain (a drain that never empties is a bug)."""

_SYNC_MANAGERS = {
    contextlib.AbstractContextManager,
    collections.abc.Iterator,
    collections.abc.Generator,
}
_ASYNC_MANAGERS = {
    contextlib.AbstractAsyncContextManager,
    collections.abc.AsyncIterator,
    collections.abc.AsyncGenerator,
}


@attrs.frozen
class StateFactory:
    key: type
    factory: Callable[..., Any]
    manager: str  # "none", "sync" or "async"

    @property
    def what(self) -> str:
        return f"state {self.key.__qualname__} ({_name(self.factory)})"


@attrs.frozen
class Reactor:
    state: type
    drain: Callable[[Any], Any] | None
    function: Callable[..., Any]

    @property
    def what(self) -> str:
        return f"reactor {_name(self.function)}"


@attrs.define
class SharedState:
    """The app's state factories and reactors, in registration order."""

    factories: list[StateFactory] = attrs.field(factory=list)
    reactors: list[Reactor] = attrs.field(factory=list)

    def copy(self) -> SharedState:
        return SharedState(list(self.factories), list(self.reactors))

    def add_factory(self, factory: Callable[..., Any]) -> StateFactory:
        """Register ``factory``; its return annotation is the key. Refused (naming it): no
        return annotation, a key that is not a class, a key registered twice, a parameter
        that cannot be injected."""
        what = f"state factory {_name(factory)}"
        if not callable(factory):
            raise RegistrationError(f"{what}: not callable (use @app.state without parentheses)")
        parameters(factory, what)
        try:
            returns = typing.get_type_hints(factory).get("return")
        except Exception as error:
            raise RegistrationError(f"{what}: cannot resolve its annotations ({error})") from None
        if returns is None:
            raise RegistrationError(f"{what}: needs a return annotation, the type handlers ask for")
        key, manager = _key_and_manager(returns, factory, what)
        if any(known.key is key for known in self.factories):
            raise RegistrationError(f"{what}: a state factory for {key.__qualname__} exists")
        registered = StateFactory(key, factory, manager)
        self.factories.append(registered)
        return registered

    def override(self, key: type, instance: Any) -> None:
        """Provide ``instance`` for ``key`` instead of what its factory builds (tests).

        ``RegistrationError`` when ``key`` has no factory, ``TypeError`` when ``instance`` is
        not a ``key``. The instance is neither built nor closed by the app.
        """
        where = [i for i, known in enumerate(self.factories) if known.key is key]
        if not where:
            raise RegistrationError(
                f"no state factory for {_name(key)} to override; register one with @app.state"
            )
        if not isinstance(instance, key):
            raise TypeError(f"override of state {_name(key)}: {instance!r} is not one")

        def overridden() -> Any:
            return instance

        self.factories[where[0]] = StateFactory(key, overridden, "none")

    def add_reactor(
        self, state: Any, function: Callable[..., Any], drain: Callable[[Any], Any] | None
    ) -> None:
        """Register a reactor of ``state`` (a type registered with ``@app.state``)."""
        what = f"reactor {_name(function)}"
        if not inspect.iscoroutinefunction(function):
            raise RegistrationError(f"{what}: must be an 'async def' function")
        if not any(known.key is state for known in self.factories):
            raise RegistrationError(
                f"{what}: {_name(state)} is not shared state; register its factory with "
                "@app.state first"
            )
        if drain is not None and not callable(drain):
            raise RegistrationError(f"{what}: drain must be callable, got {drain!r}")
        parameters(function, what)
        self.reactors.append(Reactor(state, drain, function))

    async def build(self, stack: contextlib.AsyncExitStack[Any], scope: Scope) -> None:
        """Build every state object in order and provide it in ``scope`` by its key.

        Context-managed ones are entered into ``stack``. An error (a factory that raises, a
        result not of its annotated type) propagates; those built before are closed with
        ``stack``.
        """
        for state in self.factories:
            value = await _built(state, stack, scope)
            if not isinstance(value, state.key):
                raise RegistrationError(
                    f"{state.what}: returned {type(value).__qualname__}, not "
                    f"{state.key.__qualname__} as annotated"
                )
            scope.provide(state.key, value, what=state.what)

    async def react(self, scope: Scope, given: dict[str, Any]) -> None:
        """One handler boundary: drain each state's events (once per state and drain), and
        call its reactors with them as ``events``; nothing is called for no events.

        ``given`` maps parameter names to what the handler's own context provides; the rest
        comes from ``scope``. An error (a drain or a reactor that raises, a drain result that
        is not a list of events) propagates: the caller reports it as the handler's.
        """
        drained: dict[tuple[type, Any], list[Any]] = {}
        for reactor in self.reactors:
            key = (reactor.state, reactor.drain)
            if key not in drained:
                drained[key] = await _drain(scope.get(reactor.state), reactor)
            events = drained[key]
            if events:
                await call_with(reactor.function, scope, reactor.what, {**given, "events": events})


async def _built(state: StateFactory, stack: contextlib.AsyncExitStack[Any], scope: Scope) -> Any:
    factory = state.factory
    if inspect.isasyncgenfunction(factory):
        opened = call_with(contextlib.asynccontextmanager(factory), scope, state.what)
        return await enter_async(stack, opened, state.what)
    if inspect.isgeneratorfunction(factory):
        entered = call_with(contextlib.contextmanager(factory), scope, state.what)
        return enter_sync(stack, entered, state.what)
    result = call_with(factory, scope, state.what)
    if inspect.isawaitable(result):
        result = await result
    if state.manager == "async":
        return await enter_async(stack, result, state.what)
    if state.manager == "sync":
        return enter_sync(stack, result, state.what)
    return result


async def _drain(state: Any, reactor: Reactor) -> list[Any]:
    if reactor.drain is not None:
        result = reactor.drain(state)
    else:
        drain = getattr(state, "drain_events", None)
        if drain is None:
            raise AttributeError(
                f"{reactor.what}: {type(state).__qualname__} has no drain_events(); "
                "give @app.react a drain="
            )
        result = drain()
    if inspect.isawaitable(result):
        result = await result
    if result is None:
        return []
    if isinstance(result, str | bytes) or not isinstance(result, Iterable):
        raise TypeError(f"{reactor.what}: a drain must return a list of events, got {result!r}")
    events = list(result)
    if len(events) > MAX_EVENTS:
        raise ValueError(f"{reactor.what}: {len(events)} events from one drain (max {MAX_EVENTS})")
    return events


def _key_and_manager(returns: Any, factory: Any, what: str) -> tuple[type, str]:
    origin = typing.get_origin(returns)
    manager = "none"
    if origin in _SYNC_MANAGERS or origin in _ASYNC_MANAGERS:
        arguments = typing.get_args(returns)
        if not arguments:
            raise RegistrationError(f"{what}: say what it yields, e.g. Iterator[MyState]")
        manager = "sync" if origin in _SYNC_MANAGERS else "async"
        returns = arguments[0]
    elif inspect.isgeneratorfunction(factory) or inspect.isasyncgenfunction(factory):
        raise RegistrationError(
            f"{what}: a generator is annotated Iterator[T] (async: AsyncIterator[T])"
        )
    if not isinstance(returns, type):
        raise RegistrationError(f"{what}: its type {returns!r} is not a class")
    return returns, manager


def _name(thing: Any) -> str:
    return getattr(thing, "__qualname__", None) or repr(thing)


async def react_at_boundary(
    shared: SharedState, ctx: DeviceContext, store: DeviceStore | None
) -> None:
    """The boundary of the handler behind ``ctx``: its reactors may take what it may take
    (its DeviceContext, DeviceStore, logger, and its scope)."""
    scope = ctx.scope.child()
    scope.provide(DeviceContext, ctx)
    if store is not None:
        scope.provide(DeviceStore, store)
    scope.provide(logging.Logger, logging.getLogger(f"triolette.devices.{ctx.name}"))
    await shared.react(scope, {})
