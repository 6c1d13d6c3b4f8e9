"""``triolette watch`` prints what a broker carries, retained messages marked."""

from __future__ import annotations

import contextlib
import io
import os
import queue
import shlex
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import attrs
import pytest

from triolette.runtime.embedded import watch_command
from triolette.runtime.watch import Watch
from triolette.testing import Mosquitto
from triolette.testing.mosquitto import find_mosquitto, free_port
from triolette.testing.observer import publish_once

PASSWORD = "s3cret-Pa55word"


def _publish(broker: Mosquitto, topic: str, payload: str, *, retain: bool) -> None:
    publish_once(broker.host, broker.port, topic, payload, retain=retain)


def _publish_as_bob(broker: _Broker, topic: str, payload: str) -> None:
    import paho.mqtt.publish as publish

    auth: publish.AuthParameter = {"username": "bob", "password": PASSWORD}
    publish.single(topic, payload, retain=True, hostname=broker.host, port=broker.port, auth=auth)


@attrs.frozen
class _Broker:
    host: str
    port: int


@pytest.fixture
def mosquitto_with_users() -> Iterator[_Broker]:
    """A mosquitto that lets in only ``bob`` with :data:`PASSWORD` (the ``mosquitto``
    fixture's broker must let in anyone: its readiness probe logs in anonymously)."""
    tool = shutil.which("mosquitto_passwd")
    if tool is None:
        pytest.skip("needs mosquitto_passwd")
    # Not under pytest's tmp_path: mosquitto started as root reads it as another user.
    with tempfile.TemporaryDirectory() as name:
        folder = Path(name)
        folder.chmod(0o755)
        subprocess.run([tool, "-b", "-c", str(folder / "users"), "bob", PASSWORD], check=True)
        (folder / "users").chmod(0o644)
        broker = _Broker("127.0.0.1", free_port())
        (folder / "mosquitto.conf").write_text(
            f"listener {broker.port} {broker.host}\nallow_anonymous false\n"
            f"password_file {folder / 'users'}\n"
        )
        command = [find_mosquitto(), "-c", str(folder / "mosquitto.conf")]
        with subprocess.Popen(command, stderr=subprocess.DEVNULL) as process:
            try:
                _wait_until_listening(broker, process)
                yield broker
            finally:
                process.terminate()
                process.wait(timeout=10)


def _wait_until_listening(broker: _Broker, process: subprocess.Popen[bytes]) -> None:
    """Poll an external process's port (nothing in this process to wait on)."""
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline and process.poll() is None:
        with contextlib.suppress(OSError), socket.create_connection((broker.host, broker.port)):
            return
        time.sleep(0.02)
    pytest.fail(f"mosquitto did not listen on {broker.port}")


class _Lines(io.StringIO):
    """An output stream a test can wait on, line by line (Watch writes from its thread)."""

    def __init__(self) -> None:
        super().__init__()
        self._changed = threading.Condition()

    def write(self, text: str) -> int:
        with self._changed:
            written = super().write(text)
            self._changed.notify_all()
        return written

    def wait_for(self, count: int, timeout: float = 10) -> list[str]:
        with self._changed:
            self._changed.wait_for(lambda: len(self.getvalue().splitlines()) >= count, timeout)
            return self.getvalue().splitlines()


class _Failures:
    """Counts a ``Watch``'s failures, for a test to wait on (retried every second)."""

    def __init__(self) -> None:
        self.causes: list[str] = []
        self._changed = threading.Condition()

    def options(self) -> dict[str, Any]:
        return {"on_failure": self._add, "retry_delays": (1, 1)}

    def _add(self, cause: str) -> None:
        with self._changed:
            self.causes.append(cause)
            self._changed.notify_all()

    def wait_for(self, count: int, timeout: float = 30) -> bool:
        with self._changed:
            return self._changed.wait_for(lambda: len(self.causes) >= count, timeout)


def test_watch_prints_retained_and_live_messages_on_its_topics(mosquitto: Mosquitto):
    _publish(mosquitto, "demo/meter/state", '{"n":1}', retain=True)
    out = _Lines()
    with Watch(mosquitto.host, mosquitto.port, ["demo/#"], out=out):
        assert out.wait_for(2) == [
            f"(watch: connected to {mosquitto.host}:{mosquitto.port})",
            'demo/meter/state {"n":1} (retained)',
        ]
        _publish(mosquitto, "other/topic", "ignored", retain=False)
        _publish(mosquitto, "demo/meter/state", '{"n":2}', retain=False)
        lines = out.wait_for(3)
    assert lines[1:] == ['demo/meter/state {"n":1} (retained)', 'demo/meter/state {"n":2}']


def test_the_watch_command_runs_until_interrupted(mosquitto: Mosquitto):
    _publish(mosquitto, "demo/status", "online", retain=True)
    command = [sys.executable, "-m", "triolette", "watch", "--port", str(mosquitto.port), "demo/#"]
    with subprocess.Popen(
        command, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True
    ) as process:
        try:
            assert process.stdout is not None
            assert process.stdout.readline().startswith("watching demo/#")
            assert process.stdout.readline().startswith("(watch: connected to ")
            assert process.stdout.readline().strip() == "demo/status online (retained)"
            process.send_signal(signal.SIGINT)
            assert process.wait(timeout=10) == 0
        finally:
            process.kill()


