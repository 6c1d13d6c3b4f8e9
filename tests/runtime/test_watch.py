"""``triolette watch`` prints what a broker carries, retained messages marked."""

from __future__ import annotations

import io
import signal
import subprocess
import sys
import threading

from triolette.runtime.watch import Watch
from triolette.testing import Mosquitto
from triolette.testing.observer import publish_once


def _publish(broker: Mosquitto, topic: str, payload: str, *, retain: bool) -> None:
    publish_once(broker.host, broker.port, topic, payload, retain=retain)


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


def test_watch_prints_retained_and_live_messages_on_its_topics(mosquitto: Mosquitto):
    _publish(mosquitto, "demo/meter/state", '{"n":1}', retain=True)
    out = _Lines()
    with Watch(mosquitto.host, mosquitto.port, ["demo/#"], out=out):
        assert out.wait_for(1) == ['demo/meter/state {"n":1} (retained)']
        _publish(mosquitto, "other/topic", "ignored", retain=False)
        _publish(mosquitto, "demo/meter/state", '{"n":2}', retain=False)
        lines = out.wait_for(2)
    assert lines == ['demo/meter/state {"n":1} (retained)', 'demo/meter/state {"n":2}']


def test_the_watch_command_runs_until_interrupted(mosquitto: Mosquitto):
    _publish(mosquitto, "demo/status", "online", retain=True)
    command = [sys.executable, "-m", "triolette", "watch", "--port", str(mosquitto.port), "demo/#"]
    with subprocess.Popen(
        command, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True
    ) as process:
        try:
            assert process.stdout is not None
            assert process.stdout.readline().startswith("watching demo/#")
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
