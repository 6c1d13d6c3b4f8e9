"""The discovery configs against Home Assistant's documented MQTT discovery rules.

:func:`check_config` encodes what Home Assistant's MQTT discovery documentation says a config
must be: the topic ``<discovery_prefix>/<component>/[<node_id>/]<object_id>/config`` with ids
of ``[a-zA-Z0-9_-]``, the platform's required keys, only keys the platform documents, the
``availability`` list (each entry with a ``topic``) with ``availability_mode`` one of
``all``/``any``/``latest``, a ``device`` with ``identifiers`` (which needs a ``unique_id``),
an ``origin`` with a ``name``. We write full key names: no abbreviation (``stat_t``...) may
appear. The templates are rendered with Jinja, as Home Assistant renders them.
"""

from __future__ import annotations

import contextlib
import enum
import json
import re
from typing import Any

import jinja2
import pytest
from pydantic import BaseModel, Field

from triolette import App, schema
from triolette.core.errors import RegistrationError
from triolette.core.topics import Topics
from triolette.runtime.discovery import offline_configs
from triolette.runtime.ha_configs import Bridge, build_configs, safe_id

TOPIC = re.compile(
    r"^(?P<prefix>[^/#+]+)/(?P<component>[a-z_]+)/(?:(?P<node_id>[a-zA-Z0-9_-]+)/)?"
    r"(?P<object_id>[a-zA-Z0-9_-]+)/config$"
)
REQUIRED = {
    "sensor": {"state_topic"},
    "binary_sensor": {"state_topic"},
    "switch": set(),
    "number": {"command_topic"},
    "select": {"command_topic", "options"},
    "text": {"command_topic"},
    "button": set(),
}
ENTITY_KEYS = {
    "name", "unique_id", "availability", "availability_mode", "availability_template",
    "availability_topic", "payload_available", "payload_not_available", "device", "origin",
    "icon", "entity_category", "enabled_by_default", "json_attributes_topic",
    "json_attributes_template", "qos", "encoding", "default_entity_id", "entity_picture",
}  # fmt: skip
PLATFORM_KEYS = {
    "sensor": {"state_topic", "value_template", "device_class", "unit_of_measurement",
               "state_class", "expire_after", "force_update", "suggested_display_precision",
               "options", "last_reset_value_template"},
    "binary_sensor": {"state_topic", "value_template", "device_class", "expire_after",
                      "force_update", "off_delay", "payload_on", "payload_off"},
    "switch": {"command_topic", "command_template", "state_topic", "value_template",
               "device_class", "optimistic", "payload_on", "payload_off", "state_on",
               "state_off", "retain"},
    "number": {"command_topic", "command_template", "state_topic", "value_template",
               "device_class", "unit_of_measurement", "min", "max", "step", "mode",
               "optimistic", "payload_reset", "retain"},
    "select": {"command_topic", "command_template", "state_topic", "value_template", "options",
               "optimistic", "retain"},
    "text": {"command_topic", "command_template", "state_topic", "value_template", "min",
             "max", "mode", "pattern", "retain"},
    "button": {"command_topic", "command_template", "payload_press", "device_class", "retain"},
}  # fmt: skip
DEVICE_KEYS = {
    "identifiers", "connections", "name", "manufacturer", "model", "model_id", "sw_version",
    "hw_version", "serial_number", "suggested_area", "via_device", "configuration_url",
}  # fmt: skip
ORIGIN_KEYS = {"name", "sw_version", "support_url"}
AVAILABILITY_KEYS = {"topic", "payload_available", "payload_not_available", "value_template"}
ABBREVIATIONS = {
    "avty", "avty_mode", "avty_t", "avty_tpl", "cmd_t", "cmd_tpl", "dev", "dev_cla", "ent_cat",
    "exp_aft", "ic", "json_attr_t", "o", "pl_avail", "pl_not_avail", "pl_on", "pl_off",
    "pl_prs", "stat_cla", "stat_t", "t", "uniq_id", "unit_of_meas", "val_tpl", "ids", "mf",
    "mdl", "sw", "hw", "sa", "cns", "cu", "sn", "url", "ops", "stat_on", "stat_off",
}  # fmt: skip

