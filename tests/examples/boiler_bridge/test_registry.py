"""What the bridge declares, as `triolette registry` and its AsyncAPI document show it."""

from __future__ import annotations

import json
from typing import Any

from examples.boiler_bridge.app import app

from triolette import build_registry_snapshot, format_registry_table
from triolette.runtime.discovery import offline_configs


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
    metadata = [s["x-triolette-consumer"] for s in schemas_with(document, "x-triolette-consumer")]
    units = [meta.get("unit") for meta in metadata]
    assert units.count("bar") == 1
    assert units.count("°C") == 6  # four temperatures, the flow target (state and payload)
    assert [m["display_name"] for m in metadata if m.get("device_class") == "problem"] == [
        "Low pressure"
    ]


def test_home_assistant_gets_a_sensor_per_reading_and_a_number_for_the_flow_target():
    configs = offline_configs(app)
    assert sorted(configs) == [
        "homeassistant/binary_sensor/boiler2mqtt/bridge/config",
        "homeassistant/binary_sensor/boiler2mqtt/pressure_low/config",
        "homeassistant/number/boiler2mqtt/flow-target_celsius_cmd/config",
        "homeassistant/sensor/boiler2mqtt/flow-target_celsius/config",
        "homeassistant/sensor/boiler2mqtt/pressure_bar/config",
        "homeassistant/sensor/boiler2mqtt/temperatures_flow/config",
        "homeassistant/sensor/boiler2mqtt/temperatures_flow_target/config",
        "homeassistant/sensor/boiler2mqtt/temperatures_outdoor/config",
        "homeassistant/sensor/boiler2mqtt/temperatures_return_flow/config",
    ]
    control = configs["homeassistant/number/boiler2mqtt/flow-target_celsius_cmd/config"]
    assert (control["min"], control["max"]) == (20, 80)  # the payload model's bounds
    assert control["command_topic"] == "boiler2mqtt/flow-target/set"
