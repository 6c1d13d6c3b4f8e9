"""Shutdown through the App: the final flush is complete, ordered and bounded.

``App.serve()`` returns only after the persistence actor wrote what was pending and closed the
backend, and a started write is never torn by the shutdown. What can go wrong is bounded by
``shutdown_timeout`` of *wall-clock* time: a leaked mailbox handle or a backend that never
returns ends in a report, never in a hang, and ``FlushIncompleteError`` names exactly the
devices whose state is not durable.

Tests that wait for worker threads by design run on the real clock (the actor waiting for its
thread is blocked, as in production, and virtual time would leap over the wait); they stay
bounded with ``trio.fail_after``.
"""

from __future__ import annotations

import datetime
import logging
import time
from collections.abc import Callable, Iterable
from typing import Any

import pytest
import trio
import trio.testing

from tests.actors.backends import (
    FailingStore,
    GatedStore,
    HungStore,
    RecordingStore,
    release_all,
)
from triolette import (
    App,
    DeviceContext,
    DeviceStore,
    FlushIncompleteError,
    Message,
    SaveOnChange,
)
from triolette.actors.persistence import (
    PersistenceActor,
    PersistenceClient,
    PersistenceStatistics,
)
from triolette.testing import AppHarness, MemoryBroker, MemoryTransport

WHEN = datetime.datetime(2026, 1, 1, tzinfo=datetime.UTC)


@pytest.fixture(autouse=True)
def _no_blocked_worker_threads() -> Iterable[None]:
    yield
    release_all()


def persistence_of(harness: AppHarness) -> PersistenceActor:
    running = harness.app.running
    assert running is not None
    assert running.persistence is not None
    return running.persistence


def count_up(
    harness: AppHarness, name: str, last: dict[str, int] | None = None, **options: Any
) -> None:
    """Register a telemetry device that adds one to its stored ``count`` every cycle."""

    async def handler(store: DeviceStore, ctx: DeviceContext) -> dict[str, object]:
        count: int = store.get("count", 0) + 1
        store["count"] = count
        if last is not None:
            last[ctx.name] = count
        return {"count": count}

    options.setdefault("persist", SaveOnChange())
    options.setdefault("interval", 3600)
    harness.app.telemetry(name, **options)(handler)


async def test_a_save_in_progress_at_shutdown_completes_once_before_serve_returns():
    events: list[str] = []
    backend = GatedStore(events=events, closed=True)
    harness = AppHarness.create(store=backend)
    count_up(harness, "meter")

    async def shut_down_during_the_write() -> None:
        await backend.wait_entered(1)  # the cycle's save is blocked inside the worker thread
        persistence = persistence_of(harness)
        acked = trio.Event()

        async def wait_for_ack() -> None:
            await persistence.flush("meter")
            events.append("acked")
            acked.set()

        nursery.start_soon(wait_for_ack)
        events.append("shutdown")
        harness.trigger_shutdown()
        try:
            await trio.testing.wait_all_tasks_blocked()  # every device stopped; serve waits
            if persistence.stopped.is_set() or acked.is_set():
                events.append("stopped or acked before the write returned")
        finally:
            events.append("gate opened")
            backend.open_gate()

    with trio.fail_after(10):
        async with trio.open_nursery() as nursery:
            nursery.start_soon(shut_down_during_the_write)
            await harness.run(duration=3600)
            events.append("serve returned")

    assert events[:4] == ["write-entered", "shutdown", "gate opened", "write-returned"]
    # The ack and the backend's close both follow the write, in either order; serve is last.
    assert sorted(events[4:6]) == ["acked", "backend-closed"]
    assert events[6:] == ["serve returned"]
    assert [call.states for call in backend.writes] == [{"meter": {"count": 1}}]
    assert backend.stored("meter") == {"count": 1}
    assert persistence_of(harness).stopped.is_set()


async def rescue_after(seconds: float, rescue: Callable[[], None], rescued: list[str]) -> None:
    """If the app is still stopping after ``seconds``, remove the cause and note it.

    The flush runs shielded, so a missing deadline would hang the test instead of failing
    it; this turns such a hang into a failed assertion on ``rescued``.
    """
    await trio.sleep(seconds)
    rescued.append(f"still stopping after {seconds} s")
    rescue()


async def test_a_leaked_mailbox_handle_cannot_hang_shutdown(caplog):
    backend = RecordingStore({"meter": {"count": 41}})
    harness = AppHarness.create(store=backend, shutdown_timeout=0.3)
    leaked: list[PersistenceClient] = []

    @harness.app.telemetry("leaker", interval=3600, persist=SaveOnChange())
    async def leaker(store: DeviceStore) -> None:
        leaked.append(persistence_of(harness).client("ghost"))  # never closed
        store["leaked"] = True

    count_up(harness, "meter")
    count_up(harness, "lazy", persist=None)  # saved only by the final flush
    rescued: list[str] = []

    with trio.fail_after(10):
        async with trio.open_nursery() as nursery:
            nursery.start_soon(rescue_after, 5, lambda: leaked[0].close(), rescued)
            started = trio.current_time()
            await harness.run()
            took = trio.current_time() - started
            nursery.cancel_scope.cancel()

    assert rescued == []
    assert 0.3 <= took < 5
    assert backend.stored("leaker") == {"leaked": True}
    assert backend.stored("meter") == {"count": 42}
    assert backend.stored("lazy") == {"count": 1}
    assert backend.stored("ghost") is None
    reports = [
        record.getMessage()
        for record in caplog.records
        if record.levelno >= logging.ERROR and "mailbox handle" in record.getMessage()
    ]
    assert len(reports) == 1
    assert "1 persistence mailbox handle(s) still open" in reports[0]
    leaked[0].close()


