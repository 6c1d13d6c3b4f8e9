"""End to end against a real mosquitto: an App on PahoTransport, seen by independent observers.

Each test has its own broker (the ``mosquitto`` fixture) and unique client ids. Keepalive and
backoff are short, so an outage is detected and cured within seconds. Connection attempts are
watched (and, for the restart test, held) through :class:`WatchedTransport`, a PahoTransport
that reports each attempt: the test waits on that, never on the clock.
"""

from __future__ import annotations

import json
import math
import os
import re
import signal
import socket
import subprocess
import sys
import threading
import uuid
from collections.abc import Callable, Mapping
from datetime import datetime
from pathlib import Path
from typing import Any

import pytest
import trio
import trio.testing

from triolette import (
    App,
    Backoff,
    ConnectError,
    DeviceContext,
    DeviceStore,
    JsonFileStore,
    MemoryStore,
    PahoTransport,
    SaveOnChange,
    SaveOnPublish,
)
from triolette.actors.mqtt import MqttStatistics
from triolette.core.messages import Message
from triolette.testing.mosquitto import Mosquitto
from triolette.testing.observer import Observer, publish_once
from triolette.testing.plugin import ObserverFactory

BRIDGE = Path(__file__).with_name("mqtt_bridge_process.py")
KEEPALIVE = 1.0
RECONNECT = Backoff(initial=0.2, maximum=1.0, jitter=0.5)
VERSION = "1.2.3"


def unique(name: str) -> str:
    return f"{name}-{uuid.uuid4().hex[:8]}"


class Changes:
    """Wakes a waiting test whenever state it watches may have changed."""

    def __init__(self) -> None:
        self._event = trio.Event()

    def notify(self) -> None:
        self._event.set()
        self._event = trio.Event()

    async def until(self, predicate: Callable[[], bool], timeout: float = 10.0) -> None:  # noqa: ASYNC109
        with trio.fail_after(timeout):
            while not predicate():
                await self._event.wait()


class WatchedTransport(PahoTransport):
    """A PahoTransport that counts connection attempts and holds each one until ``gate`` is set."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.gate = trio.Event()
        self.gate.set()
        self.attempts = 0
        self.failures: list[ConnectError] = []
        self.changes = Changes()

    async def connect(self, will: Message, on_message: Callable[[Message], None]) -> bool:
        self.attempts += 1
        self.changes.notify()
        await self.gate.wait()
        try:
            return await super().connect(will, on_message)
        except ConnectError as error:
            self.failures.append(error)
            self.changes.notify()
            raise

    async def until_attempt(self, number: int, timeout: float = 10.0) -> None:  # noqa: ASYNC109
        await self.changes.until(lambda: self.attempts >= number, timeout)


class RecordingStore(JsonFileStore):
    """A JSON file store that keeps every state it wrote, in order, and wakes the test."""

    def __init__(self, path: Path) -> None:
        super().__init__(path)
        self.written: list[tuple[str, dict[str, Any]]] = []
        self.changes = Changes()
        self._token = trio.lowlevel.current_trio_token()
        self._recording = threading.Lock()

    def save_encoded(self, texts: Mapping[str, str]) -> None:
        super().save_encoded(texts)
        with self._recording:
            self.written.extend((key, json.loads(text)) for key, text in texts.items())
        self._token.run_sync_soon(self.changes.notify)

    def history(self, key: str) -> list[int]:
        with self._recording:
            return [state["count"] for written, state in self.written if written == key]


def make_app(
    broker: Mosquitto,
    *,
    store: Any = None,
    transport: type[PahoTransport] = WatchedTransport,
    host: str | None = None,
    **options: Any,
) -> App:
    """An App on a PahoTransport to ``broker`` with a unique prefix and client id."""
    options.setdefault("log_statistics_every", None)
    options.setdefault("reconnect_backoff", RECONNECT)
    return App(
        unique("bridge"),
        VERSION,
        store=store,
        transport=transport(
            host or broker.host,
            broker.port,
            client_id=unique("bridge"),
            keepalive=KEEPALIVE,
            connect_timeout=1.0,
        ),
        **options,
    )


def mqtt_statistics(app: App) -> MqttStatistics:
    stats = app.statistics().mqtt
    assert stats is not None
    return stats


def watched(app: App) -> WatchedTransport:
    assert isinstance(app.transport, WatchedTransport)
    return app.transport


def add_counter(app: App, name: str, interval: float = 0.05, **options: Any) -> None:
    """A telemetry device that counts its cycles in its store and publishes the count."""

    async def count(store: DeviceStore) -> dict[str, object]:
        store["count"] = store.get("count", 0) + 1
        return {"count": store["count"]}

    app.telemetry(name, interval=interval, **options)(count)


async def observe(factory: ObserverFactory, broker: Mosquitto, prefix: str) -> Observer:
    """A started observer of ``{prefix}/#`` (started off the trio thread)."""
    observer = factory(broker, [f"{prefix}/#"], start=False)
    await trio.to_thread.run_sync(observer.start)
    return observer


