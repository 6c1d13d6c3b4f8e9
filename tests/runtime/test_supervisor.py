"""Supervision of ``@app.device`` handlers: restarts with backoff, state flushed before a restart.

Timing tests run under the autojump clock. The tests that hold writes at a gate run on the real
clock: the persistence actor then waits for its worker thread like in production, so
``wait_all_tasks_blocked`` means "everything is waiting" (for the gate, among others).
"""

from __future__ import annotations

import itertools
import random
import threading

import pytest
import trio
import trio.testing

from tests.helpers import recording_harness
from triolette import (
    Backoff,
    DeviceContext,
    DeviceStore,
    MemoryStore,
    RegistrationError,
    RestartLimit,
    RestartLimitError,
    SaveOnChange,
)
from triolette.core.kinds import Restart
from triolette.testing import AppHarness

# -- Backoff ------------------------------------------------------------------------------------


def test_backoff_grows_exponentially_up_to_the_cap():
    backoff = Backoff(initial=1, factor=2, maximum=10, jitter=0)
    rng = random.Random(1)
    assert [backoff.delay(n, rng) for n in range(6)] == [1, 2, 4, 8, 10, 10]


def test_backoff_jitter_stays_within_its_bounds_and_varies():
    backoff = Backoff(initial=4, factor=1, maximum=4, jitter=0.25)
    rng = random.Random(7)
    delays = [backoff.delay(0, rng) for _ in range(200)]
    assert all(3 <= delay <= 5 for delay in delays)
    assert len(set(delays)) > 100


def test_backoff_stays_at_the_cap_however_many_restarts():
    backoff = Backoff()  # the defaults: 0.5 s doubling, capped at 30 s
    rng = random.Random(3)
    for n in (100, 1023, 1024, 1100, 10**6):
        assert backoff.delay(n, rng) <= backoff.maximum * (1 + backoff.jitter), n


# -- restarts -----------------------------------------------------------------------------------


async def test_a_crashed_device_is_restarted_with_backoff(autojump_clock):
    backoff = Backoff(initial=1, factor=2, maximum=4, jitter=0, reset_after=60)
    harness, backend = recording_harness(restart_backoff=backoff)
    starts: list[tuple[float, int]] = []

    @harness.app.device("meter")
    async def meter(store: DeviceStore) -> None:
        store["runs"] = store.get("runs", 0) + 1  # never saved by hand: the crash flushes it
        starts.append((trio.current_time(), store["runs"]))
        if store["runs"] < 5 and len(starts) < 10:  # bounded, should the state be lost
            raise RuntimeError("lost the serial port")

    t0 = trio.current_time()
    await harness.run()
    rng = random.Random()
    expected, at = [0.0], 0.0
    for n in range(4):
        at += backoff.delay(n, rng)
        expected.append(at)
    assert expected == [0, 1, 3, 7, 11]
    assert [t - t0 for t, _ in starts] == pytest.approx(expected)
    assert [runs for _, runs in starts] == [1, 2, 3, 4, 5], "each restart loads the last state"
    assert harness.app.statistics().restarts == {"meter": 4}
    # Every crash wrote the state before the restart that follows it.
    assert backend.values("meter", "runs") == [1, 2, 3, 4, 5]
    for write, (restart_time, _) in zip(backend.writes, starts[1:], strict=False):
        assert write.time < restart_time
    assert backend.load("meter") == {"runs": 5}
    errors = harness.errors("meter")
    assert errors, "the crash is reported"
    assert errors[0]["type"] == "RuntimeError"
    assert errors[0]["message"] == "lost the serial port"


async def test_a_device_that_keeps_crashing_keeps_being_restarted(autojump_clock):
    """About 1030 restarts: with the default backoff, eight and a half hours of a dead sensor."""
    harness = AppHarness.create(
        restart_backoff=Backoff(initial=1, maximum=1, jitter=0),
        restart_limit=RestartLimit(restarts=2000, seconds=3600),  # the limit is not under test
    )
    starts: list[float] = []

    @harness.app.device("meter")
    async def meter() -> None:
        starts.append(trio.current_time())
        if len(starts) <= 1030:
            raise RuntimeError("sensor unplugged")

    t0 = trio.current_time()
    await harness.run()
    assert len(starts) == 1031
    assert starts[-1] - t0 == pytest.approx(1030)
    assert harness.app.statistics().restarts == {"meter": 1030}


