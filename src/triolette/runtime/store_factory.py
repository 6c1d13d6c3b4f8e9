"""``App(store=factory)``: a store built when the app starts serving, from its settings.

A factory is a synchronous callable whose parameters are annotated with the settings' class
(or take nothing); each serve calls it once, before any actor starts.
"""

from __future__ import annotations

import inspect
import typing
from collections.abc import Callable
from typing import Any

from triolette.stores.protocol import Store

StoreFactory = Callable[..., Store]
"""A callable returning the app's store; its parameters are injected by type (the settings)."""


def split_store(store: Store | StoreFactory | None) -> tuple[Store | None, StoreFactory | None]:
    """An ``App(store=)`` value as ``(store, None)``, or ``(None, factory)`` for a callable
    that is not itself a Store (the app's ``store`` and ``store_factory``)."""
    if callable(store) and not isinstance(store, Store):
        return None, store
    return store, None


def store_at_start(store: StoreFactory, settings: Any) -> Store:
    """What the factory ``store`` returns, called with the app's ``settings``.

    Raises TypeError naming the factory for a parameter it cannot inject (only the settings,
    by their class), for an async factory, and for a result that is not a Store; what the
    factory raises propagates.
    """
    name = getattr(store, "__qualname__", repr(store))
    if inspect.iscoroutinefunction(store):
        raise TypeError(f"store factory {name} must be synchronous")
    arguments = [_argument(name, store, p, settings) for p in _parameters(store)]
    built = store(*arguments)
    if not isinstance(built, Store):
        raise TypeError(f"store factory {name} returned {built!r}, which is not a Store")
    return built


def _parameters(factory: Callable[..., Any]) -> list[inspect.Parameter]:
    return [
        p
        for p in inspect.signature(factory).parameters.values()
        if p.default is inspect.Parameter.empty
        and p.kind not in (inspect.Parameter.VAR_POSITIONAL, inspect.Parameter.VAR_KEYWORD)
    ]


def _argument(
    name: str, factory: Callable[..., Any], parameter: inspect.Parameter, settings: Any
) -> Any:
    try:
        annotation = typing.get_type_hints(factory).get(parameter.name, parameter.annotation)
    except Exception:
        annotation = parameter.annotation
    if settings is not None and isinstance(annotation, type) and isinstance(settings, annotation):
        return settings
    raise TypeError(
        f"store factory {name}: cannot inject parameter {parameter.name!r}; "
        "a store factory takes only the app's settings, annotated with their class"
    )
