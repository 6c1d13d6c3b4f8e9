"""Where a model field's consumer metadata lives in its JSON schema, and how it is read.

:mod:`triolette.schema` writes the keys; Home Assistant discovery reads them. Models written
for cosalette carry ``x-cosalette-...`` keys instead: they are read too (ours win when a field
has both).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

CONSUMER_KEY = "x-triolette-consumer"
"""Consumer metadata: display name, device class, unit, state class, icon, read_only, aggregate."""
HA_DISCOVERY_KEY = "x-triolette-ha-discovery"
"""Home Assistant specifics: component, templates, expire_after, extra config keys."""
COSALETTE_KEYS = {
    CONSUMER_KEY: "x-cosalette-consumer",
    HA_DISCOVERY_KEY: "x-cosalette-ha-discovery",
}


def consumer_metadata(field_schema: Mapping[str, Any]) -> dict[str, Any] | None:
    """The consumer metadata of one field's JSON schema (ours, else cosalette's), or None."""
    return _read(field_schema, CONSUMER_KEY)


def ha_discovery_metadata(field_schema: Mapping[str, Any]) -> dict[str, Any]:
    """The Home Assistant metadata of one field's JSON schema (ours, else cosalette's)."""
    return _read(field_schema, HA_DISCOVERY_KEY) or {}


def _read(field_schema: Mapping[str, Any], key: str) -> dict[str, Any] | None:
    for candidate in (key, COSALETTE_KEYS[key]):
        value = field_schema.get(candidate)
        if isinstance(value, Mapping):
            return dict(value)
    return None
