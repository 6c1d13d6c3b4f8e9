"""A real bridge process stopped by signals and killed at random: its counters on disk."""

from __future__ import annotations

import json
import os
import random
import signal
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

import pytest

BRIDGE = Path(__file__).with_name("bridge_process.py")
DEVICES = 100


def _start(path: Path, interval: float = 0.02, slow: float = 0) -> subprocess.Popen[str]:
    env = {**os.environ, "PYTHONUNBUFFERED": "1", "BRIDGE_SLOW_WRITES": str(slow)}
    return subprocess.Popen(
        [sys.executable, str(BRIDGE), str(path), str(DEVICES), str(interval)],
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
        text=True,
        env=env,
    )


def _read_until(process: subprocess.Popen[str], lines: int, last: dict[str, int]) -> None:
    """Read ``lines`` counter lines (blocking reads of the pipe, no sleeping)."""
    assert process.stdout is not None
    seen = 0
    while seen < lines:
        line = process.stdout.readline()
        assert line, f"the bridge ended early with {process.poll()}"
        name, _, value = line.strip().partition(" ")
        if value:
            last[name] = max(last.get(name, 0), int(value))
            seen += 1


def _drain(process: subprocess.Popen[str], last: dict[str, int]) -> None:
    assert process.stdout is not None
    for line in process.stdout:
        name, _, value = line.strip().partition(" ")
        if value:
            last[name] = max(last.get(name, 0), int(value))


def _reap(process: subprocess.Popen[str]) -> None:
    process.kill()
    process.wait()
    if process.stdout is not None:
        process.stdout.close()


def _on_disk(path: Path) -> dict[str, int]:
    if path.suffix == ".db":
        with sqlite3.connect(path) as db:
            rows = db.execute("SELECT key, data FROM store").fetchall()
        return {key: json.loads(data)["count"] for key, data in rows}
    document = json.loads(path.read_text())
    document.pop("triolette/revisions", None)  # the store's record of revisions
    return {key: state["count"] for key, state in document.items()}


@pytest.mark.parametrize("kind", ["json", "db"])
@pytest.mark.parametrize("stop", [signal.SIGTERM, signal.SIGINT], ids=["SIGTERM", "SIGINT"])
def test_a_signal_stops_the_bridge_with_every_last_count_on_disk(tmp_path, kind, stop):
    path = tmp_path / f"state.{kind}"
    process = _start(path)
    last: dict[str, int] = {}
    try:
        _read_until(process, DEVICES * 5, last)  # every device has cycled a few times
        stopped_at = time.monotonic()
        process.send_signal(stop)
        _drain(process, last)
        assert process.wait(timeout=30) == 0
        took = time.monotonic() - stopped_at
    finally:
        _reap(process)
    assert took < 10  # inside a container's default stop grace period
    assert len(last) == DEVICES
    assert _on_disk(path) == last


@pytest.mark.slow
def test_twenty_sigkills_never_lose_more_than_a_moment_and_the_store_always_loads(tmp_path):
    path = tmp_path / "state.json"
    rng = random.Random(3)
    before: dict[str, int] = {}
    worst_loss = 0
    for _ in range(20):
        process = _start(path)
        last: dict[str, int] = {}
        try:
            _read_until(process, rng.randrange(DEVICES, DEVICES * 6), last)
            process.kill()
            _drain(process, last)
            process.wait()
        finally:
            _reap(process)
        on_disk = _on_disk(path)  # always loads: a torn file would raise here
        for name, produced in last.items():
            assert on_disk.get(name, 0) >= before.get(name, 0), f"{name} went backwards"
            assert on_disk.get(name, 0) <= produced
            worst_loss = max(worst_loss, produced - on_disk.get(name, 0))
        before = on_disk
    # SaveOnChange with group commit: a kill costs at most the batch being written, a few
    # cycles of a 20 ms device, never more.
    print(f"worst loss over 20 SIGKILLs: {worst_loss} cycles")
    assert worst_loss <= 10


def test_a_second_signal_during_a_slow_flush_stops_at_once_and_leaves_a_loadable_file(tmp_path):
    path = tmp_path / "state.json"
    first = _start(path)  # a first run leaves a state file behind
    try:
        _read_until(first, DEVICES * 2, {})
        first.send_signal(signal.SIGTERM)
        _drain(first, {})
        assert first.wait(timeout=30) == 0
    finally:
        _reap(first)
    before = _on_disk(path)

    process = _start(path, interval=0.5, slow=3)
    last: dict[str, int] = {}
    assert process.stdout is not None
    try:
        _read_until(process, DEVICES, last)  # the first cycle of every device
        process.send_signal(signal.SIGTERM)  # graceful: the final flush starts...
        while process.stdout.readline().strip() != "writing":  # ...and its write is slow
            pass
        forced_at = time.monotonic()
        process.send_signal(signal.SIGINT)  # a second signal: stop now
        _drain(process, last)
        code = process.wait(timeout=30)
        took = time.monotonic() - forced_at
    finally:
        _reap(process)
    assert code == 1  # the state was not saved, and the exit status says so
    assert took < 2.5  # did not wait for the 3 s write
    on_disk = _on_disk(path)  # the interrupted write never tears the file
    assert all(before[name] <= on_disk[name] <= last[name] for name in before)


def test_a_device_stuck_in_an_uncancellable_call_cannot_hold_the_exit_past_the_deadline(tmp_path):
    path = tmp_path / "state.json"
    env = {**os.environ, "PYTHONUNBUFFERED": "1", "BRIDGE_STUCK": "1"}
    env["BRIDGE_SHUTDOWN_TIMEOUT"] = "2"
    process = subprocess.Popen(
        [sys.executable, str(BRIDGE), str(path), str(DEVICES), "0.02"],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=env,
    )
    last: dict[str, int] = {}
    try:
        _read_until(process, DEVICES * 3, last)
        stopped_at = time.monotonic()
        process.send_signal(signal.SIGTERM)
        out, log = process.communicate(timeout=15)  # raises if it never exits by itself
        took = time.monotonic() - stopped_at
    finally:
        _reap(process)
        if process.stderr is not None:
            process.stderr.close()
    for line in out.splitlines():
        name, _, value = line.strip().partition(" ")
        if value:
            last[name] = max(last.get(name, 0), int(value))
    assert process.returncode == 1, log
    # The 2 s deadline, then a 1 s grace before giving up on the stuck device (plus start-up
    # noise): well inside a container's 10 s, where it would otherwise wait for SIGKILL.
    assert 2 <= took < 6, log
    assert "stuck did not stop" in log
    assert _on_disk(path) == last  # every device that could stop saved its last count
