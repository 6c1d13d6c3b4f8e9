"""The broker link against a real mosquitto: reconnect pacing, retained commands, TLS mismatch.

Each test has its own broker. Outages are real (the broker is killed and started again on the
same port); the reconnect test measures, on real time, how long after the broker's return the
bridge is connected again.
"""

from __future__ import annotations

import logging
import shutil
import ssl
import subprocess
import sys
import tempfile
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
import trio

from triolette import App, ConnectError, MemoryStore, PahoTransport
from triolette.core.messages import Message
from triolette.testing.mosquitto import Mosquitto, free_port
from triolette.testing.observer import publish_once

BRIDGE = Path(__file__).with_name("link_bridge_process.py")
OUTAGE = 2.0
"""Seconds each outage lasts: long enough for a growing backoff to fall behind."""
BACK_WITHIN = 1.5


def unique(name: str) -> str:
    return f"{name}-{uuid.uuid4().hex[:8]}"


class AttemptsTransport(PahoTransport):
    """A PahoTransport that wakes ``attempted`` waiters at each connection attempt."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.attempted = trio.Event()

    async def connect(self, will: Message, on_message: Callable[[Message], None]) -> bool:
        self.attempted.set()
        self.attempted = trio.Event()
        return await super().connect(will, on_message)


def make_app(
    broker: Mosquitto, port: int | None = None, tls: ssl.SSLContext | None = None, **options: Any
) -> App:
    """An App on the default reconnect pacing, to ``broker`` (or another of its ports)."""
    transport = AttemptsTransport(
        broker.host, port or broker.port, client_id=unique("bridge"), connect_timeout=1.0, tls=tls
    )
    options.setdefault("log_statistics_every", None)
    app = App(unique("bridge"), transport=transport, store=MemoryStore(), **options)

    @app.telemetry("meter", interval=0.1)  # an app without devices has nothing to serve
    async def meter() -> dict[str, object]:
        return {"ok": True}

    return app


# -- finding: reconnects come back within a second, however many outages came before ---------


@pytest.mark.slow
async def test_after_each_of_three_outages_the_bridge_is_back_within_a_second(
    mosquitto: Mosquitto,
) -> None:
    app = make_app(mosquitto)
    transport = app.transport
    assert isinstance(transport, AttemptsTransport)
    back_after: list[float] = []
    async with trio.open_nursery() as nursery:
        await nursery.start(app.serve)
        await app.wait_until_connected()
        for _ in range(3):
            attempted = transport.attempted
            mosquitto.kill()
            with trio.fail_after(5):
                await attempted.wait()  # the bridge saw the loss and retries
            await trio.sleep(OUTAGE)  # the outage itself, not a synchronisation
            await trio.to_thread.run_sync(mosquitto.restart)
            returned = trio.current_time()
            with trio.fail_after(10):
                await app.wait_until_connected()
            back_after.append(trio.current_time() - returned)
        app.shutdown()
    print(f"connected again after the broker's return: {[round(s, 3) for s in back_after]} s")
    assert max(back_after) <= BACK_WITHIN, back_after


# -- finding: a retained command is not executed again on every start -------------------------


async def test_a_retained_command_is_ignored_unless_its_device_opts_in(
    mosquitto: Mosquitto, caplog: pytest.LogCaptureFixture
) -> None:
    app = make_app(mosquitto, retained_commands=["gate"])
    p = app.topics.prefix
    seen: list[tuple[str, str]] = []
    done = trio.Event()

    @app.command("valve")
    async def valve(payload: str, topic: str) -> None:
        seen.append((topic, payload))
        if payload == "live":
            done.set()

    @app.command("gate")
    async def gate(payload: str, topic: str) -> None:
        seen.append((topic, payload))

    for device in ("valve", "gate"):
        publish_once(mosquitto.host, mosquitto.port, f"{p}/{device}/set", "kept", retain=True)
    caplog.set_level(logging.WARNING, "triolette.mqtt")
    async with trio.open_nursery() as nursery:
        await nursery.start(app.serve)
        await app.wait_until_connected()
        # Retained messages come right after the SUBACK, so before this one.
        args = (mosquitto.host, mosquitto.port, f"{p}/valve/set", "live")
        await trio.to_thread.run_sync(publish_once, *args)
        with trio.fail_after(5):
            await done.wait()
        app.shutdown()
    assert (f"{p}/valve/set", "kept") not in seen
    assert (f"{p}/gate/set", "kept") in seen
    assert (f"{p}/valve/set", "live") in seen
    lines = [r.getMessage() for r in caplog.records if "retained command" in r.getMessage()]
    assert len(lines) == 1, lines
    assert f"{p}/valve/set" in lines[0]
    assert "retained_commands=['valve']" in lines[0]


# -- finding: TLS to a plain port, or plain to a TLS port ------------------------------------


def test_tls_to_a_plain_port_stops_the_bridge_with_status_3_and_one_line(
    mosquitto: Mosquitto,
) -> None:
    command = [sys.executable, str(BRIDGE), mosquitto.host, str(mosquitto.port), "tls1", "tls"]
    result = subprocess.run(command, capture_output=True, text=True, timeout=30, check=False)
    assert result.returncode == 3, result.stderr
    lines = [line for line in result.stderr.splitlines() if "did not answer TLS" in line]
    assert len(lines) == 1, result.stderr
    assert f"{mosquitto.host}:{mosquitto.port}" in lines[0]
    assert "plain MQTT port" in lines[0]


def trusting_tls() -> ssl.SSLContext:
    """A client TLS context that takes any certificate (the tests' are self-signed)."""
    tls = ssl.create_default_context()
    tls.check_hostname = False
    tls.verify_mode = ssl.CERT_NONE
    return tls


async def test_once_started_a_tls_mismatch_is_retried_and_named_in_one_warning(
    caplog: pytest.LogCaptureFixture,
) -> None:
    """The broker is away at start; it comes back speaking plain MQTT to a TLS client."""
    broker = Mosquitto(port=free_port())
    app = make_app(broker, broker.port, tls=trusting_tls())
    transport = app.transport
    assert isinstance(transport, AttemptsTransport)
    caplog.set_level(logging.WARNING, "triolette.mqtt")
    try:
        async with trio.open_nursery() as nursery:
            await nursery.start(app.serve)  # the first attempt was refused: an outage
            await trio.to_thread.run_sync(broker.start)
            for _ in range(5):  # retries against the plain broker
                with trio.fail_after(10):
                    await transport.attempted.wait()
            app.shutdown()
    finally:
        broker.close()
    messages = [r.getMessage() for r in caplog.records]
    # The retries name the cause once; the stop's own last attempt may name it again.
    hints = [m for m in messages if "did not answer TLS" in m and not m.startswith("stopping:")]
    assert len(hints) == 1, hints
    assert "is it a plain MQTT port?" in hints[0]


@pytest.fixture
def tls_broker() -> Iterator[tuple[Mosquitto, int]]:
    """A mosquitto with its plain listener and a TLS one (a self-signed certificate)."""
    openssl = shutil.which("openssl")
    if openssl is None:
        pytest.skip("no openssl binary here to make a certificate")
    folder = Path(tempfile.mkdtemp(prefix="triolette-tls-"))
    folder.chmod(0o755)  # mosquitto, started as root, reads them as its own user
    key, cert = folder / "key.pem", folder / "cert.pem"
    request = ["req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "1"]
    subprocess.run(
        [openssl, *request, "-keyout", str(key), "-out", str(cert), "-subj", "/CN=127.0.0.1"],
        capture_output=True,
        check=True,
    )
    key.chmod(0o644)
    cert.chmod(0o644)
    tls_port = free_port()
    config = [f"listener {tls_port} 127.0.0.1", f"certfile {cert}", f"keyfile {key}"]
    try:
        with Mosquitto(config=config) as broker:
            yield broker, tls_port
    finally:
        shutil.rmtree(folder, ignore_errors=True)


async def test_plain_to_a_tls_port_is_a_permanent_error_at_start(
    tls_broker: tuple[Mosquitto, int],
) -> None:
    broker, tls_port = tls_broker
    app = make_app(broker, tls_port)
    with pytest.raises(ConnectError) as caught, trio.fail_after(10):
        await app.serve()
    error = caught.value
    assert error.permanent
    assert f"127.0.0.1:{tls_port}" in str(error)
    assert "is it a TLS port?" in str(error)

    # The same port does speak TLS: a TLS client is served there.
    client = PahoTransport(broker.host, tls_port, tls=trusting_tls(), connect_timeout=2.0)
    await client.connect(Message("x/status", "offline", retain=True), lambda message: None)
    await client.disconnect()


@pytest.mark.parametrize("tls", [False, True], ids=["plain", "tls"])
async def test_bursts_both_ways_are_confirmed_and_arrive_whole(
    tls_broker: tuple[Mosquitto, int], tls: bool
) -> None:
    """The transport's own PUBLISH/PUBACK path, in plain TCP and in TLS records: payloads
    that take many reads; acknowledgements many to a read; 200 small QoS 0 messages coming
    back at once (more packets in one read than a wake-up handles); then, with nothing more
    to send, 100 QoS 1 messages from another client, each of which the transport must
    acknowledge for the broker to go on (it keeps at most 20 unacknowledged)."""
    broker, tls_port = tls_broker
    context = None
    if tls:
        context = ssl.create_default_context()
        context.check_hostname = False  # the records are the point here, not the certificate
        context.verify_mode = ssl.CERT_NONE
    port = tls_port if tls else broker.port
    transport = PahoTransport(broker.host, port, tls=context)
    other = PahoTransport(broker.host, port, tls=context)
    sizes = [1, 100, 70_000, 5, 300_000, 0, 20, *([64] * 200)]
    echoed = {f"burst/echo/{n}": bytes([n % 251]) * size for n, size in enumerate(sizes)}
    inbound = {f"burst/in/{n}": f"command {n}".encode() for n in range(100)}
    received: dict[str, bytes] = {}
    confirmed: list[object] = []
    echoes_back, inbound_in = trio.Event(), trio.Event()

    def on_message(message: Message) -> None:
        received[message.topic] = message.payload
        if echoed.keys() <= received.keys():
            echoes_back.set()
        if inbound.keys() <= received.keys():
            inbound_in.set()

    async with trio.open_nursery() as nursery:
        for client, deliver in ((transport, on_message), (other, _ignore)):
            await client.connect(Message("burst/will", b""), deliver)
            nursery.start_soon(client.serve)
        await transport.subscribe(["burst/#"])
        for n, (topic, payload) in enumerate(echoed.items()):
            qos = 1 if n < 7 else 0
            await transport.publish(Message(topic, payload, qos=qos), confirmed.append)
        with trio.fail_after(10):
            await echoes_back.wait()
        assert confirmed == [None] * len(echoed)
        for topic, payload in inbound.items():
            await other.publish(Message(topic, payload, qos=1), confirmed.append)
        with trio.fail_after(10):
            await inbound_in.wait()
        assert received == echoed | inbound
        for client in (transport, other):
            await client.disconnect()
        nursery.cancel_scope.cancel()


def _ignore(message: Message) -> None:
    pass
