"""An AsyncAPI 3.0 document of a bridge's topics and payloads, made from its registry snapshot.

Each entity has a ``state`` channel (sent, retained), an ``availability`` channel (sent,
retained), an ``error`` channel (sent) and, for commands, devices and MQTT-triggered telemetry,
a ``set`` channel (received); the app adds its ``status`` and ``error`` channels. Payload
schemas are the models' JSON schemas (their nested models under ``components.schemas``), or a
generic object. Operations are named ``<channel>.publish`` / ``<channel>.receive``; what
AsyncAPI has no field for is an ``x-triolette-*`` extension. A ``<deferred>`` entity's addresses
hold a ``{name}`` parameter. No trio here; the document is plain JSON-safe data.
"""

from __future__ import annotations

import re
from collections.abc import Collection, Mapping
from typing import Any

from triolette.runtime.registry_view import DEFERRED, NAME_PLACEHOLDER

ASYNCAPI_VERSION = "3.0.0"
_KEY = re.compile(r"[^A-Za-z0-9._-]")
"""What a channel, operation or component key may not hold (the spec's ``^[\\w\\d\\.\\-_]+$``)."""

_AVAILABILITY = {"type": "string", "enum": ["online", "offline"]}
_GENERIC_STATE = {"type": "object", "description": "a JSON object; no state model declared"}
_GENERIC_SET = {
    "description": "any text (often JSON); no payload model declared, the handler reads it"
}
_ERROR = {
    "type": "object",
    "required": ["type", "error_type", "message", "device", "timestamp", "id", "details"],
    "properties": {
        "type": {"type": "string", "description": "the exception's class name"},
        "error_type": {"type": "string"},
        "message": {"type": "string"},
        "device": {"type": ["string", "null"]},
        "timestamp": {"type": "string", "format": "date-time"},
        "id": {"type": "string", "description": "the correlation id of the log line"},
        "details": {"type": "object"},
    },
}
_STATUS = {
    "oneOf": [
        {"type": "string", "enum": ["online", "offline"]},
        {"type": "object", "description": "the heartbeat: uptime, version, each device's health"},
    ]
}


def asyncapi_document(snapshot: Mapping[str, Any]) -> dict[str, Any]:
    """The AsyncAPI 3.0 document of a registry snapshot (see :mod:`.registry_view`)."""
    app = snapshot["app"]
    builder = _Builder()
    for entity in snapshot["entities"]:
        builder.entity(entity)
    builder.channel(
        "status",
        app["status_topic"],
        _message("status", _STATUS, "the app's online/offline and heartbeat (also its will)"),
        send=True,
        retained=True,
        extensions={"x-triolette-framework": "status"},
    )
    builder.channel(
        "error",
        f"{app['topic_prefix']}/error",
        _message("error", _ERROR, "errors of the app itself"),
        send=True,
        retained=False,
        extensions={"x-triolette-framework": "error"},
    )
    info: dict[str, Any] = {
        "title": app["name"],
        "version": app["version"],
        "description": app["description"],
        "x-triolette-app": app["name"],
        "x-triolette-topic-prefix": app["topic_prefix"],
    }
    document: dict[str, Any] = {
        "asyncapi": ASYNCAPI_VERSION,
        "info": info,
        "defaultContentType": "application/json",
        "channels": builder.channels,
        "operations": builder.operations,
    }
    if builder.schemas:
        document["components"] = {"schemas": builder.schemas}
    return document


