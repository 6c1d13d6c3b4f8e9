"""Dependency injection by annotation, bound once when a handler is registered.

A handler asks for what it needs by annotating its parameters: ``DeviceContext``, ``DeviceStore``
(any parameter name) and ``logging.Logger`` are bound at registration; a command handler may
also take ``topic: str`` and ``payload: str`` by name, or ``payload: Model`` (a pydantic model,
dataclass or ``TypedDict``): the JSON payload parsed and validated into it, a bad one a
:class:`~triolette.PayloadValidationError` raised before the handler is called. Any other
class (an adapter's port, the settings, shared state, an ``init=`` result) is a *need*, looked
up in the device's :class:`~triolette.core.scope.Scope` when the app runs: :func:`check_needs`
refuses a serve whose scope cannot meet a need before any device starts.
``X | None`` is injected as ``X``.

An unannotated parameter, or one annotated with a built-in type (``int``, ``dict``...) that
nothing could provide, is a :class:`~triolette.RegistrationError` naming the handler and the
parameter, raised at registration, never at the first call.
"""

from __future__ import annotations

import contextlib
import inspect
import logging
import typing
from collections.abc import Callable, Collection, Iterable, Mapping
from typing import Any

import attrs

from triolette.actors.contracts import is_model, parse_payload
from triolette.actors.device import DeviceContext
from triolette.actors.spec import Handler
from triolette.core.errors import RegistrationError
from triolette.core.kinds import DeviceKind
from triolette.core.messages import Message
from triolette.core.scope import MISSING, Scope, shown, unwrapped
from triolette.stores.devicestore import DeviceStore

Provider = Callable[[DeviceContext, DeviceStore | None, Message | None], Any]

_BY_TYPE: dict[Any, Provider] = {
    DeviceContext: lambda ctx, store, message: ctx,
    DeviceStore: lambda ctx, store, message: store,
    logging.Logger: lambda ctx, store, message: logging.getLogger(f"triolette.devices.{ctx.name}"),
}
FRAMEWORK_TYPES = frozenset(_BY_TYPE)
"""The types every handler may take from the framework; nothing else is provided as one."""
_COMMAND_BY_NAME: dict[str, Provider] = {
    "topic": lambda ctx, store, message: message.topic if message else "",
    "payload": lambda ctx, store, message: message.text if message else "",
}
_WHAT = (
    "DeviceContext, DeviceStore, logging.Logger, or a class the app provides "
    "(an adapter's port, the settings, shared state)"
)
_NEVER_PROVIDED = frozenset(
    {int, float, complex, str, bytes, bool, dict, list, tuple, set, frozenset, object, type(None)}
)
"""Built-in types: a parameter annotated with one cannot be injected (a typo, or a mistake)."""
NEVER_PROVIDED = _NEVER_PROVIDED


@attrs.frozen
class Need:
    """A parameter whose value the scope provides when the app runs."""

    handler: str
    parameter: str
    annotation: Any
    optional: bool = False
    """Annotated ``X | None`` or given a default: left at that when nothing provides it."""
    default: Any = None

    @property
    def asked_by(self) -> str:
        return f"{self.handler}: parameter {self.parameter!r}"


@attrs.frozen
class Bound:
    """A handler with its arguments resolved: ``call`` it with what the actor provides."""

    call: Handler
    uses_store: bool
    needs: tuple[Need, ...]