JINJA = jinja2.Environment(autoescape=False)
JINJA.filters["to_json"] = json.dumps  # Home Assistant's filter of that name


def check_config(topic: str, config: dict[str, Any], prefix: str = "homeassistant") -> str:
    """Assert that ``config`` on ``topic`` follows the documented rules; return its platform."""
    match = TOPIC.match(topic)
    assert match is not None, f"{topic}: not <prefix>/<component>/[<node_id>/]<object_id>/config"
    assert match["prefix"] == prefix, topic
    component = match["component"]
    assert component in REQUIRED, f"{topic}: platform {component} not expected"
    _no_abbreviations(topic, config)
    unknown = set(config) - ENTITY_KEYS - PLATFORM_KEYS[component]
    assert not unknown, f"{topic}: keys {component} does not document: {sorted(unknown)}"
    missing = REQUIRED[component] - set(config)
    assert not missing, f"{topic}: {component} requires {sorted(missing)}"
    for key, value in config.items():
        if key.endswith("_topic"):
            assert isinstance(value, str), f"{topic}: {key}"
            assert not set(value) & {"+", "#"}, f"{topic}: {key}"
    if "device" in config:
        device = config["device"]
        assert "unique_id" in config, f"{topic}: a device needs the entity's unique_id"
        assert set(device) <= DEVICE_KEYS, f"{topic}: device keys {sorted(device)}"
        assert device.get("identifiers") or device.get("connections"), topic
        assert all(isinstance(i, str) and i for i in device["identifiers"]), topic
    origin = config.get("origin", {})
    assert "name" in origin, f"{topic}: origin {origin}"
    assert set(origin) <= ORIGIN_KEYS, f"{topic}: origin {origin}"
    if "availability" in config:
        assert "availability_topic" not in config, f"{topic}: availability and its _topic"
        for entry in config["availability"]:
            assert "topic" in entry, f"{topic}: availability {entry}"
            assert set(entry) <= AVAILABILITY_KEYS, f"{topic}: availability {entry}"
    assert config.get("availability_mode", "latest") in ("all", "any", "latest"), topic
    for key in ("value_template", "command_template"):
        if key in config:
            JINJA.from_string(config[key])  # parses
    return component


def _no_abbreviations(where: str, value: Any) -> None:
    if isinstance(value, dict):
        assert not set(value) & ABBREVIATIONS, f"{where}: abbreviated {set(value) & ABBREVIATIONS}"
        for key, item in value.items():
            _no_abbreviations(f"{where}.{key}", item)
    elif isinstance(value, list):
        for item in value:
            _no_abbreviations(where, item)


def render(template: str, payload: str) -> str:
    """``template`` rendered as Home Assistant does for a message: ``value`` and, when the
    payload is JSON, ``value_json``."""
    variables: dict[str, Any] = {"value": payload}
    with contextlib.suppress(ValueError):
        variables["value_json"] = json.loads(payload)
    return JINJA.from_string(template).render(**variables)


class Mode(enum.Enum):
    ECO = "eco"
    COMFORT = "comfort"


class Climate(BaseModel):
    celsius: float = Field(json_schema_extra=schema.temperature("Temperature"))
    humidity: float = Field(json_schema_extra=schema.percent("Humidity", icon="mdi:water"))
    heating: bool = Field(json_schema_extra=schema.consumer(display_name="Heating", unit="x"))
    readings: list[float] = Field(json_schema_extra=schema.consumer(aggregate="avg"))
    note: str | None = None  # no metadata: no entity
    samples: list[float] = Field(default=[], json_schema_extra=schema.consumer())  # no aggregate