def send(broker: Mosquitto, topic: str, payload: str) -> None:
    """Publish at QoS 1 from a client of its own; return once the broker acknowledged it."""
    publish_once(broker.host, broker.port, topic, payload)


def counts(observer: Observer, topic: str) -> list[int]:
    return [payload["count"] for payload in observer.payloads(topic)]


def highest(observer: Observer, topic: str) -> int:
    return max(counts(observer, topic), default=0)


def has(topic: str, payload: object = None) -> Callable[[list[Message]], bool]:
    """An observer predicate: a message on ``topic`` (with that payload, if given) arrived."""

    def predicate(messages: list[Message]) -> bool:
        return any(
            message.topic == topic and (payload is None or _decoded(message) == payload)
            for message in messages
        )

    predicate.__qualname__ = f"has({topic!r}, {payload!r})"
    return predicate


def _decoded(message: Message) -> object:
    try:
        return json.loads(message.payload)
    except ValueError:
        return message.text


def retained_topics(messages: list[Message]) -> dict[str, Message]:
    """The first message per topic, for an observer that subscribed late (retained come first)."""
    first: dict[str, Message] = {}
    for message in messages:
        first.setdefault(message.topic, message)
    return first


# -- what the broker sees --------------------------------------------------------------------


async def test_states_availability_status_and_errors_arrive_on_their_topics_with_their_flags(
    mosquitto: Mosquitto, mqtt_observer_factory: ObserverFactory
) -> None:
    app = make_app(mosquitto, store=MemoryStore(), heartbeat_every=0.2)
    p = app.topics.prefix
    calls = 0

    add_counter(app, "meter")
    written: list[bool] = []

    @app.device("pulse")
    async def pulse(ctx: DeviceContext) -> None:
        for number in range(1, 4):
            written.append(await ctx.publish("reading", str(number), qos=0))
        await trio.sleep_forever()

    @app.telemetry("probe", interval=0.05)
    async def probe() -> dict[str, object]:
        nonlocal calls
        calls += 1
        if calls <= 3:
            raise ValueError("sensor unplugged")
        raise OSError("bus error")  # a new kind of error, then repeated every cycle

    observer = await observe(mqtt_observer_factory, mosquitto, p)
    async with trio.open_nursery() as nursery:
        await nursery.start(app.serve)
        await app.wait_for_cycles(8)  # probe: three ValueErrors, then OSErrors
        await observer.until(lambda messages: sum(m.topic == f"{p}/status" for m in messages) > 2)

        late = await observe(mqtt_observer_factory, mosquitto, p)
        wanted = {f"{p}/meter/state", f"{p}/status"}
        wanted |= {f"{p}/{device}/availability" for device in ("meter", "pulse", "probe")}
        await late.until(lambda messages: wanted <= set(retained_topics(messages)))
        app.shutdown()

    await observer.until(has(f"{p}/status", "offline"))

    # A late subscriber gets the retained topics, flagged so, and no error (not retained).
    first = retained_topics(late.messages)
    assert all(first[topic].retain for topic in wanted), late.messages
    for device in ("meter", "pulse", "probe"):
        assert first[f"{p}/{device}/availability"].text == "online"
    assert json.loads(first[f"{p}/meter/state"].payload)["count"] >= 8
    assert json.loads(first[f"{p}/status"].payload)["version"] == VERSION  # a heartbeat
    assert not [m for m in late.messages if m.topic.endswith(("/error", "/reading"))]

    # States: every cycle's, in order, QoS 1.
    states = observer.on(f"{p}/meter/state")
    assert [m.qos for m in states] == [1] * len(states)
    meter = counts(observer, f"{p}/meter/state")
    assert meter == list(range(1, len(meter) + 1))
    assert len(meter) >= 8
    for device in ("meter", "pulse", "probe"):
        assert observer.payloads(f"{p}/{device}/availability") == ["online", "offline"]
    assert not observer.on(f"{p}/probe/state")

    # Other messages: as published (here QoS 0, written at once), not retained.
    assert written == [True, True, True]
    assert observer.on(f"{p}/pulse/reading") == [
        Message(f"{p}/pulse/reading", str(number), qos=0) for number in range(1, 4)
    ]

    # Status: online, heartbeats, offline.
    status = observer.payloads(f"{p}/status")
    assert status[0] == "online"
    assert status[-1] == "offline"
    heartbeats = status[1:-1]
    assert len(heartbeats) >= 2
    for beat in heartbeats:
        assert beat == {
            "status": "online",
            "uptime_s": int(beat["uptime"]),
            "version": VERSION,
            "devices": beat["devices"],
            "uptime": beat["uptime"],
            "device_count": 3,
            "failed": [],
            "restarts": 0,
            "crashes": 0,
            "watchdog_firings": 0,
            "store": {"outage_since": None, "pending": beat["store"]["pending"]},
        }
        assert beat["devices"]["pulse"] == {"status": "ok"}
        assert beat["devices"]["meter"]["status"] == "ok"
        assert beat["devices"]["meter"]["consecutive_failures"] == 0
        probe_health = beat["devices"]["probe"]
        assert probe_health["status"] == "error"
        assert probe_health["last_success_at"] is None
        assert probe_health["consecutive_failures"] >= 1
        assert probe_health["last_error"] in ("ValueError", "OSError")
        assert datetime.fromisoformat(probe_health["failing_since"]).utcoffset() is not None
    uptimes = [beat["uptime"] for beat in heartbeats]
    assert uptimes == sorted(uptimes)
    assert 0 < uptimes[0] < uptimes[-1]

    # Errors: one report per kind on the device's topic and the app's, not retained.
    for topic in (f"{p}/probe/error", f"{p}/error"):
        reports = observer.on(topic)
        assert [m.retain for m in reports] == [False, False], topic
        bodies = [json.loads(m.payload) for m in reports]
        assert [(b["type"], b["message"], b["device"]) for b in bodies] == [
            ("ValueError", "sensor unplugged", "probe"),
            ("OSError", "bus error", "probe"),
        ]
        for body in bodies:
            assert datetime.fromisoformat(body["timestamp"]).utcoffset() is not None
            assert (body["error_type"], body["details"]) == ("error", {})
            assert re.fullmatch("[0-9a-f]{12}", body["id"])
    assert calls >= 8
    assert app.statistics().errors_repeated == calls - 2


