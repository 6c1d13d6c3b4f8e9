"""EmbeddedBroker: amqtt in the trio-asyncio loop, seen from the outside by paho clients."""

from __future__ import annotations

import asyncio
import importlib.util
import logging
import socket
import subprocess
import sys
import threading
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

import paho.mqtt.client as mqtt
import pytest
import trio
import trio_asyncio
from paho.mqtt.enums import CallbackAPIVersion

import triolette
from triolette.core.errors import SettingsError
from triolette.runtime.embedded import BrokerExtraMissingError, EmbeddedBroker
from triolette.stores.memory import MemoryStore
from triolette.testing.observer import Observer, publish_once

needs_amqtt = pytest.mark.skipif(
    importlib.util.find_spec("amqtt") is None,
    reason="needs the broker extra: pip install 'triolette[broker]'",
)

HOST = "127.0.0.1"


@asynccontextmanager
async def running_broker(host: str = HOST, port: int = 0) -> AsyncIterator[EmbeddedBroker]:
    """A broker on a free port in a trio-asyncio loop opened here; stopped on exit."""
    async with trio_asyncio.open_loop(), trio.open_nursery() as nursery:
        broker = EmbeddedBroker(host, port)
        await nursery.start(broker.run)
        yield broker
        nursery.cancel_scope.cancel()


@asynccontextmanager
async def observing(broker: EmbeddedBroker, topics: tuple[str, ...]) -> AsyncIterator[Observer]:
    observer = Observer(broker.host, broker.port, topics)
    try:
        # start() blocks until SUBACK, which the broker (in this very trio thread) must send.
        await trio.to_thread.run_sync(observer.start)
        yield observer
    finally:
        await trio.to_thread.run_sync(observer.close)


def _client(client_id: str = "") -> mqtt.Client:
    return mqtt.Client(CallbackAPIVersion.VERSION2, client_id=client_id, protocol=mqtt.MQTTv311)


def _connect(client: mqtt.Client, port: int) -> None:
    """Connect and wait for CONNACK (in a worker thread: the broker runs in trio's)."""
    connected = threading.Event()
    client.on_connect = lambda *args: connected.set()
    client.connect(HOST, port, keepalive=5)
    client.loop_start()
    assert connected.wait(5), "no CONNACK within 5 s"


async def publish(
    broker: EmbeddedBroker, topic: str, payload: bytes, *, qos: int, retain: bool
) -> None:
    await trio.to_thread.run_sync(
        lambda: publish_once(HOST, broker.port, topic, payload, qos=qos, retain=retain)
    )


async def connect_refused(port: int) -> bool:
    try:
        stream = await trio.open_tcp_stream(HOST, port)
    except OSError:
        return True
    await stream.aclose()
    return False


# -- MQTT behaviour ------------------------------------------------------------------------------


@needs_amqtt
async def test_a_retained_qos1_message_reaches_a_later_subscriber_with_retain_set():
    async with running_broker() as broker:
        await publish(broker, "demo/lamp/state", b'{"on": true}', qos=1, retain=True)
        async with observing(broker, ("demo/#",)) as observer:
            [message] = await observer.until(lambda ms: len(ms) >= 1, timeout=5)
    assert (message.topic, message.payload) == ("demo/lamp/state", b'{"on": true}')
    assert message.retain
    assert message.qos == 1


@needs_amqtt
async def test_a_live_subscriber_gets_the_message_without_retain():
    async with running_broker() as broker, observing(broker, ("demo/#",)) as observer:
        await publish(broker, "demo/lamp/state", b"1", qos=1, retain=True)
        [message] = await observer.until(lambda ms: len(ms) >= 1, timeout=5)
    assert (message.topic, message.payload, message.qos) == ("demo/lamp/state", b"1", 1)
    assert not message.retain  # a live delivery, not the stored copy


def _connect_and_die(port: int) -> None:
    """A client with a will connects, then its socket closes without DISCONNECT."""
    client = _client("doomed")
    client.will_set("demo/doomed/availability", b"offline", qos=1, retain=True)
    connected = threading.Event()
    client.on_connect = lambda *args: connected.set()
    client.connect(HOST, port, keepalive=5)
    deadline = time.monotonic() + 5
    while not connected.is_set():  # drive the network by hand: no loop thread to stop
        assert time.monotonic() < deadline, "no CONNACK within 5 s"
        client.loop(timeout=0.05)
    sock = client.socket()
    assert isinstance(sock, socket.socket)
    sock.close()  # the connection drops as if the process died


@needs_amqtt
async def test_the_will_is_sent_when_a_client_socket_dies_without_disconnect():
    async with (
        running_broker() as broker,
        observing(broker, ("demo/+/availability",)) as observer,
    ):
        await trio.to_thread.run_sync(_connect_and_die, broker.port)
        [will] = await observer.until(lambda ms: len(ms) >= 1, timeout=5)
    assert (will.topic, will.payload, will.qos) == ("demo/doomed/availability", b"offline", 1)


