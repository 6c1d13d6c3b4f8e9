"""The AsyncAPI document of a bridge, checked against the AsyncAPI 3.0.0 specification.

``check_asyncapi_3`` holds the spec's rules a document generator can break: the required
fields (``asyncapi``, ``info.title``/``info.version``, an operation's ``action`` and
``channel``), the fixed fields of each object (extensions are ``x-...``), the key patterns of
channels, operations and components, the channel parameters of an address, and references
that resolve.
"""

from __future__ import annotations

import json
import re
from typing import Any

import pytest
from pydantic import BaseModel

from tests.runtime.test_registry_view import Reading, RegistrySettings, ValveCommand, app
from triolette import App, MemoryStore, build_registry_snapshot
from triolette.runtime.asyncapi import asyncapi_document

KEY = re.compile(r"^[A-Za-z0-9._-]+$")
EXTENSION = re.compile(r"^x-[\w\d.\-_]+$")
FIELDS = {
    "document": {
        "asyncapi", "id", "info", "servers", "defaultContentType", "channels", "operations",
        "components",
    },
    "info": {
        "title", "version", "description", "termsOfService", "contact", "license", "tags",
        "externalDocs",
    },
    "channel": {
        "address", "messages", "title", "summary", "description", "servers", "parameters",
        "tags", "externalDocs", "bindings",
    },
    "message": {
        "headers", "payload", "correlationId", "contentType", "name", "title", "summary",
        "description", "tags", "externalDocs", "bindings", "examples", "traits",
    },
    "operation": {
        "action", "channel", "title", "summary", "description", "security", "tags",
        "externalDocs", "bindings", "traits", "messages", "reply",
    },
    "parameter": {"enum", "default", "description", "examples", "location"},
    "components": {
        "schemas", "servers", "channels", "operations", "messages", "securitySchemes",
        "serverVariables", "parameters", "correlationIds", "replies", "replyAddresses",
        "externalDocs", "tags", "operationTraits", "messageTraits", "serverBindings",
        "channelBindings", "operationBindings", "messageBindings",
    },
    "mqtt operation binding": {"qos", "retain", "messageExpiryInterval", "bindingVersion"},
}  # fmt: skip


def fields(what: str, value: dict[str, Any]) -> None:
    unknown = {key for key in value if key not in FIELDS[what] and not EXTENSION.match(key)}
    assert not unknown, f"{what} has fields AsyncAPI 3.0 does not define: {unknown}"


def required(value: dict[str, Any], what: str, *names: str) -> None:
    missing = [name for name in names if name not in value]
    assert not missing, f"{what} lacks the required {missing}"


def pointer(document: dict[str, Any], reference: str) -> Any:
    assert reference.startswith("#/"), reference
    found: Any = document
    for part in reference[2:].split("/"):
        found = found[part.replace("~1", "/").replace("~0", "~")]
    return found


def references(value: Any) -> list[str]:
    if isinstance(value, dict):
        own = [value["$ref"]] if isinstance(value.get("$ref"), str) else []
        return own + [ref for item in value.values() for ref in references(item)]
    if isinstance(value, list):
        return [ref for item in value for ref in references(item)]
    return []


