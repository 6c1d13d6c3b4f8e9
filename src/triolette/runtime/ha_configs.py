"""Home Assistant MQTT discovery configs for a bridge's devices: pure functions, no trio.

:func:`build_configs` turns the devices of a serve into ``{topic: config}``, one entity per
model field that carries consumer metadata (:mod:`triolette.schema`):

* a state model's field is a ``sensor`` (a ``binary_sensor`` for a bool) reading the field from
  the device's JSON state (an array field only with an ``aggregate``);
* a payload model's field is a control sending a JSON object with that field to the device's
  command topic: ``switch`` (bool), ``number`` (integer, number), ``select`` (enum), ``text``
  (string), or the ``component`` its :func:`~triolette.schema.ha_discovery` chooses; a
  ``read_only`` field is not a control, nor one whose model requires other fields too (a
  command of that field alone would be refused);
* one ``binary_sensor`` of class ``connectivity`` for the bridge itself, reading ``P/status``.

Topics are ``<prefix>/<component>/<node_id>/<object_id>/config``; ``node_id`` is the app name
(with ``_<instance id>`` when the settings have one), ``object_id`` is ``<device>_<field>``
(``_cmd`` added for controls), both reduced to ``[a-zA-Z0-9_-]`` (a name that needed changes
gets a short hash, so two names never meet). ``unique_id`` is ``triolette_<node_id>_<object_id>``,
stable across restarts. Configs use Home Assistant's full key names, never abbreviations.
"""

from __future__ import annotations

import hashlib
import json
import logging
import re
from collections.abc import Callable, Iterable, Mapping
from typing import Any

import attrs

from triolette.actors.spec import DeviceSpec
from triolette.core.errors import RegistrationError
from triolette.core.field_meta import consumer_metadata, ha_discovery_metadata
from triolette.core.topics import OFFLINE, ONLINE, Topics

logger = logging.getLogger("triolette.discovery")

Enrich = Callable[[DeviceSpec | None, str | None, dict[str, Any]], None]
"""``enrich(device, field, config)``: edits one entity's ``config`` in place, last; ``device``
and ``field`` are ``None`` for the bridge's connectivity entity."""

CONTROLS = ("switch", "number", "select", "text", "button")
"""The platforms a payload model's field may be announced as."""
_META_KEYS = {  # consumer metadata -> config key, for the platforms that take it
    "display_name": ("name", None),
    "device_class": ("device_class", {"sensor", "binary_sensor", "switch", "number", "button"}),
    "unit": ("unit_of_measurement", {"sensor", "number"}),
    "state_class": ("state_class", {"sensor"}),
    "icon": ("icon", None),
}
_AGGREGATES = {
    "count": "{{{{ {v} | count }}}}",
    "min": "{{{{ {v} | min }}}}",
    "max": "{{{{ {v} | max }}}}",
    "sum": "{{{{ {v} | sum }}}}",
    "avg": "{{{{ (({v} | sum) / ({v} | count)) if {v} else none }}}}",
}
_BOUNDS = (("min", "minimum", "exclusiveMinimum"), ("max", "maximum", "exclusiveMaximum"))
STATUS_TEMPLATE = "{{ value_json.status if value_json is defined else value }}"
"""Reads ``P/status``: the JSON heartbeat's ``status``, or the plain ``online``/``offline``."""
_ALLOWED = re.compile(r"[^a-zA-Z0-9_-]")


@attrs.frozen(kw_only=True)
class Bridge:
    """What the configs say about the app: its name, version, topics and node id."""

    name: str
    version: str
    topics: Topics
    prefix: str = "homeassistant"
    instance_id: str | None = None
    description: str | None = None

    @property
    def node_id(self) -> str:
        node = self.name if self.instance_id is None else f"{self.name}_{self.instance_id}"
        return safe_id(node)

    def unique_id(self, object_id: str) -> str:
        return f"triolette_{self.node_id}_{object_id}"


@attrs.frozen
class _Field:
    key: str
    schema: dict[str, Any]
    consumer: dict[str, Any]
    ha: dict[str, Any]
    others_required: tuple[str, ...] = ()
    """The model's other required fields: a payload of this field alone would miss them."""

    @property
    def type(self) -> str:
        if "enum" in self.schema:
            return "enum"
        kind = self.schema.get("type")
        return kind if isinstance(kind, str) else "object"


