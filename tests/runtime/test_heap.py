"""The heap keeper: frozen soon after the start, refrozen at doubling intervals, thawed at exit."""

from __future__ import annotations

import gc
import itertools
import weakref

import trio
import trio.testing

from triolette import App, MemoryStore
from triolette.runtime.heap import (
    FIRST_FREEZE,
    REFREEZE_MAX,
    YOUNG_THRESHOLD,
    ServeHeap,
)


class _Node:
    def __init__(self) -> None:
        self.other: _Node | None = None


def _frozen(obj: object) -> bool:
    """Whether the collector tracks ``obj`` but skips it (it sits in the frozen heap)."""
    return gc.is_tracked(obj) and all(seen is not obj for seen in gc.get_objects())


async def test_the_heap_is_frozen_after_the_first_delay_and_stays_so_until_released(
    autojump_clock,
):
    gc.unfreeze()
    heap = ServeHeap()
    async with trio.open_nursery() as nursery:
        await nursery.start(heap.keep_frozen)
        await trio.sleep(FIRST_FREEZE * 0.99)
        assert gc.get_freeze_count() == 0
        await trio.sleep(FIRST_FREEZE * 0.02)
        assert gc.get_freeze_count() > 0
        nursery.cancel_scope.cancel()
    assert gc.get_freeze_count() > 0
    heap.release()
    assert gc.get_freeze_count() == 0


async def test_cyclic_garbage_frozen_while_alive_is_reclaimed_at_the_next_full_round(
    autojump_clock,
):
    a, b = _Node(), _Node()
    a.other, b.other = b, a
    alive = weakref.ref(a)
    heap = ServeHeap()
    async with trio.open_nursery() as nursery:
        await nursery.start(heap.keep_frozen)
        await trio.sleep(FIRST_FREEZE * 1.01)  # frozen while still referenced
        del a, b
        await trio.sleep(REFREEZE_MAX * 0.9)  # the younger-only rounds leave it alone
        gc.collect()
        assert alive() is not None  # frozen: the collector does not look at it
        await trio.sleep(REFREEZE_MAX * 1.1)  # a full round thaws and collects first
        assert alive() is None
        nursery.cancel_scope.cancel()
    heap.release()


async def test_garbage_younger_than_the_frozen_heap_is_collected_by_a_cheap_round(
    autojump_clock,
):
    heap = ServeHeap()
    async with trio.open_nursery() as nursery:
        await nursery.start(heap.keep_frozen)
        await trio.sleep(FIRST_FREEZE * 1.01)
        a, b = _Node(), _Node()  # made after the first freeze, cyclic, soon garbage
        a.other, b.other = b, a
        alive = weakref.ref(a)
        survivor = [_Node()]
        del a, b
        assert not _frozen(survivor)
        await trio.sleep(FIRST_FREEZE * 2)  # the next round: younger objects only
        assert alive() is None
        assert _frozen(survivor)  # the survivors joined the frozen heap
        assert _frozen(survivor[0])
        nursery.cancel_scope.cancel()
    heap.release()


async def test_rounds_double_up_to_the_longest_period_and_full_ones_come_at_it(
    autojump_clock, monkeypatch
):
    rounds: list[tuple[float, str]] = []
    heap = ServeHeap()
    for kind in ("refreeze", "freeze_younger"):
        monkeypatch.setattr(
            f"triolette.runtime.heap.{kind}",
            lambda kind=kind: rounds.append((trio.current_time(), kind)),
        )
    async with trio.open_nursery() as nursery:
        start = trio.current_time()
        await nursery.start(heap.keep_frozen)
        await trio.sleep(REFREEZE_MAX * 6)
        nursery.cancel_scope.cancel()
    heap.release()
    times = [at for at, _ in rounds]
    gaps = [later - earlier for earlier, later in zip([start, *times], times, strict=False)]
    assert gaps[:4] == [FIRST_FREEZE, FIRST_FREEZE * 2, FIRST_FREEZE * 4, FIRST_FREEZE * 8]
    assert max(gaps) == REFREEZE_MAX
    assert gaps[-3:] == [REFREEZE_MAX] * 3
    full = [at for at, kind in rounds if kind == "refreeze"]
    assert full[0] == start + FIRST_FREEZE
    assert rounds[1][1] == "freeze_younger"
    between = [later - earlier for earlier, later in itertools.pairwise(full)]
    assert all(REFREEZE_MAX <= gap < 2 * REFREEZE_MAX for gap in between)