def check_asyncapi_3(document: dict[str, Any]) -> None:
    """Raise AssertionError where ``document`` breaks a rule of AsyncAPI 3.0.0."""
    fields("document", document)
    required(document, "document", "asyncapi", "info")
    required(document["info"], "info", "title", "version")
    assert document["asyncapi"] == "3.0.0"
    fields("info", document["info"])
    assert isinstance(document["info"]["title"], str)
    assert isinstance(document["info"]["version"], str)
    for key, channel in document.get("channels", {}).items():
        assert KEY.match(key), key
        fields("channel", channel)
        address = channel.get("address")
        assert address is None or isinstance(address, str)
        named = set(re.findall(r"\{([^}]+)\}", address or ""))
        assert named == set(channel.get("parameters", {})), key
        for parameter in channel.get("parameters", {}).values():
            fields("parameter", parameter)
        for message_key, message in channel.get("messages", {}).items():
            assert KEY.match(message_key), message_key
            fields("message", message)
        for tag in channel.get("tags", []):
            assert isinstance(tag["name"], str)
    for key, operation in document.get("operations", {}).items():
        assert KEY.match(key), key
        fields("operation", operation)
        required(operation, f"operation {key}", "action", "channel")
        assert operation["action"] in ("send", "receive")
        channel_ref = operation["channel"]["$ref"]
        assert channel_ref.removeprefix("#/channels/") in document["channels"], channel_ref
        for message in operation.get("messages", []):  # a subset of the channel's messages
            assert message["$ref"].startswith(f"{channel_ref}/messages/")
        mqtt = operation.get("bindings", {}).get("mqtt")
        if mqtt is not None:
            fields("mqtt operation binding", mqtt)
            assert mqtt["qos"] in (0, 1, 2)
    components = document.get("components", {})
    fields("components", components)
    for section in components.values():
        assert all(KEY.match(key) for key in section), section.keys()
    for reference in references(document):
        pointer(document, reference)  # resolves, or raises KeyError
    json.dumps(document)  # plain JSON data


@pytest.fixture
def document() -> dict[str, Any]:
    return app.asyncapi()


def test_the_document_follows_asyncapi_3(document):
    check_asyncapi_3(document)
    assert document["info"]["title"] == "house"
    assert document["info"]["version"] == "1.2.3"
    assert document["info"]["x-triolette-topic-prefix"] == "house"


def test_the_checker_catches_what_the_spec_refuses(document):
    broken = json.loads(json.dumps(document))
    del broken["operations"]["meter.state.publish"]["action"]
    with pytest.raises(AssertionError, match=r"lacks the required \['action'\]"):
        check_asyncapi_3(broken)
    broken = json.loads(json.dumps(document))
    broken["channels"]["meter.state"]["retained"] = True
    with pytest.raises(AssertionError, match="retained"):
        check_asyncapi_3(broken)
    broken = json.loads(json.dumps(document))
    broken["operations"]["meter.state.publish"]["channel"]["$ref"] = "#/channels/nowhere"
    with pytest.raises(AssertionError, match="nowhere"):
        check_asyncapi_3(broken)
    broken = json.loads(json.dumps(document))
    broken["channels"]["meter.state"]["address"] = "house/{room}/state"
    with pytest.raises(AssertionError, match=r"meter\.state"):
        check_asyncapi_3(broken)
    broken = json.loads(json.dumps(document))
    del broken["info"]["version"]
    with pytest.raises(AssertionError, match="info lacks"):
        check_asyncapi_3(broken)


def test_each_entity_has_state_availability_and_error_channels_and_set_when_it_takes_one(
    document,
):
    channels = document["channels"]
    for name in ("meter", "kitchen", "hall", "hourly", "valve", "reset", "ticks"):
        assert channels[f"{name}.state"]["x-triolette-entity"] == name
        assert f"{name}.availability" in channels
        assert f"{name}.error" in channels
    takes_set = {key.removesuffix(".set") for key in channels if key.endswith(".set")}
    assert takes_set == {"meter", "valve", "reset"}
    assert channels["reset.set"]["address"] == "house/set"  # the root entity
    assert channels["meter.set"]["x-triolette-triggerable"] == ["local", "mqtt"]
    assert channels["status"]["address"] == "house/status"
    assert channels["error"]["address"] == "house/error"
    assert channels["meter.state"]["x-triolette-kind"] == "telemetry"
    assert channels["meter.state"]["x-triolette-state-version"] == 2
    assert channels["meter.state"]["x-triolette-schedule"] == {"interval": 5.0, "min_interval": 1.0}
    assert channels["meter.state"]["summary"] == "Reads the gas meter"
    assert channels["meter.state"]["tags"] == [{"name": "energy"}, {"name": "gas"}]


def test_states_are_sent_retained_and_commands_received(document):
    operations = document["operations"]
    state = operations["meter.state.publish"]
    assert state["action"] == "send"
    assert state["channel"] == {"$ref": "#/channels/meter.state"}
    assert state["messages"] == [{"$ref": "#/channels/meter.state/messages/state"}]
    assert state["bindings"]["mqtt"]["retain"] is True
    assert operations["meter.error.publish"]["bindings"]["mqtt"]["retain"] is False
    assert operations["valve.set.receive"]["action"] == "receive"
    assert operations["status.publish"]["action"] == "send"
    actions = {key.rsplit(".", 1)[-1]: op["action"] for key, op in operations.items()}
    assert actions == {"publish": "send", "receive": "receive"}


