"""``app.discovery()`` while serving: configs queued retained, kept through reconnects, and the
configs of removed entities cleared at the next start (with a store)."""

from __future__ import annotations

import importlib.util
import json
from pathlib import Path
from typing import Any

import pytest
import trio
from pydantic import BaseModel, Field

from triolette import App, MemoryStore, schema
from triolette.core.errors import RegistrationError
from triolette.runtime.discovery import KEY, offline_configs
from triolette.testing import AppHarness
from triolette.testing.broker import MemoryBroker

from .test_discovery_cli import write_example
from .test_discovery_configs import check_config, render

PREFIX = "homeassistant"
LIVING = "homeassistant/sensor/bridge/living_celsius/config"
CELLAR = "homeassistant/sensor/bridge/cellar_celsius/config"
LINK = "homeassistant/binary_sensor/bridge/bridge/config"


class Climate(BaseModel):
    celsius: float = Field(json_schema_extra=schema.temperature("Temperature"))


def bridge(rooms: list[str], store: MemoryStore | None, *, discovery: bool = True) -> App:
    app = App("bridge", version="2.0", store=store, log_statistics_every=None)

    @app.telemetry(name=lambda settings: rooms, interval=60, state_model=Climate)
    async def room() -> dict[str, object]:
        return {"celsius": 20.0}

    if discovery:
        app.discovery()
    return app


def announced(broker: MemoryBroker) -> dict[str, Any]:
    """The discovery configs the broker keeps (retained), decoded."""
    return {
        topic: json.loads(message.payload)
        for topic, message in broker.retained.items()
        if topic.startswith(f"{PREFIX}/")
    }


async def serve_settled(app: App, broker: MemoryBroker) -> None:
    """Serve ``app`` until connected and every task waits (the clears confirmed), then stop."""
    harness = AppHarness(app, broker)
    async with harness.serving():
        await harness.app.wait_until_connected()
        await harness.settle()


def recorded(store: MemoryStore) -> list[str]:
    state = store.load(KEY)
    assert state is not None
    topics = state["topics"]
    assert isinstance(topics, list)
    return topics


async def test_the_configs_are_published_retained_while_serving(autojump_clock):
    app = bridge(["living", "cellar"], MemoryStore())
    harness = AppHarness(app)
    await harness.run()
    configs = announced(harness.broker)
    assert configs == offline_configs(app)
    assert set(configs) == {LIVING, CELLAR, LINK}
    for topic, config in configs.items():
        check_config(topic, config)
    assert all(m.retain for m in harness.broker.messages if m.topic.startswith(f"{PREFIX}/"))


async def test_without_discovery_nothing_is_announced_or_stored(autojump_clock):
    store = MemoryStore()
    harness = AppHarness(bridge(["living"], store, discovery=False))
    await harness.run()
    assert not announced(harness.broker)
    assert store.load(KEY) is None


async def test_discoverable_false_registrations_are_not_announced(autojump_clock):
    app = bridge(["living"], None)

    @app.telemetry("secret", interval=60, state_model=Climate, discoverable=False)
    async def secret() -> dict[str, object]:
        return {"celsius": 1.0}

    harness = AppHarness(app)
    await harness.run()
    assert set(announced(harness.broker)) == {LIVING, LINK}


async def test_the_configs_come_back_after_the_broker_lost_them_and_we_reconnected(
    autojump_clock,
):
    harness = AppHarness(bridge(["living"], None))
    async with harness.serving():
        await harness.app.wait_until_connected()
        await harness.settle()
        assert set(announced(harness.broker)) == {LIVING, LINK}
        running = harness.app.running
        assert running is not None
        connects = running.mqtt.statistics().connects
        harness.broker.online = False  # a broker restart that lost its retained messages
        harness.broker.retained.clear()
        await trio.sleep(1)
        harness.broker.online = True
        await harness.app.wait_until_connected()
        await harness.settle()
        assert running.mqtt.statistics().connects == connects + 1
        assert set(announced(harness.broker)) == {LIVING, LINK}


async def test_a_removed_entitys_config_is_cleared_at_the_next_start(autojump_clock):
    store, broker = MemoryStore(), MemoryBroker()
    await serve_settled(bridge(["living", "cellar"], store), broker)
    assert sorted(recorded(store)) == sorted([LIVING, CELLAR, LINK])
    assert CELLAR in broker.retained

    await serve_settled(bridge(["living"], store), broker)
    assert set(announced(broker)) == {LIVING, LINK}  # the empty payload removed it
    assert broker.on(CELLAR)[-1].payload == b""
    assert broker.on(CELLAR)[-1].retain
    assert sorted(recorded(store)) == sorted([LIVING, LINK])

    before = len(broker.on(CELLAR))
    await serve_settled(bridge(["living"], store), broker)
    assert len(broker.on(CELLAR)) == before  # cleared once, not at every start


async def test_a_clear_the_broker_never_confirmed_is_sent_again_at_the_next_start(
    autojump_clock,
):
    store, broker = MemoryStore(), MemoryBroker()
    await serve_settled(bridge(["living", "cellar"], store), broker)

    broker.online = False  # the second start never reaches the broker
    await AppHarness(bridge(["living"], store, discovery=True), broker).run()
    assert CELLAR in recorded(store)  # still to be cleared
    assert CELLAR in broker.retained

    broker.online = True
    await serve_settled(bridge(["living"], store), broker)
    assert CELLAR not in broker.retained
    assert CELLAR not in recorded(store)


async def test_without_a_store_removed_entities_stay_announced(autojump_clock):
    broker = MemoryBroker()
    await AppHarness(bridge(["living", "cellar"], None), broker).run()
    await AppHarness(bridge(["living"], None), broker).run()
    assert CELLAR in broker.retained  # nothing remembers the earlier start


async def test_a_component_no_control_takes_stops_the_start_naming_the_field(autojump_clock):
    class Lamp(BaseModel):
        colour: str = Field(
            json_schema_extra=schema.merge(
                schema.consumer(), schema.ha_discovery(component="light")
            )
        )

    app = App("lamps", log_statistics_every=None)

    @app.command("lamp", payload_model=Lamp)
    async def lamp(payload: str) -> None:
        return None

    app.discovery()
    harness = AppHarness(app)
    with pytest.raises(RegistrationError, match="lamp: payload field 'colour'"):
        await harness.run()
    assert not announced(harness.broker)


async def test_discovery_is_declared_before_the_app_serves(autojump_clock):
    harness = AppHarness(bridge(["living"], None, discovery=False))
    async with harness.serving():
        with pytest.raises(RegistrationError, match="discovery must be registered before"):
            harness.app.discovery()


async def test_home_assistants_command_reaches_the_guides_vent_and_its_state_reads_back(
    autojump_clock, tmp_path: Path
):
    spec = importlib.util.spec_from_file_location("greenhouse_guide", write_example(tmp_path))
    assert spec is not None
    assert spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    harness = AppHarness.create(app=module.app)
    configs = offline_configs(harness.app)
    control = configs["homeassistant/number/greenhouse/vent_opening_cmd/config"]
    sensor = configs["homeassistant/sensor/greenhouse/vent_opening/config"]
    async with harness.serving():
        await harness.command("vent", render(control["command_template"], "40.0"))
    assert harness.errors("vent") == []
    state = harness.broker.retained[control["state_topic"]].text
    assert render(control["value_template"], state) == "40"
    assert render(sensor["value_template"], state) == "40"