async def test_a_hung_backend_cannot_hang_shutdown_and_the_unsaved_devices_are_named():
    backend = HungStore({"steady": {"count": 5}})
    harness = AppHarness.create(store=backend, shutdown_timeout=0.3)
    count_up(harness, "a")
    count_up(harness, "b")

    @harness.app.telemetry("steady", interval=3600, persist=SaveOnChange())
    async def steady(store: DeviceStore) -> dict[str, object]:
        return {"count": store["count"]}  # reads, never changes: nothing to save

    @harness.app.telemetry("stateless", interval=3600)
    async def stateless() -> dict[str, object]:
        return {"up": True}

    rescued: list[str] = []
    try:
        with trio.fail_after(10):
            async with trio.open_nursery() as nursery:
                nursery.start_soon(rescue_after, 5, backend.release, rescued)
                started = trio.current_time()
                with pytest.raises(FlushIncompleteError) as raised:
                    await harness.run()
                took = trio.current_time() - started
                nursery.cancel_scope.cancel()
        assert rescued == []
        assert raised.value.keys == ["a", "b"]
        assert 0.3 <= took < 3
        assert backend.writes  # the hung write was really in progress
        assert backend.stored("a") is None
        assert backend.stored("steady") == {"count": 5}
    finally:
        backend.release()
    await backend.wait_returned(1)  # let the hung thread end while trio still runs


async def test_under_the_autojump_clock_a_hung_backend_is_given_up_by_wall_clock(autojump_clock):
    """Virtual time stands still while the actor waits for its thread; the wall clock does not."""
    backend = HungStore()
    harness = AppHarness.create(store=backend, shutdown_timeout=0.3)
    count_up(harness, "a")
    count_up(harness, "b")
    try:
        began = time.monotonic()
        with pytest.raises(FlushIncompleteError) as raised:
            await harness.run()
        took = time.monotonic() - began
        assert raised.value.keys == ["a", "b"]
        assert 0.3 <= took < 3
        assert backend.stored("a") is None
    finally:
        backend.release()
    await backend.wait_returned(1)


async def test_a_backend_failing_during_the_final_flush_is_retried_and_reported(caplog):
    backend = GatedStore({"meter": {"count": 1}}, closed=True, failures=2)
    harness = AppHarness.create(store=backend)
    count_up(harness, "meter", persist=None)  # one write, at shutdown
    count_up(harness, "other", persist=None)

    async def fail_once_everything_else_stopped() -> None:
        try:
            await backend.wait_entered(1)  # the final flush's write
            await trio.testing.wait_all_tasks_blocked()  # devices gone; serve waits for it
        finally:
            backend.open_gate()

    with trio.fail_after(10):
        async with trio.open_nursery() as nursery:
            nursery.start_soon(fail_once_everything_else_stopped)
            await harness.run()

    assert backend.stored("meter") == {"count": 2}
    assert backend.stored("other") == {"count": 1}
    assert [sorted(call.keys) for call in backend.writes] == [["meter", "other"]] * 3
    stats = persistence_of(harness).statistics()
    assert (stats.failures, stats.batches) == (2, 1)
    logged = [
        r.getMessage()
        for r in caplog.records
        if r.name == "triolette.persistence" and r.levelno >= logging.ERROR
    ]
    assert len(logged) == 1  # the second, identical failure is counted, not logged again
    assert logged[0].startswith("could not save meter, other (OSError")
    # Reported on the error topic too (repeats de-duplicated), though the app is stopping.
    assert [error["type"] for error in harness.errors()] == ["OSError"]
    assert "injected I/O error" in harness.errors()[0]["message"]


async def test_a_slow_backend_keeps_memory_bounded_and_loses_no_save():
    devices = [f"t{index:04d}" for index in range(1000)]
    backend = GatedStore(closed=True, delay=0.02)
    harness = AppHarness.create(store=backend, mailbox_size=64)
    last: dict[str, int] = {}
    for name in devices:
        count_up(harness, name, last, interval=0.01)
    held: list[PersistenceStatistics] = []

    async def hold_then_recover() -> None:
        try:
            await harness.app.wait_for_cycles(3)  # every device saved three times; disk stuck
            held.append(persistence_of(harness).statistics())
        finally:
            backend.open_gate()

    with trio.fail_after(30):
        async with trio.open_nursery() as nursery:
            nursery.start_soon(hold_then_recover)
            await harness.run(cycles=6)

    assert [backend.stored(name) for name in devices] == [{"count": last[name]} for name in devices]
    assert min(last.values()) >= 6
    during = held[0]
    assert during.pending_keys <= 1000
    assert during.batches == 0
    stats = persistence_of(harness).statistics()
    assert 990 <= stats.pending_peak <= 1000
    assert stats.mailbox_peak <= 64
    assert stats.coalesced > 0
    assert stats.saves >= 6 * 1000
    assert stats.keys_written < stats.saves  # coalesced, not written one by one


