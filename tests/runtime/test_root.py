"""Root entities: registered without a name, their topics have no device level."""

from __future__ import annotations

import json
import uuid

import pytest
import trio

from triolette import App, DeviceContext, MemoryStore, PahoTransport
from triolette.core.topics import Topics
from triolette.testing import AppHarness
from triolette.testing.mosquitto import Mosquitto
from triolette.testing.observer import publish_once
from triolette.testing.plugin import ObserverFactory


def test_a_root_entitys_topics_have_no_device_level_and_the_status_stays_the_apps():
    topics = Topics("home", root="house")
    assert topics.state("house") == "home/state"
    assert topics.availability("house") == "home/availability"
    assert topics.command("house") == "home/set"
    assert topics.error("house") == topics.app_error == "home/error"
    assert topics.under("house", "reading") == "home/reading"
    assert topics.state("pump") == "home/pump/state"
    assert topics.status == "home/status"
    assert topics.device_of_command("home/set") == "house"
    assert topics.device_of_command("home/pump/set") == "pump"
    assert Topics("home").device_of_command("home/set") is None
    with pytest.raises(ValueError, match="house: a root entity cannot publish under home/status"):
        topics.under("house", "status/detail")


async def test_a_root_telemetry_and_command_publish_and_listen_on_root_topics(autojump_clock):
    harness = AppHarness.create(store=MemoryStore())
    app = harness.app
    handled: list[str] = []

    @app.command()
    async def relay(payload: str) -> dict[str, object]:
        handled.append(payload)
        return {"relay": payload}

    @app.telemetry("meter", interval=10)
    async def meter() -> dict[str, object]:
        return {"watts": 5}

    assert app.topics.command("relay") == "testapp/set"
    async with harness.serving():
        await harness.command("relay", "on")
    assert handled == ["on"]
    assert harness.broker.payloads("testapp/state") == [{"relay": "on"}]
    assert harness.broker.payloads("testapp/availability") == ["online", "offline"]
    assert harness.broker.payloads("testapp/meter/state") == [{"watts": 5}]
    assert not harness.broker.on("testapp/relay/state")
    assert harness.broker.retained["testapp/status"].text == "offline"


async def test_a_root_entitys_error_is_published_once_on_the_apps_error_topic(autojump_clock):
    harness = AppHarness.create()

    @harness.app.telemetry(interval=10)
    async def sensor() -> None:
        raise OSError("sensor unplugged")

    await harness.run()
    (error,) = harness.broker.payloads("testapp/error")
    assert (error["type"], error["device"]) == ("OSError", "sensor")


async def test_a_root_device_publishes_under_the_prefix_but_not_on_the_status(autojump_clock):
    harness = AppHarness.create()
    refused: list[str] = []

    @harness.app.device()
    async def house(ctx: DeviceContext) -> None:
        await ctx.publish("reading", "7")
        try:
            await ctx.publish("status", "hijacked")
        except ValueError as error:
            refused.append(str(error))

    await harness.run()
    assert harness.broker.payloads("testapp/reading") == [7]
    assert refused == ["house: a root entity cannot publish under testapp/status, the app's status"]


async def test_a_root_disabled_by_the_settings_leaves_the_named_topics_alone(autojump_clock):
    harness = AppHarness.create()
    harness.app.settings = False

    @harness.app.command(enabled=lambda on: on)
    async def relay() -> None: ...

    @harness.app.command("set")  # a device named "set": {p}/set/set
    async def named_set(payload: str) -> dict[str, object]:
        return {"got": payload}

    async with harness.serving():
        assert harness.broker.inject("testapp/set", "x") == 0  # nobody listens there
        await harness.command("set", "y")
    assert harness.broker.payloads("testapp/set/state") == [{"got": "y"}]


async def test_a_root_entity_on_a_real_broker(
    mosquitto: Mosquitto, mqtt_observer_factory: ObserverFactory
) -> None:
    prefix = f"bridge-{uuid.uuid4().hex[:8]}"
    transport = PahoTransport(
        mosquitto.host, mosquitto.port, client_id=prefix, keepalive=1, connect_timeout=1.0
    )
    app = App(prefix, store=MemoryStore(), transport=transport, log_statistics_every=None)
    received = trio.Event()

    @app.command()
    async def heater(payload: str) -> dict[str, object]:
        received.set()
        if payload == "bad":
            raise RuntimeError("heater jammed")
        return {"target": float(payload)}

    @app.telemetry("outdoor", interval=60)
    async def outdoor() -> dict[str, object]:
        return {"celsius": 4}

    observer = mqtt_observer_factory(mosquitto, [f"{prefix}/#"], start=False)
    await trio.to_thread.run_sync(observer.start)
    async with trio.open_nursery() as nursery:
        await nursery.start(app.serve)
        await app.wait_until_connected()
        await trio.to_thread.run_sync(
            publish_once, mosquitto.host, mosquitto.port, f"{prefix}/set", "21.5"
        )
        await observer.until(lambda ms: any(m.topic == f"{prefix}/state" for m in ms))
        await trio.to_thread.run_sync(
            publish_once, mosquitto.host, mosquitto.port, f"{prefix}/set", "bad"
        )
        await observer.until(lambda ms: any(m.topic == f"{prefix}/error" for m in ms))
        app.shutdown()
    status = f"{prefix}/status"
    await observer.until(lambda ms: any(m.topic == status and m.text == "offline" for m in ms))

    assert [json.loads(m.payload) for m in observer.on(f"{prefix}/state")] == [{"target": 21.5}]
    assert observer.payloads(f"{prefix}/availability") == ["online", "offline"]
    assert observer.payloads(f"{prefix}/outdoor/availability") == ["online", "offline"]
    assert [json.loads(m.payload)["celsius"] for m in observer.on(f"{prefix}/outdoor/state")] == [4]
    errors = [json.loads(m.payload) for m in observer.on(f"{prefix}/error")]
    assert [(e["type"], e["device"]) for e in errors] == [("RuntimeError", "heater")]
    assert not [m for m in observer.messages if m.topic.startswith(f"{prefix}/heater/")]