async def test_the_backoff_starts_again_after_a_stable_run(autojump_clock):
    backoff = Backoff(initial=1, factor=2, maximum=100, jitter=0, reset_after=60)
    harness = AppHarness.create(restart_backoff=backoff)
    starts: list[float] = []

    @harness.app.device("meter")
    async def meter(ctx: DeviceContext) -> None:
        starts.append(trio.current_time())
        if len(starts) == 3:
            await ctx.sleep(100)  # a stable run, longer than reset_after
        if len(starts) < 5:
            raise RuntimeError("flaky")

    t0 = trio.current_time()
    await harness.run()
    # crash, +1, crash, +2, run 100 s then crash, +1 (reset, not +4), crash, +2
    assert [s - t0 for s in starts] == pytest.approx([0, 1, 3, 104, 106])


async def test_jittered_restarts_stay_within_the_jitter(autojump_clock):
    backoff = Backoff(initial=10, factor=1, maximum=10, jitter=0.5)
    harness = AppHarness.create(restart_backoff=backoff)
    starts: list[float] = []

    @harness.app.device("meter")
    async def meter() -> None:
        starts.append(trio.current_time())
        if len(starts) < 6:
            raise RuntimeError("flaky")

    await harness.run()
    gaps = [b - a for a, b in itertools.pairwise(starts)]
    assert len(gaps) == 5
    assert all(5 <= gap <= 15 for gap in gaps), gaps
    assert len({round(gap, 9) for gap in gaps}) > 1, "jitter spreads the restarts"


async def test_a_handler_that_returns_is_not_restarted(autojump_clock):
    harness, backend = recording_harness()
    runs: list[float] = []

    @harness.app.device("oneshot")
    async def oneshot(ctx: DeviceContext, store: DeviceStore) -> None:
        runs.append(trio.current_time())
        store["done"] = True
        await ctx.sleep(5)

    @harness.app.device("longer")
    async def longer(ctx: DeviceContext) -> None:
        await ctx.sleep(50)

    t0 = trio.current_time()
    await harness.run()  # returns once both handlers returned
    assert runs == [t0]
    assert trio.current_time() - t0 == pytest.approx(50)
    assert harness.app.statistics().restarts == {"oneshot": 0, "longer": 0}
    assert harness.errors("oneshot") == []
    assert backend.load("oneshot") == {"done": True}


async def test_a_device_without_store_is_restarted_too(autojump_clock):
    harness = AppHarness.create(restart_backoff=Backoff(initial=2, jitter=0))
    starts: list[float] = []

    @harness.app.device("blinker")
    async def blinker() -> None:
        starts.append(trio.current_time())
        if len(starts) < 3:
            raise RuntimeError("glitch")

    t0 = trio.current_time()
    await harness.run()
    assert [s - t0 for s in starts] == pytest.approx([0, 2, 6])


async def test_a_crash_of_one_device_leaves_the_others_running(autojump_clock):
    harness = AppHarness.create(restart_backoff=Backoff(initial=1, jitter=0))
    ticks: list[float] = []

    @harness.app.device("bad")
    async def bad() -> None:
        raise RuntimeError("always")

    @harness.app.telemetry("good", interval=10)
    async def good() -> dict[str, object]:
        ticks.append(trio.current_time())
        return {"n": len(ticks)}

    t0 = trio.current_time()
    await harness.run(duration=35)
    assert [t - t0 for t in ticks] == pytest.approx([0, 10, 20, 30])
    assert harness.app.statistics().restarts["bad"] >= 3


# -- the flush before a restart (real clock, gated backend) -------------------------------------


async def test_a_crashed_device_is_restarted_only_after_its_state_is_durable():
    harness, backend = recording_harness(restart_backoff=Backoff(initial=0, jitter=0))
    backend.gate = threading.Event()

    @harness.app.device("meter")
    async def meter(store: DeviceStore) -> None:
        backend.log.append(("start", store.to_dict()))
        if len(backend.log) == 1:
            store["v"] = 1
            raise RuntimeError("crash before any save")

    async with trio.open_nursery() as nursery:
        nursery.start_soon(harness.run)
        assert await trio.to_thread.run_sync(backend.write_started.wait, 10)
        await trio.testing.wait_all_tasks_blocked()
        assert backend.log == [("start", {})], "restarted before the crash snapshot was durable"
        backend.gate.set()
    assert backend.log == [
        ("start", {}),
        ("write", ("meter", {"v": 1})),
        ("start", {"v": 1}),
    ]
    assert harness.app.statistics().restarts == {"meter": 1}