# -- the will, and a bridge process's life ----------------------------------------------------


def start_bridge(
    host: str, port: int, prefix: str, client_id: str, log: Path
) -> subprocess.Popen[bytes]:
    with log.open("wb") as stderr:
        return subprocess.Popen(
            [sys.executable, str(BRIDGE), host, str(port), prefix, client_id],
            stdin=subprocess.DEVNULL,
            stdout=subprocess.DEVNULL,
            stderr=stderr,
            env={**os.environ, "PYTHONUNBUFFERED": "1"},
        )


def reap(process: subprocess.Popen[bytes]) -> None:
    process.kill()
    process.wait()


def wait_until_up(observer: Observer, prefix: str) -> None:
    """Until the bridge process said online and both its devices published a state."""
    wanted = [
        has(f"{prefix}/status", "online"),
        has(f"{prefix}/alpha/availability", "online"),
        has(f"{prefix}/beta/availability", "online"),
        has(f"{prefix}/alpha/state"),
        has(f"{prefix}/beta/state"),
    ]
    observer.wait_for(lambda messages: all(check(messages) for check in wanted), timeout=10)


def test_the_will_says_offline_when_the_bridge_process_is_killed(
    mosquitto: Mosquitto, mqtt_observer_factory: ObserverFactory, tmp_path: Path
) -> None:
    prefix, client_id = unique("proc"), unique("bridge")
    observer = mqtt_observer_factory(mosquitto, [f"{prefix}/#"])
    process = start_bridge(mosquitto.host, mosquitto.port, prefix, client_id, tmp_path / "err")
    try:
        wait_until_up(observer, prefix)
        process.kill()
        process.wait()
        observer.wait_for(has(f"{prefix}/status", "offline"), timeout=5)
    finally:
        reap(process)

    assert observer.payloads(f"{prefix}/status") == ["online", "offline"]
    late = mqtt_observer_factory(mosquitto, [f"{prefix}/status"])
    late.wait_for(bool, timeout=5)
    assert late.messages == [Message(f"{prefix}/status", "offline", qos=1, retain=True)]
    assert f"Client {client_id} closed its connection." in mosquitto.log_text()