def test_the_payloads_are_the_models_schemas_with_nested_models_in_components(document):
    schemas = document["components"]["schemas"]
    expected = Reading.model_json_schema(ref_template="#/components/schemas/{model}")
    nested = expected.pop("$defs")
    assert schemas["Reading"] == expected
    assert schemas["Unit"] == nested["Unit"]
    assert schemas["ValveCommand"] == ValveCommand.model_json_schema()
    state = document["channels"]["meter.state"]["messages"]["state"]
    assert state["payload"] == {"$ref": "#/components/schemas/Reading"}
    assert state["x-triolette-model"] == "Reading"
    command = document["channels"]["valve.set"]["messages"]["set"]
    assert command["payload"] == {"$ref": "#/components/schemas/ValveCommand"}
    generic = document["channels"]["hourly.state"]["messages"]["state"]["payload"]
    assert generic["type"] == "object"
    availability = document["channels"]["meter.availability"]["messages"]["availability"]
    assert availability["payload"] == {"type": "string", "enum": ["online", "offline"]}


def test_two_models_of_one_name_keep_both_schemas():
    class First(BaseModel):
        a: int

    class Second(BaseModel):
        b: str

    First.__name__ = First.__qualname__ = Second.__name__ = Second.__qualname__ = "Reading"
    same = App("same", store=MemoryStore())

    @same.telemetry("one", interval=1, state_model=First)
    async def one() -> None: ...

    @same.telemetry("two", interval=1, state_model=Second)
    async def two() -> None: ...

    @same.telemetry("three", interval=1, state_model=First)
    async def three() -> None: ...

    document = same.asyncapi()
    check_asyncapi_3(document)
    schemas = document["components"]["schemas"]
    assert sorted(schemas) == ["Reading", "Reading_2"]
    payload = document["channels"]["three.state"]["messages"]["state"]["payload"]
    assert payload == {"$ref": "#/components/schemas/Reading"}  # the same model, one schema


def test_a_deferred_entity_has_a_name_parameter_in_its_addresses():
    document = app.asyncapi(settings=None)
    check_asyncapi_3(document)
    channel = document["channels"]["thermometer.state"]
    assert channel["address"] == "house/{name}/state"
    assert set(channel["parameters"]) == {"name"}
    assert channel["x-triolette-entity"] == "<deferred>"


def test_other_settings_give_other_channels():
    document = app.asyncapi(settings=RegistrySettings(rooms=["attic"]))
    assert "attic.state" in document["channels"]
    assert "kitchen.state" not in document["channels"]


def test_router_names_become_valid_channel_keys():
    from triolette import Router

    router = Router()

    @router.command("valve")
    async def valve(payload: str) -> None: ...

    routed = App("plant")
    routed.include_router(router, prefix="cellar")
    document = routed.asyncapi()
    check_asyncapi_3(document)
    assert document["channels"]["cellar_valve.set"]["address"] == "plant/cellar/valve/set"


def test_the_document_is_made_from_a_snapshot():
    assert asyncapi_document(build_registry_snapshot(app)) == app.asyncapi()


def test_names_that_make_the_same_key_get_channels_of_their_own():
    from triolette import Router

    router = Router()

    @router.telemetry("b", interval=1)
    async def routed() -> None: ...

    clash = App("clash")
    clash.include_router(router, prefix="a")

    @clash.telemetry("a_b", interval=1)
    async def plain() -> None: ...

    document = clash.asyncapi()
    check_asyncapi_3(document)
    assert document["channels"]["a_b.state"]["address"] == "clash/a/b/state"
    assert document["channels"]["a_b.state_2"]["address"] == "clash/a_b/state"
    assert document["operations"]["a_b.state_2.publish"]["channel"] == {
        "$ref": "#/channels/a_b.state_2"
    }