async def test_a_crash_with_writes_pending_never_lets_an_older_snapshot_win():
    harness, backend = recording_harness(restart_backoff=Backoff(initial=0, jitter=0))
    backend.gate = threading.Event()
    seen: list[int] = []
    crashing = trio.Event()

    @harness.app.device("meter")
    async def meter(store: DeviceStore) -> None:
        seen.append(store.get("version", 0))
        if len(seen) > 1:
            store["version"] += 1
            return
        store["version"] = 1
        store.save()
        # Version 1 is now held in the backend; the next saves pile up behind it.
        assert await trio.to_thread.run_sync(backend.write_started.wait, 10)
        for version in range(2, 6):
            store["version"] = version
            store.save()
            await trio.lowlevel.checkpoint()
        store["version"] = 6  # not saved by hand: the crash hands it over
        crashing.set()
        raise RuntimeError("crash with writes pending")

    async with trio.open_nursery() as nursery:
        nursery.start_soon(harness.run)
        await crashing.wait()
        await trio.testing.wait_all_tasks_blocked()
        assert seen == [0], "restarted while its snapshots were not durable"
        backend.gate.set()
    written = backend.values("meter", "version")
    assert written == sorted(written), f"an older snapshot overwrote a newer one: {written}"
    assert written == [1, 6, 7]
    assert seen == [0, 6], "the restarted actor sees the newest snapshot"
    assert backend.load("meter") == {"version": 7}
    persistence = harness.app.statistics().persistence
    assert persistence is not None
    assert persistence.coalesced == 4, "v2 to v6 waited behind v1 and were coalesced"


# -- restart types ------------------------------------------------------------------------------


async def _run_counting(restart: Restart, *, crash: bool) -> list[float]:
    harness = AppHarness.create(
        restart_backoff=Backoff(initial=1, maximum=1, jitter=0), restart_limit=RestartLimit()
    )
    starts: list[float] = []

    @harness.app.device("job", restart=restart)
    async def job() -> None:
        starts.append(trio.current_time())
        if len(starts) == 3:
            harness.trigger_shutdown()
            await trio.sleep_forever()
        if crash:
            raise RuntimeError("boom")

    with trio.fail_after(100):
        await harness.run(duration=50)
    return starts


@pytest.mark.parametrize(
    ("restart", "crash", "runs"),
    [
        ("transient", True, 3),  # restarted after crashes
        ("transient", False, 1),  # a normal return is not a crash
        ("permanent", True, 3),
        ("permanent", False, 3),  # restarted even after a normal return
        ("temporary", True, 1),  # never restarted
        ("temporary", False, 1),
    ],
)
async def test_restart_types(autojump_clock, restart, crash, runs):
    assert len(await _run_counting(restart, crash=crash)) == runs


async def test_a_temporary_device_that_crashed_is_reported_failed(autojump_clock):
    harness = AppHarness.create()

    @harness.app.device("firmware-push", restart="temporary")
    async def push() -> None:
        raise RuntimeError("flash write failed")

    await harness.run()
    assert list(harness.app.statistics().failed) == ["firmware-push"]
    assert harness.app.statistics().restarts == {"firmware-push": 0}


def test_an_unknown_restart_type_is_refused_by_name():
    harness = AppHarness.create()
    with pytest.raises(RegistrationError, match=r"job: restart='always' is not one of"):
        harness.app.device("job", restart="always")  # type: ignore[arg-type]


def test_a_restart_limit_needs_a_positive_window():
    with pytest.raises(ValueError, match="seconds"):
        RestartLimit(restarts=3, seconds=0)
    with pytest.raises(ValueError, match="escalate"):
        RestartLimit(escalate="nothing")  # type: ignore[arg-type]


# -- restart intensity --------------------------------------------------------------------------


def _crash_loop_harness(limit: RestartLimit, store: MemoryStore | None = None) -> AppHarness:
    return AppHarness.create(
        store=store, restart_backoff=Backoff(initial=1, maximum=1, jitter=0), restart_limit=limit
    )


async def test_one_restart_too_many_inside_the_window_stops_the_app_and_names_the_device(
    autojump_clock,
):
    backend = MemoryStore()
    harness = _crash_loop_harness(RestartLimit(restarts=3, seconds=10), backend)
    crashes: list[float] = []
    sibling_cycles: list[float] = []

    @harness.app.device("flaky")
    async def flaky() -> None:
        crashes.append(trio.current_time())
        raise RuntimeError("bus error")

    @harness.app.telemetry("steady", interval=1, persist=None)
    async def steady(store: DeviceStore) -> None:
        store["n"] = store.get("n", 0) + 1
        sibling_cycles.append(trio.current_time())

    t0 = trio.current_time()
    with pytest.raises(RestartLimitError, match=r"flaky: crashed once more after 3 restarts") as e:
        await harness.run(duration=3600)
    assert isinstance(e.value.__cause__, RuntimeError)
    # The first run crashes at once and the 3 allowed restarts crash at 1, 2 and 3 s; the crash
    # at 3 s would need a fourth restart inside 10 s, so the app stops there.
    assert [c - t0 for c in crashes] == pytest.approx([0, 1, 2, 3])
    assert trio.current_time() - t0 == pytest.approx(3)
    # The sibling was stopped gracefully and its state flushed.
    assert backend.load("steady") == {"n": len(sibling_cycles)}
    assert harness.state("flaky") is None
    availability = harness.broker.payloads(harness.app.topics.availability("steady"))
    assert availability[-1] == "offline"


