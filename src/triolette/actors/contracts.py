"""Typed contracts at run time: a device's state checked against its model, a command's
payload parsed into its model.

A model is a pydantic ``BaseModel``, a dataclass or a ``TypedDict``; pydantic's
``TypeAdapter`` does the work. It is imported on first use only, and each model's adapter is
built once and kept (:func:`adapter`), never per cycle. A device without a model pays nothing:
the actors call into this module only when a model is declared or a handler returned
something other than a dict.

Errors name the device, the model and the field paths (``[temperature]: type=float_parsing``),
never the values, which may hold secrets or be very long. The pydantic error is not chained
(``from None``), so a traceback in the log does not show the values either.
"""

from __future__ import annotations

import dataclasses
import functools
import typing
from collections.abc import Callable, Mapping
from typing import TYPE_CHECKING, Any

from triolette.core.errors import PayloadValidationError, ReturnValidationError

if TYPE_CHECKING:
    from pydantic import TypeAdapter, ValidationError

    from .spec import DeviceSpec


def is_model(annotation: object) -> bool:
    """Whether ``annotation`` is a model class (``BaseModel``, dataclass or ``TypedDict``).

    Checked by shape, so it never imports pydantic.
    """
    if not isinstance(annotation, type):
        return False
    if callable(getattr(annotation, "model_validate", None)):
        return True
    typed_dict = issubclass(annotation, dict) and hasattr(annotation, "__required_keys__")
    return typed_dict or dataclasses.is_dataclass(annotation)


def return_model(function: Callable[..., Any]) -> type | None:
    """The model a handler's return annotation names (``-> Reading`` or
    ``-> Reading | None``), or ``None`` when it names none or cannot be resolved."""
    try:
        annotation = typing.get_type_hints(function).get("return")
    except Exception:  # an unresolvable annotation: the binding reports those for parameters
        return None
    args = [arg for arg in typing.get_args(annotation) if arg is not type(None)]
    if len(args) == 1 and type(None) in typing.get_args(annotation):
        annotation = args[0]
    return annotation if is_model(annotation) else None


@functools.cache
def adapter(model: type) -> TypeAdapter[Any]:
    """The validator of ``model``, built on first use and kept for the process's life."""
    from pydantic import TypeAdapter

    return TypeAdapter(model)


def field_errors(error: ValidationError) -> tuple[str, ...]:
    """``error``'s problems as ``[path][0]: type=code``, without the input values."""
    shown = []
    for problem in error.errors(include_input=False, include_url=False):
        path = "".join(f"[{part}]" for part in problem["loc"]) or "(root)"
        shown.append(f"{path}: type={problem['type']}")
    return tuple(shown)


def state_model_of(spec: DeviceSpec) -> type | None:
    """The model that shapes ``spec``'s state: ``state_model``, else the return annotation's."""
    return spec.state_model or spec.returns_model


def shaped_state(device: str, model: type | None, state: Any) -> Any:
    """``state`` validated against ``model`` and dumped as a JSON-ready dict.

    ``state`` may be a dict or a model instance; fields that are ``None`` are left out, values
    are coerced as the model says (an int for a float field becomes a float). Without a model
    a model instance is dumped the same way and anything else is returned unchanged (the
    caller refuses what is not a dict). Raises :class:`ReturnValidationError` on a mismatch.
    """
    kind: type = type(state)
    if model is None:
        if _is_instance_model(kind):
            return adapter(kind).dump_python(state, mode="json", exclude_none=True)
        return state
    from pydantic import ValidationError

    checker = adapter(model)
    if kind is not model and _is_instance_model(kind):
        state = adapter(kind).dump_python(state)  # another model: its fields are checked
    try:
        value = checker.validate_python(state)
    except ValidationError as error:
        raise ReturnValidationError(device, model.__name__, field_errors(error)) from None
    dumped = checker.dump_python(value, mode="json", exclude_none=True)
    if not isinstance(dumped, Mapping):  # pragma: no cover - models dump to dicts
        raise ReturnValidationError(device, model.__name__, ("(root): type=dict_type",))
    return dumped


def parse_payload(device: str, model: type, text: str) -> Any:
    """``text`` (JSON) parsed and validated into ``model``; a
    :class:`PayloadValidationError` naming the field paths otherwise."""
    from pydantic import ValidationError

    try:
        return adapter(model).validate_json(text)
    except ValidationError as error:
        raise PayloadValidationError(device, model.__name__, field_errors(error)) from None


def _is_instance_model(kind: type) -> bool:
    """Whether instances of ``kind`` are model instances (a TypedDict's are plain dicts)."""
    return callable(getattr(kind, "model_validate", None)) or dataclasses.is_dataclass(kind)
