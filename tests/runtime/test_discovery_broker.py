"""Home Assistant discovery against a real mosquitto: configs retained on their topics, a removed
entity's config cleared at the next start, and what ``triolette watch`` shows of them."""

from __future__ import annotations

import json
import os
import queue
import re
import signal
import subprocess
import sys
import threading
import uuid
from pathlib import Path

import trio
from pydantic import BaseModel, Field

from triolette import App, JsonFileStore, PahoTransport, schema
from triolette.core.messages import Message
from triolette.runtime.discovery import KEY
from triolette.testing.mosquitto import Mosquitto
from triolette.testing.observer import Observer, publish_once
from triolette.testing.plugin import ObserverFactory

from .test_discovery_cli import EXPECTED, GUIDE, write_example
from .test_discovery_configs import check_config


class Climate(BaseModel):
    celsius: float = Field(json_schema_extra=schema.temperature("Temperature"))


def bridge(name: str, rooms: list[str], store: Path, broker: Mosquitto) -> App:
    transport = PahoTransport(broker.host, broker.port, client_id=f"{name}-{uuid.uuid4().hex[:6]}")
    app = App(name, store=JsonFileStore(store), transport=transport, log_statistics_every=None)

    @app.telemetry(name=lambda settings: rooms, interval=60, state_model=Climate)
    async def room() -> dict[str, object]:
        return {"celsius": 20.0}

    app.discovery()
    return app


async def serve_until(app: App, observer: Observer, seen: str, *, empty: bool = False) -> None:
    """Serve ``app`` until ``observer`` saw ``seen`` (with an empty payload if ``empty``)."""
    async with trio.open_nursery() as nursery:
        await nursery.start(app.serve)
        await observer.until(
            lambda ms: any(m.topic == seen and (m.payload == b"") == empty for m in ms)
        )
        app.shutdown()


async def retained_now(broker: Mosquitto, factory: ObserverFactory) -> dict[str, Message]:
    """What a new subscriber to ``homeassistant/#`` gets: the retained messages, by topic.

    A marker published after the subscription arrives after every retained message, so
    waiting for it means nothing retained is still on its way.
    """
    observer = factory(broker, ["homeassistant/#"], start=False)
    await trio.to_thread.run_sync(observer.start)
    marker = f"homeassistant/marker/{uuid.uuid4().hex[:8]}"
    await trio.to_thread.run_sync(publish_once, broker.host, broker.port, marker, "x")
    messages = await observer.until(lambda ms: any(m.topic == marker for m in ms))
    return {m.topic: m for m in messages if m.retain}


async def test_configs_arrive_retained_and_a_removed_entitys_config_is_cleared(
    mosquitto: Mosquitto, mqtt_observer_factory: ObserverFactory, tmp_path: Path
) -> None:
    name = f"b{uuid.uuid4().hex[:8]}"
    living = f"homeassistant/sensor/{name}/living_celsius/config"
    cellar = f"homeassistant/sensor/{name}/cellar_celsius/config"
    link = f"homeassistant/binary_sensor/{name}/bridge/config"
    store = tmp_path / "state.json"
    watching = mqtt_observer_factory(mosquitto, ["homeassistant/#"], start=False)
    await trio.to_thread.run_sync(watching.start)

    await serve_until(bridge(name, ["living", "cellar"], store, mosquitto), watching, cellar)
    retained = await retained_now(mosquitto, mqtt_observer_factory)
    assert set(retained) == {living, cellar, link}
    for topic, message in retained.items():
        config = json.loads(message.payload)
        check_config(topic, config)
        assert config["unique_id"].startswith(f"triolette_{name}_")
    assert json.loads(retained[cellar].payload)["state_topic"] == f"{name}/cellar/state"

    await serve_until(bridge(name, ["living"], store, mosquitto), watching, cellar, empty=True)
    retained = await retained_now(mosquitto, mqtt_observer_factory)
    assert set(retained) == {living, link}  # a fresh subscriber sees nothing of the cellar
    # The cellar leaves the record once the broker confirmed its clear, which may come after
    # the stop here (then the next start clears it again); test_discovery.py checks the record.
    assert {living, link} <= set(_record(store)) <= {living, link, cellar}