class Setpoint(BaseModel):
    """Every field has a default: a command may set any one of them alone."""

    target: int = Field(
        default=20, ge=5, le=30, json_schema_extra=schema.consumer(display_name="Target")
    )
    level: float = Field(default=0.5, gt=0, lt=1, json_schema_extra=schema.consumer(unit="%"))
    mode: Mode | None = Field(default=None, json_schema_extra=schema.consumer(display_name="Mode"))
    power: bool = Field(default=True, json_schema_extra=schema.consumer(device_class="outlet"))
    label: str = Field(default="", max_length=20, json_schema_extra=schema.consumer())
    serial: str = Field(default="", json_schema_extra=schema.consumer(read_only=True))
    reset: bool = Field(
        default=False,
        json_schema_extra=schema.merge(schema.consumer(), schema.ha_discovery(component="button")),
    )


class Status(BaseModel):
    target: int = Field(json_schema_extra=schema.consumer(display_name="Target now"))
    power: bool = Field(json_schema_extra=schema.consumer())
    mode: Mode = Field(json_schema_extra=schema.consumer())


def thermo_app(name: str = "thermo", **options: Any) -> App:
    app = App(name, version="1.2.3", **options)

    @app.telemetry("living", interval=30, state_model=Climate)
    async def living() -> dict[str, object]:
        return {}

    @app.command("heater", payload_model=Setpoint, state_model=Status)
    async def heater(payload: str) -> dict[str, object]:
        return {}

    @app.telemetry("hidden", interval=30, state_model=Climate, discoverable=False)
    async def hidden() -> dict[str, object]:
        return {}

    @app.telemetry("plain", interval=30)
    async def plain() -> dict[str, object]:
        return {}

    return app


def by_object(configs: dict[str, dict[str, Any]]) -> dict[str, tuple[str, dict[str, Any]]]:
    found = {}
    for topic, config in configs.items():
        match = TOPIC.match(topic)
        assert match is not None, topic
        found[match["object_id"]] = (match["component"], config)
    return found


def test_every_config_follows_home_assistants_documented_rules():
    configs = offline_configs(thermo_app())
    assert configs
    for topic, config in configs.items():
        check_config(topic, config)
    unique_ids = [config["unique_id"] for config in configs.values()]
    assert len(set(unique_ids)) == len(unique_ids)


def test_one_entity_per_field_with_consumer_metadata_and_the_platform_its_type_gives():
    found = by_object(offline_configs(thermo_app()))
    entities = {key: component for key, (component, _) in found.items()}
    assert entities == {
        "bridge": "binary_sensor",
        "living_celsius": "sensor",
        "living_humidity": "sensor",
        "living_heating": "binary_sensor",
        "living_readings": "sensor",
        "heater_target": "sensor",
        "heater_power": "binary_sensor",
        "heater_mode": "sensor",
        "heater_target_cmd": "number",
        "heater_level_cmd": "number",
        "heater_mode_cmd": "select",
        "heater_power_cmd": "switch",
        "heater_label_cmd": "text",
        "heater_reset_cmd": "button",
    }  # no hidden (discoverable=False), no plain (no model), no note, samples or serial


def test_sensors_read_their_field_from_the_devices_json_state():
    entities = by_object(offline_configs(thermo_app()))
    state = json.dumps({"celsius": 21.5, "humidity": 40, "heating": True, "readings": [1, 2, 6]})
    _, celsius = entities["living_celsius"]
    assert celsius["state_topic"] == "thermo/living/state"
    assert render(celsius["value_template"], state) == "21.5"
    assert (celsius["device_class"], celsius["unit_of_measurement"]) == ("temperature", "°C")
    assert (celsius["state_class"], celsius["name"]) == ("measurement", "Temperature")
    _, humidity = entities["living_humidity"]
    assert (humidity["unit_of_measurement"], humidity["icon"]) == ("%", "mdi:water")
    assert "device_class" not in humidity
    _, heating = entities["living_heating"]
    assert render(heating["value_template"], state) == "ON"
    assert render(heating["value_template"], state.replace("true", "false")) == "OFF"
    assert "unit_of_measurement" not in heating  # a binary_sensor takes no unit
    _, readings = entities["living_readings"]
    assert float(render(readings["value_template"], state)) == 3.0