def _app_recording_the_stop(seen: dict[str, object]) -> App:
    app = App("heap", store=MemoryStore(), log_statistics_every=None, heartbeat_every=None)

    @app.device("watcher")
    async def watcher() -> None:
        try:
            await trio.sleep_forever()
        finally:  # runs when the stop cancels the device
            seen["collector enabled"] = gc.isenabled()
            seen["frozen"] = gc.get_freeze_count()

    return app


async def test_a_stop_runs_with_the_heap_frozen_and_the_collector_paused(autojump_clock):
    seen: dict[str, object] = {}
    app = _app_recording_the_stop(seen)
    assert gc.isenabled()
    async with trio.open_nursery() as nursery:
        await nursery.start(app.serve)
        await trio.sleep(FIRST_FREEZE * 1.5)
        app.shutdown()
    assert seen["collector enabled"] is False
    assert isinstance(seen["frozen"], int)
    assert seen["frozen"] > 0
    assert gc.isenabled()  # resumed once the serve is over
    assert gc.get_freeze_count() == 0  # and thawed


async def test_a_collector_the_program_disabled_stays_disabled_after_a_stop(autojump_clock):
    seen: dict[str, object] = {}
    app = _app_recording_the_stop(seen)
    gc.disable()
    try:
        async with trio.open_nursery() as nursery:
            await nursery.start(app.serve)
            await trio.testing.wait_all_tasks_blocked()  # the device waits in its try
            app.shutdown()
        assert seen["collector enabled"] is False
        assert not gc.isenabled()
    finally:
        gc.enable()


def test_a_serve_heap_resumes_only_the_collector_it_paused() -> None:
    first, second = ServeHeap(), ServeHeap()
    first.stopping()
    second.stopping()  # already disabled: not this one's to resume
    second.release()
    assert not gc.isenabled()
    first.release()
    first.release()
    assert gc.isenabled()


async def test_no_refreeze_round_runs_during_a_stop(autojump_clock, monkeypatch):
    """A round (a full collection) falling in a stop would hold the final flush."""
    rounds: list[float] = []
    monkeypatch.setattr(
        "triolette.runtime.heap.refreeze", lambda: rounds.append(trio.current_time())
    )
    app = App("heap", store=MemoryStore(), log_statistics_every=None, heartbeat_every=None)

    @app.device("slow_to_stop")
    async def slow_to_stop() -> None:
        try:
            await trio.sleep_forever()
        finally:
            with trio.CancelScope(shield=True):
                await trio.sleep(FIRST_FREEZE * 10)  # many rounds' worth of stopping

    async with trio.open_nursery() as nursery:
        await nursery.start(app.serve)
        await trio.sleep(FIRST_FREEZE * 1.5)
        stop_requested = trio.current_time()
        app.shutdown()
    assert rounds
    assert max(rounds) < stop_requested


async def test_devices_run_with_a_larger_young_threshold_and_the_old_one_comes_back(
    autojump_clock,
):
    seen: dict[str, object] = {}
    app = App("heap", store=MemoryStore(), log_statistics_every=None, heartbeat_every=None)

    @app.device("watcher")
    async def watcher() -> None:
        seen["running"] = gc.get_threshold()
        await trio.sleep_forever()

    before = gc.get_threshold()
    async with trio.open_nursery() as nursery:
        await nursery.start(app.serve)
        await trio.testing.wait_all_tasks_blocked()
        app.shutdown()
    assert seen["running"] == (YOUNG_THRESHOLD, *before[1:])
    assert gc.get_threshold() == before


async def test_a_program_s_own_larger_or_disabling_threshold_is_kept(autojump_clock) -> None:
    before = gc.get_threshold()
    try:
        for threshold in ((YOUNG_THRESHOLD * 3, 5, 5), (0, 10, 10)):
            gc.set_threshold(*threshold)
            heap = ServeHeap()
            async with trio.open_nursery() as nursery:
                await nursery.start(heap.keep_frozen)
                assert gc.get_threshold() == threshold
                nursery.cancel_scope.cancel()
            heap.release()
            assert gc.get_threshold() == threshold
    finally:
        gc.set_threshold(*before)