def test_a_graceful_stop_says_offline_once_and_the_will_stays_silent(
    mosquitto: Mosquitto, mqtt_observer_factory: ObserverFactory, tmp_path: Path
) -> None:
    prefix, client_id = unique("proc"), unique("bridge")
    observer = mqtt_observer_factory(mosquitto, [f"{prefix}/#"])
    process = start_bridge(mosquitto.host, mosquitto.port, prefix, client_id, tmp_path / "err")
    try:
        wait_until_up(observer, prefix)
        process.send_signal(signal.SIGTERM)
        assert process.wait(timeout=10) == 0, (tmp_path / "err").read_text()
    finally:
        reap(process)
    # The broker handled the bridge's goodbye (or its vanished socket) before this new client's
    # message: a will would have arrived before the fence.
    send(mosquitto, f"{prefix}/fence", "after the exit")
    observer.wait_for(has(f"{prefix}/fence"), timeout=5)

    status = observer.payloads(f"{prefix}/status")
    assert status == ["online", "offline"]
    topics = [(m.topic, m.text) for m in observer.messages]
    goodbye = topics.index((f"{prefix}/status", "offline"))
    for device in ("alpha", "beta"):
        assert observer.payloads(f"{prefix}/{device}/availability") == ["online", "offline"]
        assert topics.index((f"{prefix}/{device}/availability", "offline")) < goodbye
    log = mosquitto.log_text()
    assert f"Client {client_id} disconnected." in log
    assert f"Client {client_id} closed its connection." not in log


def test_a_broker_host_that_does_not_resolve_stops_the_bridge_with_status_3(
    tmp_path: Path,
) -> None:
    try:
        socket.getaddrinfo("broker.invalid", 1883)
    except socket.gaierror as error:
        if error.errno == socket.EAI_AGAIN:  # no resolver answers (offline): retried for ever
            pytest.skip("no DNS resolver here to say that broker.invalid does not exist")
    command = [sys.executable, str(BRIDGE), "broker.invalid", "1883", unique("p"), unique("c")]
    result = subprocess.run(command, capture_output=True, text=True, timeout=30, check=False)
    assert result.returncode == 3, result.stderr
    assert "broker.invalid:1883" in result.stderr
    assert "does not resolve" in result.stderr


# -- commands ---------------------------------------------------------------------------------


async def test_commands_from_the_broker_reach_command_and_device_handlers(
    mosquitto: Mosquitto, mqtt_observer_factory: ObserverFactory
) -> None:
    app = make_app(mosquitto)
    p = app.topics.prefix
    seen: list[tuple[str, str]] = []

    @app.command("valve")
    async def valve(payload: str, topic: str) -> dict[str, object]:
        seen.append((topic, payload))
        return {"open": payload == "open"}

    @app.device("boiler")
    async def boiler(ctx: DeviceContext) -> None:
        async for message in ctx.commands():
            await ctx.publish_state({"target": float(message.text)})

    observer = await observe(mqtt_observer_factory, mosquitto, p)
    async with trio.open_nursery() as nursery:
        await nursery.start(app.serve)
        await app.wait_until_connected()
        await trio.to_thread.run_sync(send, mosquitto, f"{p}/valve/set", "open")
        # A state waits for the link in a table holding the latest per topic: a second result
        # queued before the first went out would replace it, so the test lets it go out first.
        await observer.until(has(f"{p}/valve/state", {"open": True}))
        await trio.to_thread.run_sync(send, mosquitto, f"{p}/boiler/set", "21.5")
        await trio.to_thread.run_sync(send, mosquitto, f"{p}/valve/set", "close")
        await observer.until(has(f"{p}/valve/state", {"open": False}))
        await observer.until(has(f"{p}/boiler/state", {"target": 21.5}))
        app.shutdown()

    assert seen == [(f"{p}/valve/set", "open"), (f"{p}/valve/set", "close")]
    assert observer.payloads(f"{p}/valve/state") == [{"open": True}, {"open": False}]
    assert observer.payloads(f"{p}/boiler/state") == [{"target": 21.5}]
    assert mqtt_statistics(app).commands_dropped == 0