async def test_crashes_spaced_just_outside_the_window_never_escalate(autojump_clock):
    harness = AppHarness.create(
        restart_backoff=Backoff(initial=10.5, maximum=10.5, jitter=0),
        restart_limit=RestartLimit(restarts=1, seconds=10),
    )
    crashes: list[float] = []

    @harness.app.device("flaky")
    async def flaky() -> None:
        crashes.append(trio.current_time())
        raise RuntimeError("bus error")

    await harness.run(duration=200)  # raises if the limit were hit
    assert len(crashes) == 20
    assert harness.app.statistics().failed == {}


async def test_escalating_only_the_device_keeps_the_others_going(autojump_clock):
    backend = MemoryStore()
    harness = _crash_loop_harness(RestartLimit(restarts=2, seconds=60, escalate="device"), backend)

    @harness.app.device("flaky")
    async def flaky() -> None:
        raise RuntimeError("bus error")

    @harness.app.telemetry("steady", interval=10, persist=SaveOnChange())
    async def steady(store: DeviceStore) -> dict[str, object]:
        store["n"] = store.get("n", 0) + 1
        return {"n": store["n"]}

    await harness.run(duration=95)  # no error: the app went on
    assert harness.app.statistics().restarts["flaky"] == 2
    assert "flaky" in harness.app.statistics().failed
    assert harness.states("steady")[-1] == {"n": 10}  # cycles at 0, 10, ..., 90
    assert backend.load("steady") == {"n": 10}


async def test_with_the_defaults_one_device_crashing_at_every_start_stops_the_app(autojump_clock):
    harness = AppHarness.create()
    crashes: list[float] = []

    @harness.app.device("flaky")
    async def flaky() -> None:
        crashes.append(trio.current_time())
        raise RuntimeError("bus error")

    t0 = trio.current_time()
    with pytest.raises(RestartLimitError):
        await harness.run(duration=3600)
    # Backoff 0.5, 1, 2, 4, 8, 16 s (jitter ±10%): the seventh crash is one too many.
    assert len(crashes) == 7
    assert 25 < trio.current_time() - t0 < 40


async def test_after_a_stable_run_the_same_crash_is_reported_again(autojump_clock):
    harness = AppHarness.create(restart_backoff=Backoff(initial=1, jitter=0, reset_after=60))
    starts: list[float] = []

    @harness.app.device("meter")
    async def meter(ctx: DeviceContext) -> None:
        starts.append(trio.current_time())
        if len(starts) == 2:
            await ctx.sleep(100)  # a stable run
        if len(starts) <= 2:
            raise RuntimeError("lost the serial port")

    await harness.run()
    assert [e["message"] for e in harness.errors("meter")] == ["lost the serial port"] * 2


# -- heartbeat ----------------------------------------------------------------------------------


async def test_a_device_that_misses_its_heartbeat_is_cancelled_and_restarted(autojump_clock):
    harness = AppHarness.create(restart_backoff=Backoff(initial=1, jitter=0))
    never = trio.Event()
    starts: list[float] = []

    @harness.app.device("reader", heartbeat=10)
    async def reader(ctx: DeviceContext) -> None:
        starts.append(trio.current_time())
        if len(starts) == 2:
            return  # the restarted instance ends normally: done
        for _ in range(3):
            await ctx.sleep(5)
            ctx.heartbeat()
        await never.wait()  # wedged: no more heartbeats

    t0 = trio.current_time()
    with trio.fail_after(3600):  # without the watchdog the wedged handler would never end
        await harness.run()
    # Beats at 5, 10 and 15 s; silent from 15 s, so cancelled at 25 s, restarted 1 s later.
    assert [s - t0 for s in starts] == pytest.approx([0, 26])
    assert [e["type"] for e in harness.errors("reader")] == ["HeartbeatMissedError"]
    assert harness.app.statistics().restarts == {"reader": 1}


async def test_a_device_that_keeps_beating_is_left_alone(autojump_clock):
    harness = AppHarness.create()
    beats = 0

    @harness.app.device("reader", heartbeat=10)
    async def reader(ctx: DeviceContext) -> None:
        nonlocal beats
        for _ in range(20):
            await ctx.sleep(9)
            ctx.heartbeat()
            beats += 1

    await harness.run()
    assert beats == 20
    assert harness.errors("reader") == []