class _Builder:
    """Collects channels, operations and the models' schemas under unique keys."""

    def __init__(self) -> None:
        self.channels: dict[str, Any] = {}
        self.operations: dict[str, Any] = {}
        self.schemas: dict[str, Any] = {}

    def entity(self, entity: Mapping[str, Any]) -> None:
        name = entity["name"] if entity["name"] != DEFERRED else entity["function"]
        key = _key(name)
        topics = entity["topics"]
        extensions = _extensions(entity)
        state = self.payload(entity["state_model"], _GENERIC_STATE)
        self.channel(
            f"{key}.state",
            topics["state"],
            _message("state", state, f"the state of {name}", entity["state_model"]),
            send=True,
            retained=True,
            extensions=extensions,
            summary=entity["summary"],
            tags=entity["tags"],
        )
        self.channel(
            f"{key}.availability",
            topics["availability"],
            _message("availability", _AVAILABILITY, f"whether {name} is online", text=True),
            send=True,
            retained=True,
            extensions={**extensions, "x-triolette-framework": "availability"},
        )
        if topics["set"] is not None:
            payload = self.payload(entity["payload_model"], _GENERIC_SET)
            what = "a command" if not entity["triggerable"] else "a request for a cycle"
            set_extensions = {**extensions, "x-triolette-triggerable": entity["triggerable"]}
            self.channel(
                f"{key}.set",
                topics["set"],
                _message("set", payload, f"{what} for {name}", entity["payload_model"]),
                send=False,
                retained=False,
                extensions=set_extensions if entity["triggerable"] else extensions,
            )
        self.channel(
            f"{key}.error",
            topics["error"],
            _message("error", _ERROR, f"errors of {name}"),
            send=True,
            retained=False,
            extensions=extensions,
        )

    def channel(
        self,
        key: str,
        address: str,
        message: dict[str, Any],
        *,
        send: bool,
        retained: bool,
        extensions: Mapping[str, Any],
        summary: str | None = None,
        tags: list[str] | None = None,
    ) -> None:
        """Add channel ``key`` with its one message, and the operation on it."""
        key = _unique(key, self.channels)
        channel: dict[str, Any] = {"address": address, "messages": {message["name"]: message}}
        if NAME_PLACEHOLDER in address:
            channel["parameters"] = {"name": {"description": "a device name the settings give"}}
        if summary:
            channel["summary"] = summary
        if tags:
            channel["tags"] = [{"name": tag} for tag in tags]
        self.channels[key] = channel | {"x-triolette-retained": retained, **extensions}
        action = "send" if send else "receive"
        operation: dict[str, Any] = {
            "action": action,
            "channel": {"$ref": f"#/channels/{key}"},
            "messages": [{"$ref": f"#/channels/{key}/messages/{message['name']}"}],
        }
        if send:
            operation["bindings"] = {
                "mqtt": {"qos": 1, "retain": retained, "bindingVersion": "0.2.0"}
            }
        self.operations[f"{key}.{'publish' if send else 'receive'}"] = operation

    def payload(self, model: Mapping[str, Any] | None, generic: dict[str, Any]) -> dict[str, Any]:
        """The payload schema of ``model`` (a snapshot's ``{name, schema}``), its nested
        definitions moved into ``components.schemas``; ``generic`` without a model."""
        if model is None:
            return generic
        schema = dict(model["schema"])
        definitions: dict[str, Any] = schema.pop("$defs", {})
        schemas = {**definitions, model["name"].rsplit(".", 1)[-1]: schema}
        renamed = {name: _key(name) for name in schemas}
        moved = {renamed[name]: _moved(value, renamed) for name, value in schemas.items()}
        if any(self.schemas.get(key, value) != value for key, value in moved.items()):
            # another model's schema of the same name is there already: take fresh keys
            renamed = {}
            for name in schemas:
                renamed[name] = _unique(_key(name), self.schemas.keys() | renamed.values())
            moved = {renamed[name]: _moved(value, renamed) for name, value in schemas.items()}
        self.schemas.update(moved)
        key = renamed[model["name"].rsplit(".", 1)[-1]]
        return {"$ref": f"#/components/schemas/{key}"}


def _message(
    name: str,
    payload: dict[str, Any],
    summary: str,
    model: Mapping[str, Any] | None = None,
    *,
    text: bool = False,
) -> dict[str, Any]:
    message = {
        "name": name,
        "summary": summary,
        "contentType": "text/plain" if text else "application/json",
        "payload": payload,
    }
    if model is not None:
        message["x-triolette-model"] = model["name"]
    return message


def _extensions(entity: Mapping[str, Any]) -> dict[str, Any]:
    extensions = {
        "x-triolette-entity": entity["name"],
        "x-triolette-kind": entity["kind"],
        "x-triolette-root": entity["root"],
        "x-triolette-discoverable": entity["discoverable"],
        "x-triolette-state-version": entity["state_version"],
    }
    if entity["schedule"] is not None:
        extensions["x-triolette-schedule"] = entity["schedule"]
    return extensions


def _moved(schema: Any, renamed: Mapping[str, str]) -> Any:
    """``schema`` with each ``#/$defs/X`` reference pointing into ``components.schemas``."""
    if isinstance(schema, dict):
        moved = {key: _moved(value, renamed) for key, value in schema.items()}
        reference = moved.get("$ref")
        if isinstance(reference, str) and reference.startswith("#/$defs/"):
            name = reference.removeprefix("#/$defs/")
            moved["$ref"] = f"#/components/schemas/{renamed.get(name, name)}"
        return moved
    if isinstance(schema, list):
        return [_moved(item, renamed) for item in schema]
    return schema


def _key(name: str) -> str:
    return _KEY.sub("_", name) or "_"


def _unique(key: str, taken: Collection[str]) -> str:
    candidate, count = key, 1
    while candidate in taken:
        count += 1
        candidate = f"{key}_{count}"
    return candidate