class HeldSubscriptions(WatchedTransport):
    """Counts SUBSCRIBE requests and holds each one until ``subscribing`` is set."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.subscribes = 0
        self.subscribing = trio.Event()
        self.subscribing.set()

    async def subscribe(self, topics: Any) -> None:
        self.subscribes += 1
        self.changes.notify()
        await self.subscribing.wait()
        await super().subscribe(topics)


@pytest.mark.slow
async def test_connected_again_means_subscribed_again_so_a_command_then_is_not_lost(
    mosquitto: Mosquitto, mqtt_observer_factory: ObserverFactory
) -> None:
    app = make_app(mosquitto, transport=HeldSubscriptions)
    transport = app.transport
    assert isinstance(transport, HeldSubscriptions)
    p = app.topics.prefix
    reconnected = trio.Event()

    @app.command("valve")
    async def valve(payload: str) -> dict[str, object]:
        return {"open": payload == "open"}

    async def wait_connected() -> None:
        await app.wait_until_connected()
        reconnected.set()

    async with trio.open_nursery() as nursery:
        await nursery.start(app.serve)
        transport.subscribing = trio.Event()
        await trio.to_thread.run_sync(mosquitto.restart)  # a crash: no retained, no sessions
        await transport.changes.until(lambda: transport.subscribes == 2)
        nursery.start_soon(wait_connected)
        await trio.testing.wait_all_tasks_blocked()
        assert not reconnected.is_set()  # CONNACK came, the SUBSCRIBE is held: not usable yet
        transport.subscribing.set()
        with trio.fail_after(5):
            await reconnected.wait()
        observer = await observe(mqtt_observer_factory, mosquitto, p)
        await trio.to_thread.run_sync(send, mosquitto, f"{p}/valve/set", "open")
        await observer.until(has(f"{p}/valve/state", {"open": True}))
        app.shutdown()


# -- outages ----------------------------------------------------------------------------------


class Events:
    """A device publishing QoS 1 events ``n`` on ``{p}/events/events`` when the test says.

    Each publish runs in a task of its own, so many can wait for their PUBACK at once.
    """

    def __init__(self, app: App) -> None:
        self._send, self._receive = trio.open_memory_channel[int](math.inf)
        self.results: dict[int, bool] = {}
        self.changes = Changes()
        app.device("events")(self._run)

    async def _run(self, ctx: DeviceContext) -> None:
        async with trio.open_nursery() as nursery:
            async for number in self._receive:
                nursery.start_soon(self._publish, ctx, number)

    async def _publish(self, ctx: DeviceContext, number: int) -> None:
        self.results[number] = await ctx.publish("events", str(number), qos=1)
        self.changes.notify()

    def produce(self, numbers: range) -> None:
        for number in numbers:
            self._send.send_nowait(number)

    async def until_done(self, numbers: range) -> dict[int, bool]:
        """Wait until every publish of ``numbers`` returned; what each returned."""
        await self.changes.until(lambda: all(n in self.results for n in numbers))
        return {n: self.results[n] for n in numbers}


def event_numbers(observer: Observer, prefix: str) -> list[int]:
    return [int(m.payload) for m in observer.on(f"{prefix}/events/events")]


@pytest.mark.slow
async def test_a_broker_crash_loses_no_qos1_event_and_the_retained_topics_come_back(
    mosquitto: Mosquitto, mqtt_observer_factory: ObserverFactory, tmp_path: Path
) -> None:
    store = RecordingStore(tmp_path / "state.json")
    app = make_app(mosquitto, store=store)
    transport = watched(app)
    p = app.topics.prefix
    add_counter(app, "counter", persist=SaveOnChange())
    events = Events(app)

    before = await observe(mqtt_observer_factory, mosquitto, p)
    async with trio.open_nursery() as nursery:
        await nursery.start(app.serve)
        events.produce(range(1, 11))
        assert set((await events.until_done(range(1, 11))).values()) == {True}
        await store.changes.until(lambda: len(store.history("counter")) >= 3)

        # A hung broker: these go out and are never acknowledged.
        mosquitto.pause()
        events.produce(range(11, 21))
        with trio.fail_after(5):
            await trio.testing.wait_all_tasks_blocked()
        stats = mqtt_statistics(app)
        assert stats.outbox_depth == 0  # all handed over to paho, unacknowledged
        assert not any(n in events.results for n in range(11, 21))

        # It crashes and comes back empty; the bridge may not reconnect yet.
        transport.gate = trio.Event()
        await trio.to_thread.run_sync(mosquitto.restart)
        await transport.until_attempt(2)
        assert set((await events.until_done(range(11, 21))).values()) == {False}
        stored_at_loss = max(store.history("counter"))
        seen_at_loss = highest(before, f"{p}/counter/state")

        # Meanwhile, events queue and the counter goes on counting and saving.
        events.produce(range(21, 31))
        assert set((await events.until_done(range(21, 31))).values()) == {False}
        await store.changes.until(lambda: max(store.history("counter")) >= stored_at_loss + 3)

        after = await observe(mqtt_observer_factory, mosquitto, p)
        transport.gate.set()
        await app.wait_until_connected()
        events.produce(range(31, 41))
        assert set((await events.until_done(range(31, 41))).values()) == {True}
        await after.until(lambda _: set(range(11, 41)) <= set(event_numbers(after, p)))

        # online, each availability and the latest state are published again...
        wanted = [
            has(f"{p}/status", "online"),
            has(f"{p}/counter/availability", "online"),
            has(f"{p}/events/availability", "online"),
            has(f"{p}/counter/state"),
        ]
        await after.until(lambda messages: all(check(messages) for check in wanted))
        # ...and retained again at the restarted broker.
        late = await observe(mqtt_observer_factory, mosquitto, p)
        topics = {f"{p}/status", f"{p}/counter/availability", f"{p}/events/availability"}
        topics.add(f"{p}/counter/state")
        await late.until(lambda messages: topics <= set(retained_topics(messages)))
        app.shutdown()

    retained = retained_topics(late.messages)
    assert all(retained[topic].retain for topic in topics), late.messages
    assert retained[f"{p}/status"].text == "online"
    assert retained[f"{p}/counter/availability"].text == "online"
    assert retained[f"{p}/events/availability"].text == "online"
    assert json.loads(retained[f"{p}/counter/state"].payload)["count"] > seen_at_loss

    # Every event not acknowledged before the crash arrived, some perhaps twice; no others.
    assert set(event_numbers(after, p)) == set(range(11, 41))
    stats = mqtt_statistics(app)
    assert (stats.connects, stats.connect_failures) == (2, 0)

    # The counter never went backwards, on the broker or on disk, and ended where it was.
    history = store.history("counter")
    assert history == sorted(history)
    assert json.loads((tmp_path / "state.json").read_text())["counter"] == {"count": history[-1]}
    published = counts(after, f"{p}/counter/state")
    assert published == sorted(published)
    assert published[-1] == history[-1]


@pytest.mark.slow
async def test_a_hung_broker_is_detected_by_keepalive_and_the_bridge_recovers_when_it_resumes(
    mosquitto: Mosquitto, mqtt_observer_factory: ObserverFactory
) -> None:
    # A publish timeout past the keepalive: the unconfirmed states would tell first otherwise
    # (test_broker_stall.py covers that).
    app = make_app(mosquitto, store=MemoryStore(), publish_timeout=5 * KEEPALIVE)
    transport = watched(app)
    p = app.topics.prefix
    add_counter(app, "meter", interval=0.1)

    @app.command("switch")
    async def switch(payload: str) -> dict[str, object]:
        return {"on": payload == "on"}

    observer = await observe(mqtt_observer_factory, mosquitto, p)
    async with trio.open_nursery() as nursery:
        await nursery.start(app.serve)
        await observer.until(has(f"{p}/meter/state"))

        mosquitto.pause()
        paused_at = trio.current_time()
        # No RST, no FIN: only the unanswered keepalive tells the bridge.
        await transport.until_attempt(2, timeout=4 * KEEPALIVE)
        detected_after = trio.current_time() - paused_at
        stats = mqtt_statistics(app)
        assert not stats.connected
        # The kernel accepts the new TCP connection for the stopped broker; no CONNACK comes.
        await transport.changes.until(lambda: bool(transport.failures), timeout=5)
        assert "no CONNACK" in str(transport.failures[0])
        seen_before = highest(observer, f"{p}/meter/state")

        mosquitto.resume()
        await app.wait_until_connected()
        await observer.until(
            lambda _: highest(observer, f"{p}/meter/state") > seen_before + 2, timeout=10
        )
        await trio.to_thread.run_sync(send, mosquitto, f"{p}/switch/set", "on")  # resubscribed
        await observer.until(has(f"{p}/switch/state", {"on": True}))
        # On resuming, the broker sent the will of each connection the bridge had given up on,
        # then took the new one: the bridge's online came last, and stays.
        status = observer.payloads(f"{p}/status")
        late = await observe(mqtt_observer_factory, mosquitto, f"{p}/status")  # also {p}/status
        await late.until(bool)
        app.shutdown()

    assert detected_after >= KEEPALIVE
    assert status[0] == "online"
    assert status[-1] == "online"
    assert "offline" in status  # the will, while the broker was thought lost
    assert late.messages[0] == Message(f"{p}/status", "online", retain=True)
    stats = mqtt_statistics(app)
    assert stats.connects >= 2
    assert stats.connect_failures >= 1


@pytest.mark.slow
async def test_save_on_publish_waits_for_the_broker_and_save_on_change_does_not(
    mosquitto: Mosquitto, mqtt_observer_factory: ObserverFactory, tmp_path: Path
) -> None:
    store = RecordingStore(tmp_path / "state.json")
    app = make_app(mosquitto, store=store, publish_timeout=0.3)
    transport = watched(app)
    p = app.topics.prefix
    add_counter(app, "confirmed", interval=0.1, persist=SaveOnPublish())
    add_counter(app, "changed", interval=0.1, persist=SaveOnChange())

    def saved(key: str) -> int:
        return max(store.history(key), default=0)

    observer = await observe(mqtt_observer_factory, mosquitto, p)
    async with trio.open_nursery() as nursery:
        await nursery.start(app.serve)
        await store.changes.until(lambda: saved("confirmed") >= 2)

        mosquitto.pause()
        await transport.until_attempt(2, timeout=4 * KEEPALIVE)  # the loss is detected
        # The next write of "changed" also writes whatever "confirmed" had waiting.
        changed_at_loss = saved("changed")
        await store.changes.until(lambda: saved("changed") > changed_at_loss)
        confirmed_at_loss = saved("confirmed")
        cycles_at_loss = app.statistics().cycles["confirmed"]
        # The broker is away: "changed" keeps saving, "confirmed" counts on but is not saved.
        await store.changes.until(lambda: saved("changed") >= changed_at_loss + 4)
        assert app.statistics().cycles["confirmed"] >= cycles_at_loss + 3
        assert saved("confirmed") == confirmed_at_loss

        mosquitto.resume()
        await app.wait_until_connected()
        await store.changes.until(lambda: saved("confirmed") > confirmed_at_loss + 2)
        written = store.history("confirmed")
        app.shutdown()

    # Each count saved by SaveOnPublish was one the broker had (and passed on).
    assert set(written) <= set(counts(observer, f"{p}/confirmed/state"))
    assert written == sorted(written)


def take_over(broker: Mosquitto, client_id: str, stop: threading.Event) -> int:
    """Connect as ``client_id`` again and again until ``stop``, as a second copy of a bridge
    would: each CONNACK means the broker has just thrown the other holder of the id out."""
    cid = client_id.encode()
    body = b"\x00\x04MQTT\x04\x02\x00\x3c" + len(cid).to_bytes(2, "big") + cid
    connect = b"\x10" + bytes([len(body)]) + body  # MQTT 3.1.1 CONNECT, clean session
    takeovers = 0
    while not stop.is_set():
        with socket.create_connection((broker.host, broker.port), timeout=5) as rival:
            rival.sendall(connect)
            assert rival.recv(4), "no CONNACK"
            rival.sendall(b"\xe0\x00")  # DISCONNECT
        takeovers += 1
    return takeovers


@pytest.mark.slow
async def test_a_second_client_with_the_same_id_never_crashes_the_bridge(
    mosquitto: Mosquitto, mqtt_observer_factory: ObserverFactory
) -> None:
    """Thrown out at every moment of its connection (right after CONNACK too), the bridge only
    reconnects; once the other client is gone it is back."""
    quick = Backoff(initial=0.01, maximum=0.02, jitter=0.5)
    app = make_app(mosquitto, store=MemoryStore(), reconnect_backoff=quick)
    transport = watched(app)
    p = app.topics.prefix
    add_counter(app, "meter")
    client_id = transport.client_id
    assert client_id is not None
    stop = threading.Event()
    takeovers = 0

    async def rival() -> None:
        nonlocal takeovers
        try:
            takeovers = await trio.to_thread.run_sync(take_over, mosquitto, client_id, stop)
        finally:
            stop.set()

    async with trio.open_nursery() as nursery:
        await nursery.start(app.serve)
        nursery.start_soon(rival)
        try:
            await transport.until_attempt(40, timeout=20)
        finally:
            stop.set()
        observer = await observe(mqtt_observer_factory, mosquitto, p)
        await app.wait_until_connected()
        await observer.until(has(f"{p}/status", "online"))
        cycles = app.statistics().cycles["meter"]
        await observer.until(lambda _: highest(observer, f"{p}/meter/state") > cycles)
        app.shutdown()

    assert takeovers > 0
    stats = mqtt_statistics(app)
    assert stats.connects >= 20


# -- starting without a broker -----------------------------------------------------------------


async def test_a_refused_connection_at_start_is_retried_until_a_broker_listens(
    mosquitto: Mosquitto, mqtt_observer_factory: ObserverFactory
) -> None:
    await trio.to_thread.run_sync(mosquitto.kill)  # nothing listens on its port now
    app = make_app(mosquitto, store=MemoryStore())
    transport = watched(app)
    p = app.topics.prefix
    add_counter(app, "meter")

    async with trio.open_nursery() as nursery:
        await nursery.start(app.serve)  # serving: devices run while the broker is away
        await transport.until_attempt(2)  # refused, and tried again
        assert "Connection refused" in str(transport.failures[0])
        await app.wait_for_cycles(3)
        stats = mqtt_statistics(app)
        assert (stats.connected, stats.connects) == (False, 0)

        await trio.to_thread.run_sync(mosquitto.restart)
        observer = await observe(mqtt_observer_factory, mosquitto, p)
        await app.wait_until_connected()
        await observer.until(has(f"{p}/meter/availability", "online"))
        await observer.until(has(f"{p}/status", "online"))
        cycles = app.statistics().cycles["meter"]
        await observer.until(lambda _: highest(observer, f"{p}/meter/state") > cycles)
        app.shutdown()

    stats = mqtt_statistics(app)
    assert stats.connects == 1
    assert stats.connect_failures >= 2


async def test_a_resolver_that_fails_for_a_moment_at_start_is_retried(
    mosquitto: Mosquitto, mqtt_observer_factory: ObserverFactory, monkeypatch: pytest.MonkeyPatch
) -> None:
    """EAI_AGAIN (no DNS server yet, at boot) is an outage; only a name that does not exist is
    final."""
    resolve = socket.getaddrinfo
    failures = 2

    def flaky(host: Any, *args: Any, **kwargs: Any) -> Any:
        nonlocal failures
        if host == "localhost" and failures:
            failures -= 1
            raise socket.gaierror(socket.EAI_AGAIN, "Temporary failure in name resolution")
        return resolve(host, *args, **kwargs)

    monkeypatch.setattr(socket, "getaddrinfo", flaky)
    app = make_app(mosquitto, store=MemoryStore(), host="localhost")
    transport = watched(app)
    p = app.topics.prefix
    add_counter(app, "meter")

    observer = await observe(mqtt_observer_factory, mosquitto, p)
    async with trio.open_nursery() as nursery:
        await nursery.start(app.serve)
        await app.wait_until_connected()
        await observer.until(has(f"{p}/meter/state"))
        app.shutdown()

    assert [error.permanent for error in transport.failures] == [False, False]
    assert "Temporary failure in name resolution" in str(transport.failures[0])
