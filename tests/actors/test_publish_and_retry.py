"""Telemetry with publish strategies, retries within a cycle, and a circuit breaker."""

from __future__ import annotations

import itertools
import json
from typing import Any

import attrs
import pytest
import trio

from tests.helpers import recording_harness
from triolette import (
    App,
    CircuitBreaker,
    DeviceStore,
    Every,
    FixedBackoff,
    HandlerTimeoutError,
    OnChange,
    RegistrationError,
    SaveOnPublish,
)
from triolette.runtime.health import heartbeat_body
from triolette.testing import AppHarness

# -- publish strategies --------------------------------------------------------------------------


async def test_on_change_publishes_the_first_reading_and_then_only_changes(autojump_clock):
    harness = AppHarness.create()
    readings = iter([20.0, 20.3, 20.6, 20.6, 21.0])

    @harness.app.telemetry("sensor", interval=10, publish=OnChange(threshold=0.5))
    async def sensor() -> dict[str, float]:
        return {"t": next(readings)}

    await harness.run(cycles=5)
    assert harness.states("sensor") == [{"t": 20.0}, {"t": 20.6}]
    assert harness.app.statistics().cycles == {"sensor": 5}, "suppressed cycles still count"
    assert harness.errors("sensor") == []


async def test_composed_strategies_publish_on_a_change_or_every_third_reading(autojump_clock):
    harness = AppHarness.create()

    @harness.app.telemetry("sensor", interval=10, publish=OnChange() | Every(n=3))
    async def sensor() -> dict[str, float]:
        return {"t": 1.0 if trio.current_time() < 45 else 2.0}

    await harness.run(cycles=9)  # cycles at 0, 10, ..., 80; the reading changes at 50
    # 0: the first. 30: the third reading since. 50: a change. 80: the third since.
    published = harness.states("sensor")
    assert published == [{"t": 1.0}, {"t": 1.0}, {"t": 2.0}, {"t": 2.0}]


async def test_save_on_publish_skips_the_save_of_a_suppressed_cycle(autojump_clock):
    harness, backend = recording_harness()
    values = iter([1, 1, 2, 2])

    @harness.app.telemetry("meter", interval=10, publish=OnChange(), persist=SaveOnPublish())
    async def meter(store: DeviceStore) -> dict[str, int]:
        store["cycles"] = store.get("cycles", 0) + 1
        return {"v": next(values)}

    await harness.run(cycles=4)
    assert harness.states("meter") == [{"v": 1}, {"v": 2}]
    assert [w.states["meter"]["cycles"] for w in backend.in_loop("meter")] == [1, 3]


def test_a_strategy_class_or_a_bad_threshold_is_refused() -> None:
    app = App("bridge")
    with pytest.raises(RegistrationError, match=r"^sensor: publish=.*OnChange'>"):
        app.telemetry("sensor", interval=1, publish=OnChange)  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="must not be negative"):
        OnChange(threshold=-1)


# -- retries ---------------------------------------------------------------------------------------


async def test_a_cycle_retries_with_backoff_and_publishes_the_good_reading(autojump_clock):
    harness = AppHarness.create()
    attempts: list[float] = []

    @harness.app.telemetry("sensor", interval=60, retry=3, backoff=FixedBackoff(5))
    async def sensor() -> dict[str, int]:
        attempts.append(trio.current_time())
        if len(attempts) < 3:
            raise OSError("bus busy")
        return {"ok": len(attempts)}

    await harness.run(cycles=1)
    assert harness.states("sensor") == [{"ok": 3}]
    assert harness.errors("sensor") == [], "a retried failure is not an error"
    gaps = [b - a for a, b in itertools.pairwise(attempts)]
    assert all(4 <= gap <= 6 for gap in gaps), gaps


async def test_retries_exhausted_or_an_error_outside_retry_on_fail_the_cycle(autojump_clock):
    harness = AppHarness.create()
    calls = {"flaky": 0, "broken": 0}

    @harness.app.telemetry("flaky", interval=60, retry=2, backoff=FixedBackoff(1))
    async def flaky() -> None:
        calls["flaky"] += 1
        raise OSError("no answer")

    @harness.app.telemetry("broken", interval=60, retry=2, backoff=FixedBackoff(1))
    async def broken() -> None:
        calls["broken"] += 1
        raise KeyError("bad register")

    await harness.run(cycles=1)
    assert calls == {"flaky": 3, "broken": 1}
    assert [e["type"] for e in harness.errors("flaky")] == ["OSError"]
    assert [e["type"] for e in harness.errors("broken")] == ["KeyError"]


class Recorded:
    """A user backoff that records the attempt numbers it is asked for."""

    def __init__(self) -> None:
        self.attempts: list[int] = []

    def delay(self, attempt: int) -> float:
        self.attempts.append(attempt)
        return 1.0


async def test_the_attempt_number_grows_across_failing_cycles_and_resets_on_success(
    autojump_clock,
):
    harness = AppHarness.create()
    backoff = Recorded()
    outcomes = iter(["fail", "fail", "fail", "fail", "fail", "ok", "fail", "ok"])

    @harness.app.telemetry("sensor", interval=60, retry=1, backoff=backoff)
    async def sensor() -> dict[str, bool]:
        if next(outcomes) == "fail":
            raise OSError("flaky")
        return {"ok": True}

    await harness.run(cycles=4)
    # Cycle 1: fail (1), fail. Cycle 2: fail (3), fail. Cycle 3: fail (5), ok. Cycle 4: fail (1).
    assert backoff.attempts == [1, 3, 5, 1]


