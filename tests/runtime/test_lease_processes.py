"""Two bridge processes on one shared store (PostgreSQL, then Redis): one writer at a time.

The second bridge is refused while the first holds the devices' lease; as a standby it takes
over once the first is SIGKILLed, within the documented time, and continues every counter
from the last value the first had made durable. A first bridge that was SIGSTOPped past its
lease cannot write when it wakes: the store fences its writes, it stops and exits 4, and the
store holds only the standby's line of values.
"""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

BRIDGE = Path(__file__).with_name("lease_bridge_process.py")
DEVICES = 3
LEASE = 2.0
TAKEOVER = LEASE + LEASE / 3  # the documented worst case, before loading
WAIT = 30.0  # a bound for things that happen in well under a second, on a loaded machine


class Bridge:
    """A bridge process whose stdout (``DURABLE`` lines) and stderr (logs) are collected."""

    def __init__(self, url: str, *flags: str) -> None:
        env = {**os.environ, "PYTHONUNBUFFERED": "1"}
        self.process = subprocess.Popen(
            [sys.executable, str(BRIDGE), url, str(DEVICES), "--lease-seconds", str(LEASE), *flags],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            env=env,
        )
        self.durable: list[tuple[float, str, int]] = []
        self.log: list[tuple[float, str]] = []
        self._news = threading.Condition()
        self._readers = [
            threading.Thread(target=self._read, args=(self.process.stdout, self._durable)),
            threading.Thread(target=self._read, args=(self.process.stderr, self._logged)),
        ]
        for reader in self._readers:
            reader.start()

    def _read(self, stream: object, take: Callable[[float, str], None]) -> None:
        for line in stream:  # type: ignore[attr-defined]
            with self._news:
                take(time.monotonic(), line.rstrip("\n"))
                self._news.notify_all()
        with self._news:
            self._news.notify_all()

    def _durable(self, when: float, line: str) -> None:
        _, device, count = line.split()
        self.durable.append((when, device, int(count)))

    def _logged(self, when: float, line: str) -> None:
        self.log.append((when, line))

    def wait_for(self, what: str, check: Callable[[], object], timeout: float = WAIT) -> object:
        """Wait (on output, no polling) until ``check()`` is true; fail naming ``what``."""
        deadline = time.monotonic() + timeout
        with self._news:
            while not (found := check()):
                left = deadline - time.monotonic()
                if left <= 0 or (self.process.poll() is not None and not self._reading()):
                    pytest.fail(f"no {what} (exit {self.process.poll()}):\n{self.logs()}")
                self._news.wait(min(left, 1.0))
        return found

    def _reading(self) -> bool:
        return any(reader.is_alive() for reader in self._readers)

    def logged(self, pattern: str) -> float | None:
        """When a log line matching ``pattern`` came, or ``None``."""
        return next((when for when, line in self.log if re.search(pattern, line)), None)

    def last(self) -> dict[str, int]:
        counts: dict[str, int] = {}
        for _, device, count in self.durable:
            counts[device] = max(counts.get(device, 0), count)
        return counts

    def first_after(self, moment: float) -> dict[str, int]:
        counts: dict[str, int] = {}
        for when, device, count in self.durable:
            if when >= moment:
                counts.setdefault(device, count)
        return counts

    def counted(self, cycles: int) -> bool:
        last = self.last()
        return len(last) == DEVICES and min(last.values()) >= cycles

    def finish(self, timeout: float = WAIT) -> int:
        code = self.process.wait(timeout)
        for reader in self._readers:
            reader.join(timeout)
        for stream in (self.process.stdout, self.process.stderr):
            if stream is not None:
                stream.close()
        return code

    def logs(self) -> str:
        return "\n".join(line for _, line in self.log[-40:])

    def kill(self) -> None:
        if self.process.poll() is None:
            self.process.kill()
        self.finish()


@pytest.fixture(params=["postgres", "redis"])
def shared_url(request: pytest.FixtureRequest) -> str:
    return str(request.getfixturevalue(f"{request.param}_url"))


@pytest.fixture
def bridges() -> Iterator[Callable[..., Bridge]]:
    started: list[Bridge] = []

    def start(url: str, *flags: str) -> Bridge:
        started.append(Bridge(url, *flags))
        return started[-1]

    yield start
    for bridge in started:
        bridge.kill()