def test_the_watch_command_refuses_a_bad_port():
    result = subprocess.run(
        [sys.executable, "-m", "triolette", "watch", "--port", "70000"],
        capture_output=True,
        text=True,
        timeout=30,
    )
    assert result.returncode == 3
    assert "--port" in result.stderr


def test_a_failing_connection_is_said_once_per_cause_while_it_is_retried():
    port = free_port()  # nothing listens there
    out = _Lines()
    failures = _Failures()
    with Watch("127.0.0.1", port, ["x/#"], out=out, **failures.options()):
        assert failures.wait_for(2)
    assert out.getvalue().splitlines() == [
        f"(watch: cannot connect to 127.0.0.1:{port}: Connection refused; retrying)"
    ]


def test_a_refusal_by_the_broker_is_said_once(mosquitto_with_users: _Broker):
    out = _Lines()
    broker = mosquitto_with_users
    failures = _Failures()
    watch = Watch(
        broker.host, broker.port, out=out, username="bob", password="wrong", **failures.options()
    )
    with watch:
        assert failures.wait_for(2)
    assert out.getvalue().splitlines() == [
        f"(watch: the broker at {broker.host}:{broker.port} refused: Not authorized; retrying)"
    ]


def _watch_command(*args: str, **env: str) -> subprocess.Popen[str]:
    clean = {k: v for k, v in os.environ.items() if not k.startswith("TRIOLETTE_")}
    return subprocess.Popen(
        [sys.executable, "-m", "triolette", "watch", *args],
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
        text=True,
        env={**clean, **env},
    )


def _first_lines(process: subprocess.Popen[str], count: int) -> list[str]:
    """The first ``count`` lines the command prints (failing after 20 s without one)."""
    lines: queue.Queue[str] = queue.Queue()
    assert process.stdout is not None
    output = process.stdout

    def read() -> None:
        for line in output:
            lines.put(line)

    threading.Thread(target=read, daemon=True).start()
    try:
        return [lines.get(timeout=20).rstrip("\n") for _ in range(count)]
    finally:
        process.send_signal(signal.SIGINT)
        process.wait(timeout=10)


def test_the_watch_command_says_when_it_cannot_connect():
    port = free_port()
    with _watch_command("--port", str(port), "x/#") as process:
        lines = _first_lines(process, 2)
    assert lines == [
        f"watching x/# on 127.0.0.1:{port} (Ctrl-C stops)",
        f"(watch: cannot connect to 127.0.0.1:{port}: Connection refused; retrying)",
    ]


def test_the_watch_command_logs_in_like_run(mosquitto_with_users: _Broker, tmp_path):
    broker = mosquitto_with_users
    _publish_as_bob(broker, "demo/status", "online")
    secret = tmp_path / "password"
    secret.write_text(f"{PASSWORD}\n")
    port = str(broker.port)
    with _watch_command(
        "--port", port, "--username", "bob", "demo/#", TRIOLETTE_MQTT_PASSWORD_FILE=str(secret)
    ) as process:
        lines = _first_lines(process, 3)
    assert lines[1:] == [f"(watch: connected to 127.0.0.1:{port})", "demo/status online (retained)"]


def test_the_watch_command_speaks_tls_when_asked(mosquitto: Mosquitto):
    with _watch_command("--port", str(mosquitto.port), "--tls") as process:
        lines = _first_lines(process, 2)
    # The broker speaks plain MQTT on that port: the TLS handshake is what fails.
    assert lines[1].startswith(f"(watch: cannot connect to 127.0.0.1:{mosquitto.port}: ")
    assert lines[1].endswith("; retrying)")


def test_the_watch_command_checks_tls_files_like_run(tmp_path):
    result = subprocess.run(
        [sys.executable, "-m", "triolette", "watch", "--tls-ca-file", str(tmp_path / "nope")],
        capture_output=True,
        text=True,
        timeout=30,
    )
    assert result.returncode == 3
    assert result.stderr.startswith("error: --tls-ca-file: no such file: ")


def test_the_watch_hint_works_as_printed(mosquitto: Mosquitto):
    _publish(mosquitto, "demo/status", "online", retain=True)
    command = watch_command(mosquitto.port, "demo")
    assert command.startswith(f"{shlex.quote(sys.executable)} -m triolette watch ")
    with subprocess.Popen(
        shlex.split(command), stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True
    ) as process:
        lines = _first_lines(process, 3)
    assert lines[0].startswith(f"watching demo/# on 127.0.0.1:{mosquitto.port}")
    assert lines[2] == "demo/status online (retained)"


def test_the_watch_hint_names_a_host_other_than_this_machine():
    assert " --host ::1 --port 1884 " in watch_command(1884, "/a/b/", host="::1")
    assert watch_command(1884, "/a/b/", host="::1").endswith(" 'a/b/#'")