@needs_amqtt
async def test_retained_messages_go_only_to_subscriptions_that_match():
    # amqtt 0.12.1 alone also sends, on CONNECT, the retained messages matching any other
    # client's subscription; EmbeddedBroker turns that off (see _spec_retained_delivery).
    async with running_broker() as broker, observing(broker, ("demo/#",)):
        await publish(broker, "demo/lamp/state", b"on", qos=1, retain=True)
        async with observing(broker, ("other/#",)) as other:
            await publish(broker, "other/marker", b"after connect", qos=1, retain=False)
            await other.until(lambda ms: any(m.topic == "other/marker" for m in ms), timeout=5)
    assert [m.topic for m in other.messages] == ["other/marker"]


@needs_amqtt
async def test_cancelling_stops_the_broker_and_frees_the_port():
    async with trio_asyncio.open_loop():
        broker = EmbeddedBroker(port=0)
        async with trio.open_nursery() as nursery:
            await nursery.start(broker.run)
            port = broker.port
            assert port != 0
            assert broker.running
            async with observing(broker, ("#",)) as observer:  # a client still connected
                started = trio.current_time()
                nursery.cancel_scope.cancel()
                await observer.until(lambda ms: not observer.connected, timeout=5)
        assert trio.current_time() - started < broker.shutdown_timeout + 0.5
        assert not broker.running
        assert await connect_refused(port)
        # The port is free again: a new broker can take it at once.
        async with trio.open_nursery() as nursery:
            again = EmbeddedBroker(port=port)
            await nursery.start(again.run)
            assert again.port == port
            nursery.cancel_scope.cancel()


@needs_amqtt
async def test_a_hung_shutdown_is_cut_at_the_timeout_and_the_port_closed_anyway(monkeypatch):
    async def hang(self: EmbeddedBroker, broker: object, server: object) -> None:
        await asyncio.sleep(3600)  # asyncio code: amqtt's shutdown never returning

    monkeypatch.setattr(EmbeddedBroker, "_stop", hang)
    async with trio_asyncio.open_loop():
        broker = EmbeddedBroker(port=0, shutdown_timeout=0.2)
        async with trio.open_nursery() as nursery:
            await nursery.start(broker.run)
            started = trio.current_time()
            nursery.cancel_scope.cancel()
        assert 0.2 <= trio.current_time() - started < 1.0
        assert await connect_refused(broker.port)


@needs_amqtt
async def test_running_one_broker_twice_at_once_is_refused():
    async with running_broker() as broker:
        with pytest.raises(RuntimeError, match="already running"):
            await broker.run()


# -- errors ----------------------------------------------------------------------------------------


@needs_amqtt
async def test_run_without_a_trio_asyncio_loop_says_how_to_open_one():
    broker = EmbeddedBroker(port=0)
    with pytest.raises(RuntimeError, match=r"trio_asyncio\.open_loop\(\)"):
        await broker.run()
    assert not broker.running


async def test_a_missing_extra_says_what_to_install(monkeypatch):
    monkeypatch.setitem(sys.modules, "amqtt.broker", None)  # `import amqtt.broker` fails
    async with trio_asyncio.open_loop():
        with pytest.raises(BrokerExtraMissingError) as caught:
            await EmbeddedBroker(port=0).run()
    assert isinstance(caught.value, ImportError)
    assert isinstance(caught.value, triolette.TrioletteError)
    assert "pip install 'triolette[broker]'" in str(caught.value)


@needs_amqtt
async def test_a_taken_port_is_a_clear_oserror():
    with socket.socket() as taken:
        taken.bind((HOST, 0))
        taken.listen()
        port = taken.getsockname()[1]
        async with trio_asyncio.open_loop():
            with pytest.raises(OSError, match=r"cannot listen on mqtt://127\.0\.0\.1:\d+.*port=0"):
                await EmbeddedBroker(port=port).run()


@pytest.mark.parametrize("host", ["0.0.0.0", "192.168.1.10", "broker.example", ""])
def test_a_non_loopback_host_needs_allow_remote(host):
    with pytest.raises(SettingsError, match="allow_remote=True"):
        EmbeddedBroker(host)
    assert EmbeddedBroker(host, allow_remote=True).host == host


@pytest.mark.parametrize("port", [-1, 65536, 1883.0, True])
def test_a_bad_port_is_refused(port):
    with pytest.raises(SettingsError, match="port"):
        EmbeddedBroker(port=port)