async def test_a_timeout_is_per_attempt_and_a_timed_out_attempt_is_retried(autojump_clock):
    harness = AppHarness.create()
    attempts = []

    @harness.app.telemetry("sensor", interval=60, timeout=2, retry=1, backoff=FixedBackoff(1))
    async def sensor() -> dict[str, int]:
        attempts.append(trio.current_time())
        if len(attempts) == 1:
            await trio.sleep(100)  # hung: cancelled by the watchdog at 2 s
        return {"attempts": len(attempts)}

    await harness.run(cycles=1)
    assert harness.states("sensor") == [{"attempts": 2}]
    assert 2.8 <= attempts[1] - attempts[0] <= 3.2  # the timeout, then about 1 s of backoff
    assert issubclass(HandlerTimeoutError, OSError)


async def test_a_shutdown_during_the_backoff_still_flushes_the_cycle_s_changes(autojump_clock):
    harness, backend = recording_harness()

    @harness.app.telemetry("meter", interval=60, retry=5, backoff=FixedBackoff(1000))
    async def meter(store: DeviceStore) -> None:
        store["tries"] = store.get("tries", 0) + 1
        raise OSError("meter asleep")

    await harness.run(duration=10)  # the shutdown comes in the first backoff sleep
    assert harness.app.statistics().cycles == {"meter": 0}
    assert backend.load("meter") == {"tries": 1}
    assert [w.shutdown for w in backend.writes if "meter" in w.states] == [True]


async def test_commands_retry_too(autojump_clock):
    harness = AppHarness.create()
    calls = []

    @harness.app.command("relay", retry=1, backoff=FixedBackoff(0.5))
    async def relay(payload: str) -> dict[str, str]:
        calls.append(payload)
        if len(calls) == 1:
            raise ConnectionResetError("relay bus")
        return {"state": payload}

    async with harness.serving():
        await harness.command("relay", "ON")
        await trio.sleep(1)
    assert calls == ["ON", "ON"]
    assert harness.state("relay") == {"state": "ON"}


@pytest.mark.parametrize(
    ("options", "match"),
    [
        ({"retry": -1}, "retry must not be negative"),
        ({"retry": 2, "retry_on": ()}, "retries nothing"),
        ({"retry": 2, "retry_on": (OSError, "x")}, "exception classes"),
        ({"retry": 2, "backoff": 5}, "no delay"),
        ({"backoff": FixedBackoff(1)}, "only with retry"),
        ({"circuit_breaker": 5}, "not a CircuitBreaker"),
    ],
)
def test_retry_and_breaker_options_are_checked_naming_the_device(
    options: dict[str, Any], match: str
) -> None:
    app = App("bridge")
    with pytest.raises(RegistrationError, match=f"^sensor: .*{match}"):
        app.telemetry("sensor", interval=1, **options)


# -- circuit breaker ------------------------------------------------------------------------------


async def test_an_open_circuit_skips_a_cycle_then_probes_and_a_success_closes_it(autojump_clock):
    harness = AppHarness.create()
    outcomes = iter(["fail", "fail", "fail", "ok", "ok"])
    called_at: list[float] = []
    states: list[dict[str, str]] = []

    @harness.app.telemetry("sensor", interval=10, circuit_breaker=CircuitBreaker(threshold=2))
    async def sensor() -> dict[str, bool]:
        called_at.append(trio.current_time())
        states.append(dict(harness.app.statistics().circuits))
        if next(outcomes) == "fail":
            raise OSError("unplugged")
        return {"ok": True}

    await harness.run(cycles=7)
    # 0 fails, 10 fails: open. 20 skipped (half-open). 30 probes, fails: open. 40 skipped.
    # 50 probes, succeeds: closed. 60 runs.
    assert called_at == [0, 10, 30, 50, 60]
    assert [s["sensor"] for s in states] == ["closed", "closed", "half_open", "half_open", "closed"]
    assert harness.app.statistics().circuits == {"sensor": "closed"}


async def test_the_heartbeat_names_devices_whose_circuit_is_not_closed(autojump_clock):
    harness = AppHarness.create()

    @harness.app.telemetry("sensor", interval=10, circuit_breaker=CircuitBreaker(threshold=1))
    async def sensor() -> None:
        raise OSError("unplugged")

    @harness.app.telemetry("fine", interval=10, circuit_breaker=CircuitBreaker())
    async def fine() -> None:
        return None

    await harness.run(cycles=1)
    stats = harness.app.statistics()
    assert stats.circuits == {"sensor": "open", "fine": "closed"}
    body = json.loads(heartbeat_body(stats, "1.0", 5.0, 2))
    assert body["circuit_open"] == ["sensor"]
    all_closed = attrs.evolve(stats, circuits={"sensor": "closed", "fine": "closed"})
    assert "circuit_open" not in json.loads(heartbeat_body(all_closed, "1.0", 5.0, 2))