async def test_a_broker_that_lost_its_retained_messages_gets_the_configs_again(
    mosquitto: Mosquitto, mqtt_observer_factory: ObserverFactory, tmp_path: Path
) -> None:
    name = f"b{uuid.uuid4().hex[:8]}"
    living = f"homeassistant/sensor/{name}/living_celsius/config"
    app = bridge(name, ["living"], tmp_path / "state.json", mosquitto)
    async with trio.open_nursery() as nursery:
        await nursery.start(app.serve)
        assert living in await retained_until(mosquitto, mqtt_observer_factory, living)
        await trio.to_thread.run_sync(mosquitto.restart)  # no persistence: retained ones gone
        assert living in await retained_until(mosquitto, mqtt_observer_factory, living)
        app.shutdown()
    running = app.running
    assert running is not None
    assert running.statistics().mqtt.connects >= 2  # type: ignore[union-attr]


async def retained_until(
    broker: Mosquitto, factory: ObserverFactory, topic: str
) -> dict[str, Message]:
    """Wait until ``topic`` reaches a subscriber to ``homeassistant/#`` (retained or live),
    then return what a newer subscriber gets retained."""
    observer = factory(broker, ["homeassistant/#"], start=False)
    await trio.to_thread.run_sync(observer.start)
    await observer.until(lambda ms: any(m.topic == topic for m in ms), timeout=30)
    return await retained_now(broker, factory)


def _record(store: Path) -> list[str]:
    """The announced topics the JSON store file keeps."""
    reopened = JsonFileStore(store)
    try:
        state = reopened.load(KEY)
    finally:
        reopened.close()
    assert state is not None
    topics = state["topics"]
    assert isinstance(topics, list)
    return topics


def _lines(process: subprocess.Popen[str]) -> queue.Queue[str]:
    """The lines ``process`` prints, read on a thread of their own."""
    lines: queue.Queue[str] = queue.Queue()
    assert process.stdout is not None
    output = process.stdout

    def read() -> None:
        for line in output:
            lines.put(line.rstrip("\n"))

    threading.Thread(target=read, daemon=True).start()
    return lines


def _watch_output(broker: Mosquitto, folder: Path) -> list[str]:
    """The greenhouse example run with ``triolette run`` and its configs as ``triolette watch``
    prints them: the retained configs' lines, in the order they came."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("TRIOLETTE_")}
    triolette = [sys.executable, "-m", "triolette"]
    run = [*triolette, "run", "greenhouse:app", "--host", broker.host, "--port", str(broker.port)]
    watch = [*triolette, "watch", "--port", str(broker.port), "homeassistant/#"]
    with subprocess.Popen(run, cwd=folder, env=env, stderr=subprocess.DEVNULL) as bridge_run:
        try:
            publish_wait = Observer(broker.host, broker.port, ["homeassistant/#"]).start()
            try:
                publish_wait.wait_for(lambda ms: {m.topic for m in ms} >= EXPECTED, timeout=30)
            finally:
                publish_wait.close()
            with subprocess.Popen(
                watch, env=env, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True
            ) as watcher:
                try:
                    lines = _lines(watcher)
                    shown = [lines.get(timeout=20) for _ in range(2 + len(EXPECTED))]
                    watcher.send_signal(signal.SIGINT)
                    assert watcher.wait(timeout=10) == 0
                finally:
                    watcher.kill()
            bridge_run.send_signal(signal.SIGINT)
            assert bridge_run.wait(timeout=20) == 0
        finally:
            bridge_run.kill()
    assert (
        shown[0] == "watching homeassistant/# on 127.0.0.1:" + str(broker.port) + " (Ctrl-C stops)"
    )
    assert shown[1].startswith("(watch: connected to ")
    return sorted(shown[2:])


def test_the_guides_picture_is_what_triolette_watch_shows(mosquitto: Mosquitto, tmp_path: Path):
    write_example(tmp_path)
    shown = _watch_output(mosquitto, tmp_path)
    assert all(line.endswith(" (retained)") for line in shown)
    assert {line.split(" ", 1)[0] for line in shown} == EXPECTED
    for line in shown:
        topic, payload = line.removesuffix(" (retained)").split(" ", 1)
        check_config(topic, json.loads(payload))
    block = re.search(r"```text\n(.*?)```", GUIDE.read_text(), re.DOTALL)
    assert block is not None
    pictured = [line for line in block[1].splitlines() if line.startswith("homeassistant/")]
    assert sorted(pictured) == sorted(shown), "\n".join(shown)
