"""Dependency injection by annotation, resolved once when a handler is registered.

A handler asks for what it needs by annotating its parameters: ``DeviceContext``, ``DeviceStore``
(any parameter name), ``logging.Logger`` or a registered adapter's port type, optionally as
``X | None``; a command handler may also take ``topic: str`` and ``payload: str`` by name.
Anything else is a :class:`~triolette.RegistrationError` naming the handler and the parameter,
raised at registration, never at the first call.
"""

from __future__ import annotations

import inspect
import logging
import types
import typing
from collections.abc import Callable, Mapping
from typing import Any

from triolette.actors.device import DeviceContext
from triolette.actors.spec import Handler
from triolette.core.errors import RegistrationError
from triolette.core.kinds import DeviceKind
from triolette.core.messages import Message
from triolette.stores.devicestore import DeviceStore

Provider = Callable[[DeviceContext, DeviceStore | None, Message | None], Any]

_BY_TYPE: dict[Any, Provider] = {
    DeviceContext: lambda ctx, store, message: ctx,
    DeviceStore: lambda ctx, store, message: store,
    logging.Logger: lambda ctx, store, message: logging.getLogger(f"triolette.devices.{ctx.name}"),
}
_COMMAND_BY_NAME: dict[str, Provider] = {
    "topic": lambda ctx, store, message: message.topic if message else "",
    "payload": lambda ctx, store, message: message.text if message else "",
}
_WHAT = "DeviceContext, DeviceStore, logging.Logger or a registered adapter's type"


def bind(
    device: str,
    kind: DeviceKind,
    function: Callable[..., Any],
    extra: Mapping[Any, Provider] | None = None,
) -> tuple[Handler, bool]:
    """Return the handler called with injected arguments, and whether it uses a DeviceStore.

    ``extra`` adds injectables by annotation (the app's adapters).
    """
    where = f"{device}: handler {getattr(function, '__qualname__', function)!r}"
    if not inspect.iscoroutinefunction(function):
        raise RegistrationError(f"{where} must be an 'async def' function")
    hints = _annotations(function, where)
    positional: list[Provider] = []
    keywords: dict[str, Provider] = {}
    skipped = False  # after a parameter left at its default, the rest go by keyword
    for parameter in inspect.signature(function).parameters.values():
        provider = _provider(
            parameter, hints.get(parameter.name, parameter.annotation), kind, extra or {}
        )
        if provider is None:
            if parameter.default is not inspect.Parameter.empty:
                skipped = True
                continue
            hint = "; a command handler may also take topic: str and payload: str" * (
                kind is DeviceKind.COMMAND
            )
            raise RegistrationError(
                f"{where}: cannot inject parameter {parameter.name!r} "
                f"(annotated {_shown(parameter.annotation)}); annotate it as {_WHAT}{hint}"
            )
        if parameter.kind is inspect.Parameter.KEYWORD_ONLY or (
            skipped and parameter.kind is inspect.Parameter.POSITIONAL_OR_KEYWORD
        ):
            keywords[parameter.name] = provider
        elif skipped:
            raise RegistrationError(
                f"{where}: positional-only parameter {parameter.name!r} follows one left at "
                "its default, so it cannot be passed"
            )
        else:
            positional.append(provider)
    uses_store = any(p is _BY_TYPE[DeviceStore] for p in [*positional, *keywords.values()])

    return _caller(function, positional, keywords), uses_store


def _caller(
    function: Callable[..., Any], positional: list[Provider], keywords: dict[str, Provider]
) -> Handler:
    """The call with its arguments provided; the usual shapes skip building argument lists."""
    if not keywords and len(positional) == 0:
        return lambda ctx, store, message: function()
    if not keywords and len(positional) == 1:
        (first,) = positional
        return lambda ctx, store, message: function(first(ctx, store, message))

    def call(ctx: DeviceContext, store: DeviceStore | None, message: Message | None) -> Any:
        return function(
            *[provide(ctx, store, message) for provide in positional],
            **{name: provide(ctx, store, message) for name, provide in keywords.items()},
        )

    return call


def _provider(
    parameter: inspect.Parameter, annotation: Any, kind: DeviceKind, extra: Mapping[Any, Provider]
) -> Provider | None:
    if parameter.kind in (inspect.Parameter.VAR_POSITIONAL, inspect.Parameter.VAR_KEYWORD):
        return None
    by_name = kind is DeviceKind.COMMAND and parameter.name in _COMMAND_BY_NAME
    if by_name and annotation in (str, inspect.Parameter.empty):
        return _COMMAND_BY_NAME[parameter.name]
    if typing.get_origin(annotation) in (typing.Union, types.UnionType):
        others = [arg for arg in typing.get_args(annotation) if arg is not type(None)]
        if len(others) == 1:  # Optional[X] / X | None: injected as X
            annotation = others[0]
    try:
        return _BY_TYPE.get(annotation) or extra.get(annotation)
    except TypeError:  # an unhashable annotation
        return None


def _annotations(function: Callable[..., Any], where: str) -> dict[str, Any]:
    try:
        return typing.get_type_hints(function)
    except NameError as error:
        raise RegistrationError(f"{where}: cannot resolve an annotation ({error})") from error


def _shown(annotation: Any) -> str:
    if annotation is inspect.Parameter.empty:
        return "nothing"
    return getattr(annotation, "__qualname__", None) or repr(annotation)