def bind(
    device: str,
    kind: DeviceKind,
    function: Callable[..., Any],
    ports: Collection[Any] = (),
    extra: Mapping[Any, Provider] | None = None,
    withheld: Collection[Any] = (),
    *,
    role: str = "handler",
) -> Bound:
    """Bind ``function``'s parameters; a parameter nothing could provide is refused here.

    ``ports`` are the adapters' ports registered so far: one may be a built-in type.
    ``extra`` adds what the kind's actor provides per call (a telemetry's TriggerPayload);
    ``withheld`` are such types that this kind does not provide, refused here. A
    ``@app.device`` handler may be an async generator. With ``role="init"`` the function is an
    ``init=`` factory, which must be synchronous (its call returns its result).
    """
    # Over 50 lines: one pass over the parameters, each bound or refused with its reason.
    where = f"{device}: {role} {getattr(function, '__qualname__', function)!r}"
    _check_shape(where, kind, function, role)
    hints = _annotations(function, where)
    positional: list[Provider] = []
    keywords: dict[str, Provider] = {}
    needs: list[Need] = []
    skipped = False  # after a parameter left at its default, the rest go by keyword
    for parameter in inspect.signature(function).parameters.values():
        annotation = hints.get(parameter.name, parameter.annotation)
        provider = _provider(parameter, annotation, kind, extra or {})
        withheld_here = unwrapped(annotation) in withheld
        if provider is None and not withheld_here and _deferrable(parameter, annotation, ports):
            has_default = parameter.default is not inspect.Parameter.empty
            optional = has_default or unwrapped(annotation) is not annotation
            default = parameter.default if has_default else None
            need = Need(where, parameter.name, unwrapped(annotation), optional, default)
            needs.append(need)
            provider = _from_scope(need)
        if provider is None:
            if parameter.default is not inspect.Parameter.empty:
                skipped = True
                continue
            hint = (
                "; a command handler may also take topic: str, and payload: str (the raw "
                "text) or payload: Model (a pydantic model, dataclass or TypedDict)"
            ) * (kind is DeviceKind.COMMAND)
            raise RegistrationError(
                f"{where}: cannot inject parameter {parameter.name!r} "
                f"(annotated {_annotated(parameter)}); annotate it as {_WHAT}{hint}"
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
    return Bound(_caller(function, positional, keywords), uses_store, tuple(needs))


def _check_shape(where: str, kind: DeviceKind, function: Callable[..., Any], role: str) -> None:
    is_generator = inspect.isasyncgenfunction(function)
    if role == "init":
        call = getattr(function, "__call__", None)  # noqa: B004 - an object's own __call__
        if inspect.iscoroutinefunction(function) or inspect.iscoroutinefunction(call):
            raise RegistrationError(f"{where} must be a plain (synchronous) function, not async")
        if is_generator or not callable(function):
            raise RegistrationError(f"{where} must be a plain (synchronous) function")
    elif is_generator and kind not in (DeviceKind.DEVICE, DeviceKind.STREAM):
        raise RegistrationError(
            f"{where} is an async generator; only @app.device and @app.stream handlers may "
            "yield, "
            f"a {kind.value} handler is an 'async def' function that returns"
        )
    elif not (is_generator or inspect.iscoroutinefunction(function)):
        raise RegistrationError(f"{where} must be an 'async def' function")


def check_needs(needs: Iterable[Need], scope: Scope) -> None:
    """Raise a RegistrationError for the first need ``scope`` cannot meet, naming it."""
    for need in needs:
        if not need.optional and not scope.provides(need.annotation):
            provided = ", ".join(scope.names()) or "nothing"
            raise RegistrationError(
                f"{need.asked_by} asks for {shown(need.annotation)}, which nothing provides "
                f"(provided: {provided}); register an adapter for it, or annotate it as {_WHAT}"
            )


def _from_scope(need: Need) -> Provider:
    annotation, asked_by = need.annotation, need.asked_by
    if not need.optional:
        return lambda ctx, store, message: ctx.scope.get(annotation, asked_by=asked_by)
    default = need.default

    def optional(ctx: DeviceContext, store: DeviceStore | None, message: Message | None) -> Any:
        found = ctx.scope.find(annotation)
        return default if found is MISSING else found

    return optional


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
    if by_name and parameter.name == "payload" and is_model(annotation):
        return _parsed_payload(annotation)
    try:
        target = unwrapped(annotation)
        return _BY_TYPE.get(target) or extra.get(target)
    except TypeError:  # an unhashable annotation
        return None


def _parsed_payload(model: type) -> Provider:
    """The command's JSON payload validated into ``model``; a bad one raises
    :class:`~triolette.PayloadValidationError` before the handler is called."""

    def parsed(ctx: DeviceContext, store: DeviceStore | None, message: Message | None) -> Any:
        return parse_payload(ctx.name, model, message.text if message else "")

    return parsed


def _deferrable(parameter: inspect.Parameter, annotation: Any, ports: Collection[Any]) -> bool:
    """Whether the app could provide ``annotation`` when it runs: a class, not a built-in
    (unless an adapter was registered for it)."""
    if parameter.kind in (inspect.Parameter.VAR_POSITIONAL, inspect.Parameter.VAR_KEYWORD):
        return False
    if annotation is inspect.Parameter.empty:
        return False
    target = unwrapped(annotation)
    with contextlib.suppress(TypeError):  # an unhashable annotation
        if target in ports:
            return True
    origin = typing.get_origin(target) or target  # Stream[Reading] is provided as such
    return isinstance(origin, type) and origin not in _NEVER_PROVIDED


def _annotations(function: Callable[..., Any], where: str) -> dict[str, Any]:
    try:
        return typing.get_type_hints(function)
    except NameError as error:
        raise RegistrationError(f"{where}: cannot resolve an annotation ({error})") from error


def _annotated(parameter: inspect.Parameter) -> str:
    empty = parameter.annotation is inspect.Parameter.empty
    return "nothing" if empty else shown(parameter.annotation)
