"""The registry as data: every kind of entity, names from the settings, models, the renderings.

``app`` below is also what the command-line tests print (``tests.runtime.test_registry_view:app``).
"""

from __future__ import annotations

import json
import logging
from typing import Any

import pytest
from pydantic import BaseModel, Field

from triolette import (
    App,
    CircuitBreaker,
    DeviceContext,
    DeviceStore,
    MemoryStore,
    OnChange,
    SaveOnChange,
    Settings,
    Stream,
    StreamablePort,
    build_registry_snapshot,
    format_registry_json,
    format_registry_table,
    setting_ref,
)


class Poll(BaseModel):
    seconds: float = 5.0


class RegistrySettings(Settings):
    poll: Poll = Field(default_factory=Poll)
    rooms: list[str] = Field(default_factory=lambda: ["kitchen", "hall"])


class Unit(BaseModel):
    symbol: str


class Reading(BaseModel):
    """A meter reading."""

    m3: float
    unit: Unit


class ValveCommand(BaseModel):
    open: bool


class Tick:
    pass


class Ticker:
    def register_callback(self, callback: Any) -> None:
        self.callback = callback


class Valve:
    """A valve driver, made once per start by ``init=``."""


def make_valve() -> Valve:
    return Valve()


app = App(
    "house",
    "1.2.3",
    store=MemoryStore(),
    settings_class=RegistrySettings,
    description="A house's meters and valves",
)
app.adapter(StreamablePort[Tick], Ticker)


@app.telemetry(
    "meter",
    interval=setting_ref("poll.seconds"),
    publish=OnChange(),
    persist=SaveOnChange(),
    retry=2,
    circuit_breaker=CircuitBreaker(3),
    triggerable="both",
    min_interval=1,
    timeout=4,
    group="bus",
    state_model=Reading,
    state_version=2,
    migrate={0: lambda old: old, 1: lambda old: old},
    summary="Reads the gas meter",
    behavior=("adds the impulses since the last reading",),
    tags=("energy", "gas"),
)
async def meter(store: DeviceStore, ctx: DeviceContext) -> dict[str, Any]:
    return {}


@app.telemetry(lambda settings: settings.rooms, interval=30)
async def thermometer(log: logging.Logger) -> dict[str, Any]:
    return {}


@app.telemetry("hourly", schedule="0 0 * * * ?")
async def hourly() -> None:
    return None


@app.device("valve", payload_model=ValveCommand, heartbeat=20, restart="permanent", init=make_valve)
async def valve(ctx: DeviceContext, driver: Valve) -> None:
    return None


@app.command()
async def reset(payload: str) -> dict[str, Any]:
    return {}


@app.stream("ticks", maxsize=8, backpressure="drop_oldest")
async def ticks(stream: Stream[Tick]) -> None:
    return None


