"""What the bridge declares, as `triolette registry` and its AsyncAPI document show it."""

from __future__ import annotations

import json
from typing import Any

from examples.boiler_bridge.app import app

from triolette import build_registry_snapshot, format_registry_table


def test_the_registry_lists_the_entities_their_models_and_the_adapter():
    table = format_registry_table(build_registry_snapshot(app))
    assert "boiler2mqtt 1.0.0: A heating boiler on MQTT, through ebusd" in table
    assert "state=FlowTargetState, payload=FlowTargetRequest" in table
    assert "trigger=mqtt" in table
    assert "adapter BoilerPort: examples.boiler_bridge.adapters:EbusdBoiler" in table


def schemas_with(document: Any, key: str) -> list[dict[str, Any]]:
    found: list[dict[str, Any]] = []
    if isinstance(document, dict):
        if key in document:
            found.append(document)
        for value in document.values():
            found += schemas_with(value, key)
    elif isinstance(document, list):
        for value in document:
            found += schemas_with(value, key)
    return found


def test_the_field_metadata_reaches_the_asyncapi_document():
    document = app.asyncapi()
    json.dumps(document)  # JSON-safe
    units = [schema["unit"] for schema in schemas_with(document, "unit")]
    assert units.count("bar") == 1
    assert units.count("°C") == 6  # four temperatures, the flow target (state and payload)
    problem = [s for s in schemas_with(document, "device_class") if s["device_class"] == "problem"]
    assert len(problem) == 1