def test_controls_send_a_json_object_with_their_field_to_the_command_topic():
    entities = by_object(offline_configs(thermo_app()))
    sent = {}
    for key, value in [("target", "21.0"), ("level", "0.25"), ("mode", "comfort"),
                       ("power", "ON"), ("label", 'say "hi"')]:  # fmt: skip
        _, config = entities[f"heater_{key}_cmd"]
        assert config["command_topic"] == "thermo/heater/set"
        sent[key] = json.loads(render(config["command_template"], value))
    assert sent == {
        "target": {"target": 21},
        "level": {"level": 0.25},
        "mode": {"mode": "comfort"},
        "power": {"power": True},
        "label": {"label": 'say "hi"'},
    }
    _, power = entities["heater_power_cmd"]
    assert json.loads(render(power["command_template"], "OFF")) == {"power": False}
    assert power["device_class"] == "outlet"
    _, reset = entities["heater_reset_cmd"]
    assert json.loads(reset["payload_press"]) == {"reset": True}


def test_controls_take_limits_and_options_from_the_model_and_state_from_the_state_model():
    entities = by_object(offline_configs(thermo_app()))
    _, target = entities["heater_target_cmd"]
    assert (target["min"], target["max"], target["step"]) == (5, 30, 1)
    _, level = entities["heater_level_cmd"]
    assert (level["min"], level["max"], level["unit_of_measurement"]) == (0, 1, "%")
    assert "step" not in level
    _, mode = entities["heater_mode_cmd"]
    assert mode["options"] == ["eco", "comfort"]
    _, label = entities["heater_label_cmd"]
    assert label["max"] == 20
    assert "state_topic" not in label
    state = json.dumps({"target": 19, "power": False, "mode": "eco"})
    assert render(target["value_template"], state) == "19"
    assert render(mode["value_template"], state) == "eco"
    _, power = entities["heater_power_cmd"]
    assert power["state_topic"] == "thermo/heater/state"
    assert render(power["value_template"], state) == "OFF"


def test_availability_needs_the_device_and_the_bridge_and_reads_both_status_forms():
    _, config = by_object(offline_configs(thermo_app()))["living_celsius"]
    device, status = config["availability"]
    assert device == {"topic": "thermo/living/availability"}
    assert status["topic"] == "thermo/status"
    assert config["availability_mode"] == "all"
    assert (config["payload_available"], config["payload_not_available"]) == ("online", "offline")
    heartbeat = json.dumps({"status": "online", "uptime_s": 5, "devices": {}})
    assert render(status["value_template"], heartbeat) == "online"
    assert render(status["value_template"], "offline") == "offline"  # the will, plain


def test_devices_hang_off_the_bridge_device_whose_connectivity_reads_the_status():
    entities = by_object(offline_configs(thermo_app(description="Heating bridge")))
    _, link = entities["bridge"]
    assert link["device_class"] == "connectivity"
    assert link["entity_category"] == "diagnostic"
    assert link["state_topic"] == "thermo/status"
    assert render(link["value_template"], '{"status":"online"}') == link["payload_on"]
    assert render(link["value_template"], "offline") == link["payload_off"]
    assert link["device"] == {
        "identifiers": ["triolette_thermo"],
        "name": "thermo",
        "sw_version": "1.2.3",
        "manufacturer": "triolette",
        "model": "Heating bridge",
    }
    _, celsius = entities["living_celsius"]
    assert celsius["device"] == {
        "identifiers": ["triolette_thermo_living"],
        "name": "living",
        "via_device": "triolette_thermo",
    }
    assert celsius["origin"] == {"name": "thermo", "sw_version": "1.2.3"}


def test_unique_ids_depend_on_app_device_and_field_only():
    first, again = offline_configs(thermo_app()), offline_configs(thermo_app())
    assert first == again
    assert first["homeassistant/sensor/thermo/living_celsius/config"]["unique_id"] == (
        "triolette_thermo_living_celsius"
    )
    other = offline_configs(thermo_app("other"))
    assert not {c["unique_id"] for c in first.values()} & {c["unique_id"] for c in other.values()}


