"""The throwaway mosquitto broker and its pytest fixture: a real broker, crashed, hung, restarted.

Raw MQTT 3.1.1 packets over plain sockets show exactly what the broker answers, and when.
"""

from __future__ import annotations

import os
import queue
import socket

import paho.mqtt.client as mqtt
import pytest
from paho.mqtt.enums import CallbackAPIVersion
from paho.mqtt.reasoncodes import ReasonCode

from triolette.testing import mosquitto as mosquitto_module
from triolette.testing.mosquitto import Mosquitto, MosquittoNotFound, free_port
from triolette.testing.plugin import REQUIRE_SERVICES, start_mosquitto

pytest_plugins = ["pytester"]

CONNACK_ACCEPTED = b"\x20\x02\x00\x00"
PINGREQ = b"\xc0\x00"
PINGRESP = b"\xd0\x00"


def connect_packet(client_id: str, keepalive: int = 60) -> bytes:
    """An MQTT 3.1.1 CONNECT with a clean session and no credentials."""
    identifier = client_id.encode()
    body = (
        b"\x00\x04MQTT\x04\x02"
        + keepalive.to_bytes(2, "big")
        + len(identifier).to_bytes(2, "big")
        + identifier
    )
    assert len(body) < 128  # one-byte remaining length
    return bytes([0x10, len(body)]) + body


def receive(sock: socket.socket, size: int, timeout: float = 5.0) -> bytes:
    """Exactly ``size`` bytes; raises TimeoutError when they do not all come within ``timeout``."""
    sock.settimeout(timeout)
    data = b""
    while len(data) < size:
        chunk = sock.recv(size - len(data))
        if not chunk:
            raise ConnectionError(f"closed by the broker after {data!r}")
        data += chunk
    return data


def silent_for(sock: socket.socket, seconds: float) -> bool:
    """Whether nothing at all arrives on ``sock`` for ``seconds`` (a bounded negative check)."""
    sock.settimeout(seconds)
    try:
        return sock.recv(1) == b"missing"
    except TimeoutError:
        return True


def paho_connack(broker: Mosquitto) -> ReasonCode:
    """The CONNACK reason a paho 2.x client gets from ``broker``."""
    connacks: queue.Queue[ReasonCode] = queue.Queue()
    client = mqtt.Client(CallbackAPIVersion.VERSION2, protocol=mqtt.MQTTv311)
    client.on_connect = lambda _client, _userdata, _flags, reason, _props: connacks.put(reason)
    client.connect(broker.host, broker.port, keepalive=5)
    client.loop_start()
    try:
        return connacks.get(timeout=5)
    finally:
        client.disconnect()
        client.loop_stop()


def test_the_broker_accepts_a_paho_client_on_its_port(mosquitto):
    assert mosquitto.host == "127.0.0.1"
    assert mosquitto.running
    assert not paho_connack(mosquitto).is_failure
    assert f"port {mosquitto.port}" in mosquitto.log_text()


def test_two_brokers_run_side_by_side_on_different_ports(mosquitto):
    with Mosquitto() as other:
        assert other.port != mosquitto.port
        assert other.pid != mosquitto.pid
        assert not paho_connack(other).is_failure
        assert not paho_connack(mosquitto).is_failure


def test_kill_refuses_connections_and_restart_brings_it_back_on_the_same_port(mosquitto):
    port, pid = mosquitto.port, mosquitto.pid
    mosquitto.kill()
    assert not mosquitto.running
    with pytest.raises(ConnectionRefusedError):
        socket.create_connection((mosquitto.host, port), timeout=5).close()

    mosquitto.restart()

    assert (mosquitto.port, mosquitto.running) == (port, True)
    assert mosquitto.pid != pid
    assert not paho_connack(mosquitto).is_failure
    # The log spans both processes, including everything the killed one wrote.
    assert mosquitto.log_text().count(" running") == 2


def test_a_paused_broker_answers_nothing_until_it_resumes(mosquitto):
    address = (mosquitto.host, mosquitto.port)
    with socket.create_connection(address, timeout=5) as session:
        session.sendall(connect_packet("session"))
        assert receive(session, 4) == CONNACK_ACCEPTED

        mosquitto.pause()
        session.sendall(PINGREQ)
        # The kernel still accepts the TCP connection; the broker never reads the CONNECT.
        with socket.create_connection(address, timeout=5) as late:
            late.sendall(connect_packet("late"))
            assert silent_for(session, 0.3)
            assert silent_for(late, 0.05)
            assert mosquitto.paused

            mosquitto.resume()

            assert receive(session, 2) == PINGRESP
            assert receive(late, 4) == CONNACK_ACCEPTED
            assert not mosquitto.paused


def test_close_stops_even_a_paused_broker_gracefully_and_leaves_nothing_behind():
    broker = Mosquitto().start()
    pid, directory = broker.pid, broker.log_path.parent
    assert pid is not None
    broker.pause()

    broker.close()

    with pytest.raises(ProcessLookupError):
        os.kill(pid, 0)
    assert not directory.exists()
    assert not broker.running
    # Resumed before SIGTERM, so it shut down by itself instead of being SIGKILLed after 3 s.
    assert "terminating" in broker.log_text()
    broker.close()  # a second close is harmless
    with pytest.raises(RuntimeError, match="closed"):
        broker.restart()


def test_a_broker_retries_on_another_port_when_its_port_is_taken(monkeypatch):
    with socket.socket() as squatter:
        squatter.bind(("127.0.0.1", 0))
        squatter.listen()
        taken = squatter.getsockname()[1]
        ports = iter([taken, free_port()])
        monkeypatch.setattr(mosquitto_module, "free_port", lambda host: next(ports))
        with Mosquitto() as broker:
            assert broker.port != taken
            assert not paho_connack(broker).is_failure
            assert "Address already in use" in broker.log_text()


def test_a_missing_binary_is_reported_clearly(monkeypatch, tmp_path):
    monkeypatch.setenv("PATH", str(tmp_path))
    monkeypatch.setattr(mosquitto_module, "SBIN_DIRS", (str(tmp_path),))
    with pytest.raises(MosquittoNotFound, match="no mosquitto binary on PATH"):
        Mosquitto()
    with pytest.raises(MosquittoNotFound, match="not an executable"):
        Mosquitto(binary=tmp_path / "mosquitto")
    assert issubclass(MosquittoNotFound, RuntimeError)


def test_the_fixture_skips_without_the_binary_unless_services_are_required(monkeypatch, tmp_path):
    monkeypatch.setenv("PATH", str(tmp_path))
    monkeypatch.setattr(mosquitto_module, "SBIN_DIRS", ())
    monkeypatch.delenv(REQUIRE_SERVICES, raising=False)
    with pytest.raises(pytest.skip.Exception, match="mosquitto is not installed"):
        start_mosquitto()

    monkeypatch.setenv(REQUIRE_SERVICES, "1")
    with pytest.raises(pytest.fail.Exception, match=f"mosquitto is required \\({REQUIRE_SERVICES}"):
        start_mosquitto()


def test_a_failing_test_reports_the_broker_log(pytester):
    pytester.makepyfile(
        """
        def test_passes(mosquitto):
            assert mosquitto.running

        def test_fails(mosquitto):
            assert mosquitto.port == -1
        """
    )
    result = pytester.runpytest("-p", "no:cacheprovider")
    result.assert_outcomes(passed=1, failed=1)
    result.stdout.fnmatch_lines(
        ["*_ test_fails _*", "*- mosquitto log (127.0.0.1:*) -*", "*mosquitto version * running"]
    )
    assert result.stdout.str().count("mosquitto log (") == 1