def safe_id(name: str) -> str:
    """``name`` as a node or object id (``[a-zA-Z0-9_-]``): unchanged when it fits, else with
    every other character made ``_`` and 8 hex digits of its hash added (stable, distinct)."""
    cleaned = _ALLOWED.sub("_", name)
    if cleaned == name and name:
        return name
    return f"{cleaned}_{hashlib.sha256(name.encode()).hexdigest()[:8]}"


def build_configs(
    bridge: Bridge,
    devices: Iterable[DeviceSpec],
    *,
    enrich: Enrich | None = None,
) -> dict[str, dict[str, Any]]:
    """``{discovery topic: config}`` for ``devices`` (those to announce) and the bridge.

    Raises RegistrationError naming the device and field for a ``component`` no control
    takes; an ``enrich`` error propagates.
    """
    configs: dict[str, dict[str, Any]] = {}
    link = _connectivity(bridge)
    if enrich is not None:
        enrich(None, None, link)
    configs[_topic(bridge, "binary_sensor", "bridge")] = link
    for spec in devices:
        for field, component, config in _entities(bridge, spec):
            if enrich is not None:
                enrich(spec, field, config)
            object_id = config.pop("_object_id")
            configs[_topic(bridge, component, object_id)] = config
    return configs


def _topic(bridge: Bridge, component: str, object_id: str) -> str:
    return f"{bridge.prefix}/{component}/{bridge.node_id}/{object_id}/config"


def _entities(bridge: Bridge, spec: DeviceSpec) -> Iterable[tuple[str, str, dict[str, Any]]]:
    state = {f.key: f for f in model_fields(spec.state_model, "serialization")}
    for field in state.values():
        made = _sensor(bridge, spec, field)
        if made is not None:
            yield field.key, made[0], made[1]
    if not spec.accepts_commands:
        return
    for field in model_fields(spec.payload_model, "validation"):
        if field.consumer.get("read_only"):
            continue
        if field.others_required:  # its command would be refused by the payload model
            logger.warning(
                "%s: payload field %r gets no Home Assistant control: a command setting it "
                "alone would lack the required %s",
                spec.name,
                field.key,
                ", ".join(map(repr, field.others_required)),
            )
            continue
        component, config = _control(bridge, spec, field, state.get(field.key))
        yield field.key, component, config


def model_fields(model: type | None, mode: str) -> list[_Field]:
    """The fields of ``model`` (a pydantic model) that carry consumer metadata."""
    if model is None:
        return []
    schema: dict[str, Any] = model.model_json_schema(mode=mode)  # type: ignore[attr-defined]
    definitions = schema.get("$defs", {})
    required = schema.get("required", [])
    fields = []
    for key, declared in schema.get("properties", {}).items():
        meta = consumer_metadata(declared)
        if meta is not None:
            resolved = _resolved(declared, definitions)
            others = tuple(name for name in required if name != key)
            fields.append(_Field(key, resolved, meta, ha_discovery_metadata(declared), others))
    return fields


def _resolved(declared: Mapping[str, Any], definitions: Mapping[str, Any]) -> dict[str, Any]:
    """The field's schema with a ``$ref`` followed and an optional (``anyOf`` null) unwrapped."""
    schema = dict(declared)
    options = [o for o in schema.pop("anyOf", []) if o.get("type") != "null"]
    if len(options) == 1:
        schema = {**options[0], **schema}
    for combined in ("allOf",):
        for part in schema.pop(combined, []):
            schema = {**part, **schema}
    reference = schema.pop("$ref", None)
    if isinstance(reference, str):
        schema = {**definitions.get(reference.rsplit("/", 1)[-1], {}), **schema}
    return schema


def _common(
    bridge: Bridge, spec: DeviceSpec, field: _Field, component: str, object_id: str
) -> dict[str, Any]:
    config: dict[str, Any] = {"_object_id": object_id, "name": field.key}
    for meta_key, (config_key, platforms) in _META_KEYS.items():
        if meta_key in field.consumer and (platforms is None or component in platforms):
            config[config_key] = field.consumer[meta_key]
    config["unique_id"] = bridge.unique_id(object_id)
    config["availability"] = [
        {"topic": bridge.topics.availability(spec.name)},
        {"topic": bridge.topics.status, "value_template": STATUS_TEMPLATE},
    ]
    config["availability_mode"] = "all"
    config["payload_available"] = ONLINE
    config["payload_not_available"] = OFFLINE
    config["device"] = {
        "identifiers": [f"triolette_{bridge.node_id}_{safe_id(spec.name)}"],
        "name": spec.name,
        "via_device": f"triolette_{bridge.node_id}",
    }
    config["origin"] = _origin(bridge)
    return config