def _stored_counts(url: str) -> dict[str, object]:
    from triolette.runtime.wiring import store_for_location

    store = store_for_location(url)
    try:
        return {key: state["count"] for key, state in store.load_all().items() if key[0] == "d"}
    finally:
        store.close()


def _check_store_ends_with(url: str, bridge: Bridge) -> None:
    """The store holds ``bridge``'s last acknowledged counts, or one more: a count saved as
    the devices stopped is written by the final flush without being acknowledged."""
    stored, last = _stored_counts(url), bridge.last()
    assert stored.keys() == last.keys()
    for device, count in last.items():
        assert stored[device] in (count, count + 1), (device, stored[device], count)


def test_a_second_bridge_is_refused_with_exit_3_naming_the_holder(shared_url, bridges):
    first = bridges(shared_url)
    first.wait_for("counts from the first bridge", lambda: first.counted(3))
    second = bridges(shared_url)
    assert second.finish() == 3
    refusal = second.logs()
    pid = first.process.pid
    assert re.search(
        rf"held by another bridge: process {pid} on \S+ since \d{{4}}-\d\d-\d\dT", refusal
    )
    assert not second.durable  # it never ran a device
    first.process.send_signal(signal.SIGTERM)
    assert first.finish() == 0
    _check_store_ends_with(shared_url, first)  # the first bridge's, untouched


def test_a_standby_takes_over_a_killed_bridge_in_time_and_loses_nothing_durable(
    shared_url, bridges
):
    first = bridges(shared_url)
    first.wait_for("counts from the first bridge", lambda: first.counted(3))
    standby = bridges(shared_url, "--standby")
    standby.wait_for("the standby waiting", lambda: standby.logged("standby: 'd0' is held by"))
    target = max(first.last().values()) + 5
    first.wait_for("more counts", lambda: first.counted(target))
    os.kill(first.process.pid, signal.SIGKILL)
    killed_at = time.monotonic()
    first.finish()
    acknowledged = first.last()

    held_at = standby.wait_for("the takeover", lambda: standby.logged("holding the lease"))
    assert isinstance(held_at, float)
    assert held_at - killed_at <= TAKEOVER + 1.0, standby.logs()  # + claim and log latency
    standby.wait_for("counts from the standby", lambda: len(standby.first_after(0)) == DEVICES)
    continued = standby.first_after(0)
    for device, count in acknowledged.items():
        # Every count the first bridge saw durable is there: the standby goes on above it.
        assert continued[device] > count, (device, continued[device], count)
    standby.process.send_signal(signal.SIGTERM)
    assert standby.finish() == 0
    _check_store_ends_with(shared_url, standby)


def test_a_frozen_bridge_that_wakes_after_a_takeover_cannot_write_and_exits_4(shared_url, bridges):
    first = bridges(shared_url)
    first.wait_for("counts from the first bridge", lambda: first.counted(3))
    standby = bridges(shared_url, "--standby")
    standby.wait_for("the standby waiting", lambda: standby.logged("standby: 'd0' is held by"))
    os.kill(first.process.pid, signal.SIGSTOP)
    held_at = standby.wait_for("the takeover", lambda: standby.logged("holding the lease"))
    assert isinstance(held_at, float)
    standby.wait_for("standby counts", lambda: len(standby.first_after(0)) == DEVICES)

    woke_at = time.monotonic()
    os.kill(first.process.pid, signal.SIGCONT)
    assert first.finish() == 4, first.logs()
    assert first.logged("lost the lease")
    # The standby's counters run on, unbroken, past the first bridge's exit...
    after = time.monotonic()
    standby.wait_for("standby counts after", lambda: len(standby.first_after(after)) == DEVICES)
    standby.process.send_signal(signal.SIGTERM)
    assert standby.finish() == 0
    acknowledged = first.last()  # by the first bridge, before the freeze or after waking
    line = {device: [c for _, d, c in standby.durable if d == device] for device in acknowledged}
    for device, counts in line.items():
        assert counts == list(range(counts[0], counts[0] + len(counts))), device
        # ...from above every count the first bridge acknowledged: it acknowledged nothing
        # on the standby's line, so no write of it after waking got through.
        assert counts[0] > acknowledged[device], (device, counts[0], acknowledged[device])
    _check_store_ends_with(shared_url, standby)  # only the standby's line of values
    assert woke_at > held_at