def test_url_and_subscribe_hint():
    broker = EmbeddedBroker(port=18830)
    assert broker.url == "mqtt://127.0.0.1:18830"
    assert broker.subscribe_hint("demo") == "mosquitto_sub -h 127.0.0.1 -p 18830 -t 'demo/#' -v"
    assert broker.subscribe_hint("") == "mosquitto_sub -h 127.0.0.1 -p 18830 -t '#' -v"
    assert EmbeddedBroker("localhost").url == "mqtt://127.0.0.1:1883"
    assert EmbeddedBroker("::1", 1884).url == "mqtt://[::1]:1884"


def test_importing_triolette_does_not_import_the_broker_library():
    code = (
        "import sys, triolette, triolette.runtime.embedded; "
        "assert 'amqtt' not in sys.modules and 'trio_asyncio' not in sys.modules, "
        "sorted(m for m in sys.modules if m.startswith(('amqtt', 'trio_asyncio')))"
    )
    subprocess.run([sys.executable, "-c", code], check=True, timeout=30)


# -- logging ---------------------------------------------------------------------------------------


@pytest.fixture
def library_loggers():
    names = ("amqtt", "transitions", "triolette")
    saved = {name: logging.getLogger(name).level for name in names}
    for name in names:
        logging.getLogger(name).setLevel(logging.NOTSET)
    yield
    for name, level in saved.items():
        logging.getLogger(name).setLevel(level)


@needs_amqtt
@pytest.mark.usefixtures("library_loggers")
async def test_the_library_logs_warnings_only_unless_triolette_logs_debug():
    logging.getLogger("triolette").setLevel(logging.INFO)
    async with running_broker():
        assert logging.getLogger("amqtt").level == logging.WARNING
        assert logging.getLogger("transitions").level == logging.WARNING
    assert logging.getLogger("amqtt").level == logging.NOTSET

    logging.getLogger("triolette").setLevel(logging.DEBUG)
    async with running_broker():
        assert logging.getLogger("amqtt").level == logging.NOTSET


# -- with the App ----------------------------------------------------------------------------------


@needs_amqtt
async def test_an_app_publishes_through_the_embedded_broker_in_the_same_loop():
    async with (
        running_broker() as broker,
        observing(broker, ("demo/#",)) as live,
        trio.open_nursery() as nursery,
    ):
        app = triolette.App(
            "demo",
            transport=triolette.PahoTransport(HOST, broker.port, keepalive=5),
            heartbeat_every=None,
            log_statistics_every=None,
        )

        @app.telemetry("lamp", interval=0.05)
        async def lamp() -> dict[str, object]:
            return {"on": True}

        await nursery.start(app.serve)
        await live.until(lambda ms: any(m.topic == "demo/lamp/state" for m in ms), timeout=5)
        async with observing(broker, ("demo/#",)) as later:
            retained = await later.until(
                lambda ms: {"demo/status", "demo/lamp/state"} <= {m.topic for m in ms if m.retain},
                timeout=5,
            )
        app.shutdown()
        await live.until(
            lambda ms: any(m.topic == "demo/status" and m.payload == b"offline" for m in ms),
            timeout=5,
        )
    state = next(m for m in retained if m.topic == "demo/lamp/state")
    assert later.payloads("demo/lamp/state")[0] == {"on": True}
    assert state.qos == 1


@needs_amqtt
async def test_an_app_with_an_embedded_broker_serves_through_it_and_stops_it_last():
    broker = EmbeddedBroker(port=0)
    app = triolette.App("demo", embedded_broker=broker, heartbeat_every=None)

    @app.telemetry("meter", interval=0.05)
    async def meter() -> dict[str, object]:
        return {"impulses": 1}

    async with trio.open_nursery() as nursery:
        await nursery.start(app.serve)
        assert broker.running
        async with observing(broker, ("demo/#",)) as observer:
            await observer.until(lambda ms: any(m.topic == "demo/meter/state" for m in ms))
            app.shutdown()
            await observer.until(
                lambda ms: ("demo/status", b"offline") in [(m.topic, m.payload) for m in ms]
            )
    # The goodbye went out through the broker before it stopped, and then the port closed.
    assert not broker.running
    assert await connect_refused(broker.port)


@needs_amqtt
async def test_an_embedded_broker_that_cannot_start_fails_at_once_not_after_the_deadline(
    autojump_clock: trio.abc.Clock,
) -> None:
    taken = socket.socket()
    taken.bind(("127.0.0.1", 0))
    taken.listen()
    try:
        port = taken.getsockname()[1]
        app = triolette.App(
            "app",
            store=MemoryStore(),
            shutdown_timeout=30.0,
            embedded_broker=EmbeddedBroker(port=port),
        )

        @app.telemetry("meter", interval=1)
        async def meter() -> dict[str, int]:
            return {"x": 1}

        started = trio.current_time()
        with pytest.raises(OSError, match="cannot listen"):
            await app.serve()
        assert trio.current_time() - started < 5.0  # not the 30 s shutdown deadline
    finally:
        taken.close()