def _sensor(bridge: Bridge, spec: DeviceSpec, field: _Field) -> tuple[str, dict[str, Any]] | None:
    value = f"value_json[{json.dumps(field.key)}]"
    if field.type == "array":
        aggregate = field.consumer.get("aggregate")
        if aggregate not in _AGGREGATES:
            return None
        template = _AGGREGATES[aggregate].format(v=value)
    elif field.type == "object":
        return None
    else:
        template = f"{{{{ {value} }}}}"
    component = "binary_sensor" if field.type == "boolean" else "sensor"
    if component == "binary_sensor":
        template = f"{{{{ 'ON' if {value} else 'OFF' }}}}"
    config = _common(bridge, spec, field, component, safe_id(f"{spec.name}_{field.key}"))
    config["state_topic"] = bridge.topics.state(spec.name)
    config["value_template"] = field.ha.get("value_template", template)
    if "expire_after" in field.ha:
        config["expire_after"] = field.ha["expire_after"]
    config.update(field.ha.get("extra", {}))
    return component, config


def _control(
    bridge: Bridge, spec: DeviceSpec, field: _Field, state: _Field | None
) -> tuple[str, dict[str, Any]]:
    component = field.ha.get("component") or _inferred(field)
    if component not in CONTROLS:
        raise RegistrationError(
            f"{spec.name}: payload field {field.key!r} asks for Home Assistant component "
            f"{component!r}; a command field can be one of {', '.join(CONTROLS)}"
        )
    config = _common(bridge, spec, field, component, safe_id(f"{spec.name}_{field.key}_cmd"))
    config["command_topic"] = bridge.topics.command(spec.name)
    key = json.dumps(field.key)
    value = f"value_json[{key}]"
    if component == "button":
        config["payload_press"] = json.dumps({field.key: True})
    else:
        config["command_template"] = field.ha.get(
            "command_template", f"{{{key}: {_command_value(component, field)}}}"
        )
    if state is not None and component != "button":
        config["state_topic"] = bridge.topics.state(spec.name)
        shown = f"'ON' if {value} else 'OFF'" if component == "switch" else value
        config["value_template"] = field.ha.get("value_template", f"{{{{ {shown} }}}}")
    _limits(component, field, config)
    config.update(field.ha.get("extra", {}))
    return component, config


def _inferred(field: _Field) -> str:
    return {
        "boolean": "switch",
        "integer": "number",
        "number": "number",
        "enum": "select",
        "string": "text",
    }.get(field.type, field.type)


def _command_value(component: str, field: _Field) -> str:
    """The Jinja expression of the JSON value HA's ``value`` becomes in the command."""
    if component == "switch":
        return "{{ 'true' if value == 'ON' else 'false' }}"
    if component == "number":
        return "{{ value | int }}" if field.type == "integer" else "{{ value }}"
    return "{{ value | to_json }}"


def _limits(component: str, field: _Field, config: dict[str, Any]) -> None:
    """A number's ``min``/``max``/``step``, a select's ``options``, a text's ``max``."""
    schema = field.schema
    if component == "number":
        for bound, key, exclusive in _BOUNDS:
            if key in schema:
                config[bound] = schema[key]
            elif exclusive in schema:
                config[bound] = schema[exclusive]
        if field.type == "integer":
            config["step"] = 1
    elif component == "select":
        config["options"] = [str(option) for option in schema.get("enum", [])]
    elif component == "text" and "maxLength" in schema:
        config["max"] = schema["maxLength"]


def _origin(bridge: Bridge) -> dict[str, Any]:
    return {"name": bridge.name, "sw_version": bridge.version}


def _connectivity(bridge: Bridge) -> dict[str, Any]:
    """The bridge's own entity: connected or not, from ``P/status``; it defines the device
    the others name as ``via_device``."""
    device: dict[str, Any] = {
        "identifiers": [f"triolette_{bridge.node_id}"],
        "name": bridge.name,
        "sw_version": bridge.version,
        "manufacturer": "triolette",
    }
    if bridge.description:
        device["model"] = bridge.description
    return {
        "name": "Connectivity",
        "unique_id": bridge.unique_id("bridge"),
        "device_class": "connectivity",
        "entity_category": "diagnostic",
        "state_topic": bridge.topics.status,
        "value_template": STATUS_TEMPLATE,
        "payload_on": ONLINE,
        "payload_off": OFFLINE,
        "device": device,
        "origin": _origin(bridge),
    }