async def test_an_unserializable_value_is_reported_by_device_and_path_and_spares_others(
    autojump_clock, caplog
):
    backend = RecordingStore({"clock": {"ok": True}})
    harness = AppHarness.create(store=backend)
    count_up(harness, "meter_a", interval=1)
    count_up(harness, "meter_b", interval=1)

    @harness.app.telemetry("clock", interval=1, persist=SaveOnChange())
    async def clock(store: DeviceStore) -> None:
        calib = store.get("calib")
        if calib is None:
            store["calib"] = {"when": WHEN}
        else:
            del calib["when"]  # the second cycle repairs it
            store["fixed"] = True

    await harness.run(cycles=2)

    errors = harness.errors("clock")
    assert [(error["type"], error["device"]) for error in errors] == [
        ("StateNotJSONError", "clock")
    ]
    assert errors[0]["message"] == 'clock: ["calib"]["when"] is a datetime'
    assert harness.errors("meter_a") == harness.errors("meter_b") == []
    assert any('clock: ["calib"]["when"] is a datetime' in r.getMessage() for r in caplog.records)
    # The others' first saves landed while the clock's was refused, and nothing was lost.
    assert any(call.states.get("meter_a") == {"count": 1} for call in backend.writes)
    assert backend.stored("meter_a") == backend.stored("meter_b") == {"count": 2}
    assert backend.stored("clock") == {"ok": True, "calib": {}, "fixed": True}


async def test_a_final_state_that_is_not_json_fails_the_flush_of_that_device_only(
    autojump_clock,
):
    backend = RecordingStore({"clock": {"ok": True}})
    harness = AppHarness.create(store=backend)
    count_up(harness, "meter_a")
    count_up(harness, "meter_b", persist=None)

    @harness.app.telemetry("clock", interval=3600)  # saved only at shutdown
    async def clock(store: DeviceStore) -> None:
        store["calib"] = {"when": WHEN}

    with pytest.raises(FlushIncompleteError) as raised:
        await harness.run()

    assert raised.value.keys == ["clock"]
    assert 'clock: ["calib"]["when"] is a datetime' in str(raised.value)
    assert backend.stored("meter_a") == backend.stored("meter_b") == {"count": 1}
    assert backend.stored("clock") == {"ok": True}  # the last good state, untouched
    assert [error["device"] for error in harness.errors("clock")] == ["clock"]


async def test_a_backend_error_is_published_again_after_the_backend_recovered(autojump_clock):
    backend = FailingStore(failures=1)
    harness = AppHarness.create(store=backend)
    count_up(harness, "meter")
    outage_again = trio.Event()

    @harness.app.telemetry("trigger", interval=10)
    async def trigger() -> None:
        if harness.app.statistics().cycles["trigger"] == 3:
            backend.failures_left = 1  # the same fault once more, after good writes
            outage_again.set()

    await harness.run(cycles=6)
    assert outage_again.is_set()
    assert [e["type"] for e in harness.errors()] == ["OSError", "OSError"]


class _NoGoodbyeTransport(MemoryTransport):
    """Hands every message to the broker but never confirms the final ``offline``."""

    async def publish(self, message: Message, confirmed: Callable[..., None]) -> None:
        if message.topic.endswith("/status") and message.payload == b"offline":
            await trio.lowlevel.checkpoint()
            return
        await super().publish(message, confirmed)


async def test_one_deadline_bounds_the_whole_shutdown(autojump_clock):
    """Devices slow to stop, then a broker that never confirms the goodbye: all of it fits
    in ``shutdown_timeout``, counted from the request, and the flush that fitted is kept."""
    broker = MemoryBroker()
    backend = RecordingStore()
    app = App("app", store=backend, transport=_NoGoodbyeTransport(broker), shutdown_timeout=5)

    running = trio.Event()

    @app.device("slow")
    async def slow(ctx: DeviceContext, store: DeviceStore) -> None:
        store["x"] = 1
        running.set()
        try:
            await ctx.sleep(10_000)
        finally:
            with trio.CancelScope(shield=True):
                await trio.sleep(3)  # slow to stop: uses 3 s of the 5
            store["x"] = 2

    async with trio.open_nursery() as nursery:
        await nursery.start(app.serve)
        await running.wait()
        requested = trio.current_time()
        app.shutdown()
    took = trio.current_time() - requested

    assert took == pytest.approx(5, abs=0.01)  # not 3 + the 5 s publish timeout
    assert backend.stored("slow") == {"x": 2}
    assert [m.text for m in broker.on("app/slow/availability")] == ["online", "offline"]
