"""Metadata for the fields of state and payload models: who reads them and how.

Each producer returns a dict for a pydantic field's ``json_schema_extra=``; the Home Assistant
discovery (:mod:`triolette.runtime.discovery`) reads it, and only fields that carry consumer
metadata become entities::

    from pydantic import BaseModel, Field
    from triolette import schema

    class Climate(BaseModel):
        celsius: float = Field(json_schema_extra=schema.temperature("Temperature"))
        humidity: float = Field(json_schema_extra=schema.percent("Humidity"))
        heating: bool = Field(
            json_schema_extra=schema.merge(
                schema.consumer(display_name="Heating", icon="mdi:radiator"),
                schema.ha_discovery(extra={"entity_category": "diagnostic"}),
            )
        )

The keys: :data:`CONSUMER_KEY` (``x-triolette-consumer``) and :data:`HA_DISCOVERY_KEY`
(``x-triolette-ha-discovery``). Models written for cosalette carry ``x-cosalette-consumer``
and ``x-cosalette-ha-discovery``; the readers here take those too (ours win when a field has
both). This module needs no pydantic: the producers build plain dicts.
"""

from __future__ import annotations

import unicodedata
from collections.abc import Mapping
from typing import Any, Literal

from triolette.core.field_meta import (
    CONSUMER_KEY as CONSUMER_KEY,
)
from triolette.core.field_meta import (
    HA_DISCOVERY_KEY as HA_DISCOVERY_KEY,
)
from triolette.core.field_meta import (
    consumer_metadata as consumer_metadata,
)
from triolette.core.field_meta import (
    ha_discovery_metadata as ha_discovery_metadata,
)

__all__ = [
    "CONSUMER_KEY",
    "HA_DISCOVERY_KEY",
    "consumer",
    "consumer_metadata",
    "ha_discovery",
    "ha_discovery_metadata",
    "merge",
    "percent",
    "temperature",
]

Aggregate = Literal["count", "min", "max", "avg", "sum"]
_AGGREGATES = ("count", "min", "max", "avg", "sum")


def consumer(
    *,
    display_name: str | None = None,
    device_class: str | None = None,
    unit: str | None = None,
    state_class: str | None = None,
    icon: str | None = None,
    read_only: bool | None = None,
    aggregate: Aggregate | None = None,
) -> dict[str, Any]:
    """Consumer metadata of one field: ``{CONSUMER_KEY: {...}}`` with the options given.

    ``read_only=True`` keeps a payload model's field from becoming a control. ``aggregate``
    is for array fields (``count``, ``min``, ``max``, ``avg``, ``sum``). Raises ValueError for
    a text with invisible or bidirectional characters, or an unknown ``aggregate``.
    """
    if aggregate is not None and aggregate not in _AGGREGATES:
        raise ValueError(f"aggregate must be one of {', '.join(_AGGREGATES)}, got {aggregate!r}")
    if read_only is not None and not isinstance(read_only, bool):
        raise ValueError(f"read_only must be a bool, got {read_only!r}")
    meta = {
        "display_name": display_name,
        "device_class": device_class,
        "unit": unit,
        "state_class": state_class,
        "icon": icon,
        "read_only": read_only,
        "aggregate": aggregate,
    }
    return {CONSUMER_KEY: _checked({k: v for k, v in meta.items() if v is not None})}


def temperature(display_name: str) -> dict[str, Any]:
    """A temperature in degrees Celsius, a measurement."""
    return consumer(
        display_name=display_name,
        device_class="temperature",
        unit="°C",
        state_class="measurement",
    )


def percent(display_name: str, *, icon: str | None = None) -> dict[str, Any]:
    """A percentage, a measurement (with ``icon`` only when given)."""
    return consumer(display_name=display_name, unit="%", state_class="measurement", icon=icon)


def ha_discovery(
    *,
    component: str | None = None,
    value_template: str | None = None,
    command_template: str | None = None,
    expire_after: int | None = None,
    extra: Mapping[str, Any] | None = None,
) -> dict[str, Any]:
    """Home Assistant specifics of one field: ``{HA_DISCOVERY_KEY: {...}}``.

    ``component`` chooses a payload field's platform (``switch``, ``number``, ``select``,
    ``text``, ``button``...); a state field is always a ``sensor`` or ``binary_sensor``.
    ``value_template`` and ``command_template`` replace the generated ones; ``expire_after``
    (seconds) is passed on; ``extra`` is merged into the entity's config as is (its keys win).
    Raises ValueError for invisible or bidirectional characters, a bad ``expire_after``.
    """
    if expire_after is not None and (
        isinstance(expire_after, bool) or not isinstance(expire_after, int) or expire_after < 0
    ):
        raise ValueError(f"expire_after must be a whole number of seconds, got {expire_after!r}")
    meta: dict[str, Any] = {
        "component": component,
        "value_template": value_template,
        "command_template": command_template,
        "expire_after": expire_after,
        "extra": dict(extra) if extra is not None else None,
    }
    return {HA_DISCOVERY_KEY: _checked({k: v for k, v in meta.items() if v is not None})}


def merge(*blocks: Mapping[str, Any]) -> dict[str, Any]:
    """One ``json_schema_extra`` from several producers; the same key twice is a ValueError."""
    merged: dict[str, Any] = {}
    for block in blocks:
        for key, value in block.items():
            if key in merged:
                raise ValueError(f"merge: the key {key!r} is given twice")
            merged[key] = value
    return merged


def _checked(meta: dict[str, Any], path: str = "") -> dict[str, Any]:
    """``meta``, once no text in it holds an invisible or bidirectional character."""
    for key, value in meta.items():
        where = f"{path}{key}"
        if isinstance(value, Mapping):
            _checked(dict(value), f"{where}.")
        elif isinstance(value, list | tuple):
            _checked({str(i): item for i, item in enumerate(value)}, f"{where}.")
        elif isinstance(value, str):
            _check_text(where, value)
    return meta


def _check_text(where: str, text: str) -> None:
    for char in text:
        category = unicodedata.category(char)
        bidi = unicodedata.bidirectional(char)
        if category in ("Cf", "Cc", "Cs", "Co", "Cn") or bidi in _BIDI_CONTROLS:
            raise ValueError(
                f"{where} {text!r} contains {char!r} (U+{ord(char):04X}), an invisible or "
                "bidirectional control character"
            )


_BIDI_CONTROLS = frozenset({"LRE", "RLE", "LRO", "RLO", "PDF", "LRI", "RLI", "FSI", "PDI"})