def entities(snapshot: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return {entity["name"]: entity for entity in snapshot["entities"]}


# -- the snapshot ------------------------------------------------------------------------------


def test_the_snapshot_lists_the_app_and_every_entity_in_registration_order():
    snapshot = build_registry_snapshot(app)
    assert snapshot["app"] == {
        "name": "house",
        "version": "1.2.3",
        "description": "A house's meters and valves",
        "topic_prefix": "house",
        "status_topic": "house/status",
        "settings": "RegistrySettings",
    }
    names = [entity["name"] for entity in snapshot["entities"]]
    assert names == ["meter", "kitchen", "hall", "hourly", "valve", "reset", "ticks"]
    kinds = [entity["kind"] for entity in snapshot["entities"]]
    assert kinds == ["telemetry"] * 4 + ["device", "command", "stream"]
    assert snapshot["adapters"] == [
        {"port": "StreamablePort[Tick]", "implementation": "Ticker", "dry_run": False}
    ]
    assert json.loads(json.dumps(snapshot)) == snapshot  # JSON-safe, nothing lost


def test_a_telemetry_entity_shows_its_topics_schedule_policies_and_model():
    meter_entity = entities(build_registry_snapshot(app))["meter"]
    assert meter_entity["topics"] == {
        "state": "house/meter/state",
        "availability": "house/meter/availability",
        "set": "house/meter/set",  # triggerable from MQTT
        "error": "house/meter/error",
    }
    assert meter_entity["schedule"] == {"interval": 5.0, "min_interval": 1.0}
    assert meter_entity["strategy"] == "OnChange(threshold=None)"
    assert meter_entity["persist"] == "SaveOnChange()"
    assert meter_entity["retry"] == {
        "retries": 2,
        "retry_on": ["OSError"],
        "backoff": "ExponentialBackoff(base=2.0, max_delay=60.0)",
    }
    assert meter_entity["circuit_breaker"] == {"threshold": 3}
    assert meter_entity["triggerable"] == ["local", "mqtt"]
    assert (meter_entity["timeout"], meter_entity["group"]) == (4.0, "bus")
    assert meter_entity["state_model"]["name"] == "Reading"
    assert meter_entity["state_model"]["schema"] == Reading.model_json_schema()
    assert meter_entity["state_version"] == 2
    assert meter_entity["summary"] == "Reads the gas meter"
    assert meter_entity["behavior"] == ["adds the impulses since the last reading"]
    assert meter_entity["tags"] == ["energy", "gas"]
    assert meter_entity["dependencies"] == [["store", "DeviceStore"], ["ctx", "DeviceContext"]]


def test_names_from_the_settings_are_expanded_with_their_own_topics():
    found = entities(build_registry_snapshot(app))
    assert found["kitchen"]["topics"]["state"] == "house/kitchen/state"
    assert found["hall"]["function"] == "thermometer"
    assert found["hall"]["schedule"] == {"interval": 30.0}
    assert found["hall"]["topics"]["set"] is None
    assert found["hall"]["dependencies"] == [["log", "Logger"]]


def test_other_settings_give_other_names():
    settings = RegistrySettings(rooms=["attic"], poll=Poll(seconds=60))
    found = entities(build_registry_snapshot(app, settings=settings))
    assert "attic" in found
    assert "kitchen" not in found
    assert found["meter"]["schedule"]["interval"] == 60.0


def test_without_settings_a_name_callable_is_deferred_and_a_setting_ref_shows_its_path():
    found = entities(build_registry_snapshot(app, settings=None))
    deferred = found["<deferred>"]
    assert deferred["function"] == "thermometer"
    assert deferred["enabled"] is True  # the names are the settings', not whether it runs
    assert deferred["topics"]["state"] == "house/{name}/state"
    assert deferred["schedule"] == {"interval": 30.0}
    assert found["meter"]["schedule"] == {
        "interval": {"setting_ref": "poll.seconds"},
        "min_interval": 1.0,
    }
    assert found["meter"]["enabled"] is True


def test_an_enabled_callable_without_settings_is_deferred():
    switched = App("switched")

    @switched.telemetry("probe", interval=1, enabled=lambda settings: settings.probe_on)
    async def probe() -> None: ...

    (entity,) = build_registry_snapshot(switched)["entities"]
    assert (entity["name"], entity["enabled"]) == ("probe", "<deferred>")
    row = format_registry_table(build_registry_snapshot(switched)).splitlines()[4]
    assert row.split() == ["probe", "telemetry", "(settings", "decide)", "every", "1s", "-", "-"]


def test_an_interval_from_a_plain_callable_is_deferred_without_settings():
    plain = App("plain")

    @plain.telemetry("probe", interval=lambda settings: settings.seconds)
    async def probe() -> None: ...

    (entity,) = build_registry_snapshot(plain)["entities"]
    assert entity["name"] == "probe"
    assert entity["schedule"] == {"interval": "<deferred>"}


def test_an_entity_the_settings_disable_is_listed_as_disabled():
    switched = App("switched")

    @switched.telemetry("probe", interval=1, enabled=lambda settings: False)
    async def probe() -> None: ...

    (entity,) = build_registry_snapshot(switched)["entities"]
    assert (entity["name"], entity["enabled"]) == ("probe", False)
    assert "(disabled)" in format_registry_table(build_registry_snapshot(switched))


def test_cron_device_command_root_and_stream_entities():
    found = entities(build_registry_snapshot(app))
    assert found["hourly"]["schedule"] == {"cron": "0 0 * * * ?"}
    valve_entity = found["valve"]
    assert valve_entity["topics"]["set"] == "house/valve/set"
    assert valve_entity["schedule"] is None
    assert (valve_entity["heartbeat"], valve_entity["restart"]) == (20.0, "permanent")
    assert valve_entity["init"] == "make_valve"
    assert valve_entity["payload_model"] == {
        "name": "ValveCommand",
        "schema": ValveCommand.model_json_schema(),
    }
    assert valve_entity["dependencies"] == [["ctx", "DeviceContext"], ["driver", "Valve"]]
    root = found["reset"]
    assert root["root"] is True
    assert root["topics"] == {
        "state": "house/state",
        "availability": "house/availability",
        "set": "house/set",
        "error": "house/error",
    }
    assert found["ticks"]["stream"] == {
        "item": "Tick",
        "maxsize": 8,
        "backpressure": "drop_oldest",
        "stale_after": None,
        "feeds": [],
    }
    assert found["ticks"]["dependencies"] == [["stream", "Stream[Tick]"]]


def test_an_app_whose_settings_cannot_be_built_still_has_a_snapshot(monkeypatch):
    class Strict(Settings):
        poll: Poll  # required, and not in the environment

    broken = App("broken", settings_class=Strict)
    assert broken.settings is None

    @broken.telemetry(lambda settings: settings.rooms, interval=5)
    async def room() -> None: ...

    (entity,) = build_registry_snapshot(broken)["entities"]
    assert entity["name"] == "<deferred>"
    assert entity["topics"]["availability"] == "broken/{name}/availability"


def test_a_router_name_keeps_its_levels_in_the_topics():
    from triolette import Router

    router = Router()

    @router.telemetry("pump", interval=3)
    async def pump() -> None: ...

    routed = App("plant")
    routed.include_router(router, prefix="cellar")
    (entity,) = build_registry_snapshot(routed)["entities"]
    assert entity["topics"]["state"] == "plant/cellar/pump/state"


# -- the renderings ----------------------------------------------------------------------------


def test_the_table_has_a_row_per_entity_and_its_topics_below():
    table = format_registry_table(build_registry_snapshot(app))
    lines = table.splitlines()
    assert lines[0] == "house 1.2.3: A house's meters and valves"
    header = lines[3].split()
    assert header == ["NAME", "KIND", "SCHEDULE", "POLICIES", "MODELS"]
    meter_row = next(line for line in lines if line.startswith("meter "))
    assert "every 5s (min 1s)" in meter_row
    for policy in ("persist=SaveOnChange()", "retry=2", "breaker=3", "trigger=local+mqtt"):
        assert policy in meter_row
    assert "state=Reading, v2" in meter_row
    assert "  topics house/meter/{state,availability,set,error}" in lines
    assert "  topics house/{state,availability,set,error}" in lines  # the root entity
    reset_row = next(line for line in lines if line.startswith("reset "))
    assert "command (root)" in reset_row
    hourly_row = next(line for line in lines if line.startswith("hourly "))
    assert "cron 0 0 * * * ?" in hourly_row
    assert "  tags: energy; gas" in lines
    assert "meter: meter(store: DeviceStore, ctx: DeviceContext)" in lines
    assert "adapter StreamablePort[Tick]: Ticker" in lines


def test_the_table_of_deferred_entities_says_the_settings_decide():
    table = format_registry_table(build_registry_snapshot(app, settings=None))
    row = next(line for line in table.splitlines() if line.startswith("<deferred>"))
    assert "telemetry (settings decide)" in row
    meter_row = next(line for line in table.splitlines() if line.startswith("meter "))
    assert "every setting poll.seconds" in meter_row


def test_an_app_without_entities_says_so():
    assert format_registry_table(build_registry_snapshot(App("empty"))).endswith("(no entities)")


def test_the_json_is_the_snapshot():
    snapshot = build_registry_snapshot(app)
    text = format_registry_json(snapshot)
    assert json.loads(text) == snapshot
    assert text.startswith('{\n  "snapshot_version": 1,')


@pytest.mark.parametrize("name", ["build_registry_snapshot", "format_registry_table"])
def test_the_names_are_cosalettes(name):
    import triolette

    assert name in triolette.__all__