def test_names_expand_with_the_settings_and_odd_names_become_distinct_safe_ids():
    app = App("bridge 2", topic_prefix="b2")

    @app.telemetry(name=lambda settings: ["room.1", "room_1", "Küche"], interval=30,
                   state_model=Climate)  # fmt: skip
    async def room() -> dict[str, object]:
        return {}

    configs = offline_configs(app)
    for topic, config in configs.items():
        check_config(topic, config)
    node = safe_id("bridge 2")
    assert node.startswith("bridge_2_")
    assert len(node) == len("bridge_2_") + 8
    objects = {TOPIC.match(t)["object_id"] for t in configs}  # type: ignore[index]
    assert "room_1_celsius" in objects
    assert "room_1_celsius_3175418f" in objects  # the guide's example
    assert safe_id("room.1_celsius") != "room_1_celsius"
    assert any(o.startswith("K_che_celsius_") for o in objects)
    _, celsius = by_object(configs)["room_1_celsius"]
    assert celsius["state_topic"] == "b2/room_1/state"


def test_the_prefix_and_an_instance_id_shape_the_topics():
    class WithInstance:
        instance_id = "attic"

    app = thermo_app()
    app.discovery("ha-test")
    app.settings = WithInstance()
    configs = offline_configs(app)
    assert "ha-test/sensor/thermo_attic/living_celsius/config" in configs
    assert configs["ha-test/sensor/thermo_attic/living_celsius/config"]["unique_id"] == (
        "triolette_thermo_attic_living_celsius"
    )
    for topic, config in configs.items():
        check_config(topic, config, prefix="ha-test")
    assert "other/binary_sensor/thermo_attic/bridge/config" in offline_configs(app, "other")


def test_the_ha_discovery_block_overrides_templates_and_adds_keys():
    class Reading(BaseModel):
        raw: int = Field(
            json_schema_extra=schema.merge(
                schema.consumer(display_name="Raw"),
                schema.ha_discovery(
                    value_template="{{ value_json.raw / 10 }}",
                    expire_after=120,
                    extra={"suggested_display_precision": 1, "entity_category": "diagnostic"},
                ),
            )
        )

    app = App("meter")

    @app.telemetry("meter", interval=10, state_model=Reading)
    async def meter() -> dict[str, object]:
        return {}

    (_, config) = by_object(offline_configs(app))["meter_raw"]
    check_config("homeassistant/sensor/meter/meter_raw/config", config)
    assert config["value_template"] == "{{ value_json.raw / 10 }}"
    assert (config["expire_after"], config["suggested_display_precision"]) == (120, 1)


def test_cosalette_keys_are_read_too():
    class Legacy(BaseModel):
        celsius: float = Field(
            json_schema_extra={"x-cosalette-consumer": {"display_name": "Temp", "unit": "°C"}}
        )

    app = App("legacy")

    @app.telemetry("probe", interval=10, state_model=Legacy)
    async def probe() -> dict[str, object]:
        return {}

    (_, config) = by_object(offline_configs(app))["probe_celsius"]
    assert (config["name"], config["unit_of_measurement"]) == ("Temp", "°C")


def test_no_control_for_a_field_whose_model_requires_others_too(caplog):
    class Move(BaseModel):
        x: int = Field(json_schema_extra=schema.consumer())
        y: int = Field(json_schema_extra=schema.consumer())
        speed: int = Field(default=1, json_schema_extra=schema.consumer())

    class Single(BaseModel):
        level: int = Field(json_schema_extra=schema.consumer())  # required, and alone

    app = App("robots")

    @app.command("arm", payload_model=Move)
    async def arm(payload: str) -> None:
        return None

    @app.command("dimmer", payload_model=Single)
    async def dimmer(payload: str) -> None:
        return None

    assert set(by_object(offline_configs(app))) == {"bridge", "dimmer_level_cmd"}
    warnings = [r.getMessage() for r in caplog.records if r.levelname == "WARNING"]
    assert (
        "arm: payload field 'x' gets no Home Assistant control: a command setting it alone "
        "would lack the required 'y'"
    ) in warnings
    assert any("field 'speed'" in w and "'x', 'y'" in w for w in warnings)


