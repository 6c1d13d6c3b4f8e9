"""Calling what the app builds at start (adapters, shared state, hooks) with their parameters
taken from a :class:`~triolette.core.scope.Scope` by annotation. No trio here.

Each parameter is annotated with the type it wants (the settings class, an adapter's port, a
shared state type) or has a default. :func:`check_signature` refuses anything else at
registration; :func:`call_with` looks each one up when the app starts, and a parameter that
nothing provides (and that has no default) is a RegistrationError naming the factory and the
parameter.
"""

from __future__ import annotations

import inspect
import typing
from collections.abc import Callable, Mapping
from typing import Any

from triolette.core.errors import RegistrationError
from triolette.core.scope import MISSING, Scope, shown, unwrapped


def parameters(function: Callable[..., Any], what: str) -> list[tuple[str, Any, Any]]:
    """``(name, annotation, default)`` of each parameter; ``[]`` for a built-in without a
    signature (``int``, ``dict``). Unannotated parameters without a default, ``*args`` and
    ``**kwargs`` are a RegistrationError naming ``what``."""
    try:
        signature = inspect.signature(function)
    except (TypeError, ValueError):
        return []
    target = function.__init__ if isinstance(function, type) else function  # type: ignore[misc]
    try:
        hints = typing.get_type_hints(target)
    except Exception as error:
        raise RegistrationError(f"{what}: cannot resolve an annotation ({error})") from None
    found = []
    for parameter in signature.parameters.values():
        if parameter.kind in (inspect.Parameter.VAR_POSITIONAL, inspect.Parameter.VAR_KEYWORD):
            raise RegistrationError(f"{what}: *args and **kwargs cannot be injected")
        annotation = hints.get(parameter.name, inspect.Parameter.empty)
        if annotation is inspect.Parameter.empty and parameter.default is parameter.empty:
            raise RegistrationError(
                f"{what}: parameter {parameter.name!r} needs an annotation (the settings "
                "class, an adapter's port, a shared state type) or a default"
            )
        if parameter.kind is inspect.Parameter.POSITIONAL_ONLY:
            raise RegistrationError(
                f"{what}: positional-only parameter {parameter.name!r} cannot be injected"
            )
        found.append((parameter.name, annotation, parameter.default))
    return found


def call_with(
    function: Callable[..., Any],
    scope: Scope,
    what: str,
    given: Mapping[str, Any] | None = None,
) -> Any:
    """``function(**arguments)``, each argument from ``given`` by name or ``scope`` by type.

    A parameter nothing provides keeps its default; without one it is a RegistrationError
    naming ``what`` and what the scope provides.
    """
    arguments: dict[str, Any] = {}
    for name, annotation, default in parameters(function, what):
        if given is not None and name in given:
            arguments[name] = given[name]
            continue
        wanted = unwrapped(annotation)
        found = MISSING if annotation is inspect.Parameter.empty else scope.find(wanted)
        if found is not MISSING:
            arguments[name] = found
        elif wanted is not annotation and default is inspect.Parameter.empty:
            arguments[name] = None  # X | None: None when nothing provides X
        elif default is inspect.Parameter.empty:
            provided = ", ".join(scope.names()) or "nothing"
            raise RegistrationError(
                f"{what}: parameter {name!r} asks for {shown(annotation)}, which nothing "
                f"provides yet (provided: {provided})"
            )
    return function(**arguments)