def test_a_component_no_control_takes_is_refused_naming_device_and_field():
    class Bad(BaseModel):
        colour: str = Field(
            json_schema_extra=schema.merge(
                schema.consumer(), schema.ha_discovery(component="light")
            )
        )

    app = App("lamps")

    @app.command("lamp", payload_model=Bad)
    async def lamp(payload: str) -> None:
        return None

    with pytest.raises(RegistrationError, match=r"lamp: payload field 'colour' .*'light'"):
        offline_configs(app)


def test_enrich_edits_every_config_last():
    seen: list[tuple[str | None, str | None]] = []

    def enrich(spec: Any, field: str | None, config: dict[str, Any]) -> None:
        seen.append((spec.name if spec else None, field))
        config["enabled_by_default"] = field != "humidity"

    app = thermo_app()
    app.discovery(enrich=enrich)
    configs = offline_configs(app)
    assert (None, None) in seen
    assert ("living", "humidity") in seen
    assert len(seen) == len(configs)
    humidity = configs["homeassistant/sensor/thermo/living_humidity/config"]
    assert humidity["enabled_by_default"] is False


def test_the_builder_takes_devices_and_topics_directly():
    app = thermo_app()
    specs = [spec for spec in app.registry.specs.values() if spec.name == "living"]
    bridge = Bridge(name="thermo", version="1", topics=Topics("th"), prefix="hass")
    configs = build_configs(bridge, specs)
    assert set(configs) == {
        "hass/binary_sensor/thermo/bridge/config",
        "hass/sensor/thermo/living_celsius/config",
        "hass/sensor/thermo/living_humidity/config",
        "hass/binary_sensor/thermo/living_heating/config",
        "hass/sensor/thermo/living_readings/config",
    }
    assert configs["hass/sensor/thermo/living_celsius/config"]["state_topic"] == "th/living/state"


def test_a_bad_discovery_prefix_is_refused():
    app = App("thermo")
    with pytest.raises(RegistrationError, match="discovery prefix 'home/assistant'"):
        app.discovery("home/assistant")
    with pytest.raises(RegistrationError, match="discovery prefix"):
        offline_configs(app, "a+b")


@pytest.mark.parametrize(
    ("topic", "config", "complaint"),
    [
        ("homeassistant/sensor/n/a.b/config", {}, "not <prefix>"),
        ("homeassistant/sensor/n/x/state", {}, "not <prefix>"),
        ("homeassistant/sensor/n/x/config", {"stat_t": "a"}, "abbreviated"),
        ("homeassistant/sensor/n/x/config", {"origin": {"name": "a"}}, "requires"),
        ("homeassistant/select/n/x/config", {"command_topic": "a/set"}, "requires"),
        (
            "homeassistant/binary_sensor/n/x/config",
            {"state_topic": "s", "unit_of_measurement": "%"},
            "document",
        ),
        ("homeassistant/sensor/n/x/config", {"state_topic": "a/+"}, "state_topic"),
        (
            "homeassistant/sensor/n/x/config",
            {"state_topic": "s", "device": {"identifiers": ["d"]}},
            "unique_id",
        ),
        ("homeassistant/sensor/n/x/config", {"state_topic": "s", "origin": {"sw": "1"}}, "origin"),
        (
            "homeassistant/sensor/n/x/config",
            {
                "state_topic": "s",
                "origin": {"name": "o"},
                "availability": [{"payload_available": "y"}],
            },
            "availability",
        ),
    ],
)
def test_the_checker_refuses_what_the_documentation_refuses(topic, config, complaint):
    with pytest.raises(AssertionError, match=complaint):
        check_config(topic, config)
