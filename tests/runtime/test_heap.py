"""The heap keeper: frozen soon after the start, refrozen at doubling intervals, thawed at exit."""

from __future__ import annotations

import gc
import weakref

import trio

from triolette.runtime.heap import FIRST_FREEZE, REFREEZE_MAX, keep_heap_frozen


class _Node:
    def __init__(self) -> None:
        self.other: _Node | None = None


async def test_the_heap_is_frozen_after_the_first_delay_and_thawed_at_exit(autojump_clock):
    gc.unfreeze()
    async with trio.open_nursery() as nursery:
        await nursery.start(keep_heap_frozen)
        await trio.sleep(FIRST_FREEZE * 0.99)
        assert gc.get_freeze_count() == 0
        await trio.sleep(FIRST_FREEZE * 0.02)
        assert gc.get_freeze_count() > 0
        nursery.cancel_scope.cancel()
    assert gc.get_freeze_count() == 0


async def test_cyclic_garbage_frozen_while_alive_is_reclaimed_at_the_next_round(autojump_clock):
    a, b = _Node(), _Node()
    a.other, b.other = b, a
    alive = weakref.ref(a)
    async with trio.open_nursery() as nursery:
        await nursery.start(keep_heap_frozen)
        await trio.sleep(FIRST_FREEZE * 1.01)  # frozen while still referenced
        del a, b
        gc.collect()
        assert alive() is not None  # frozen: the collector does not look at it
        await trio.sleep(FIRST_FREEZE * 2)  # the second round thaws and collects first
        assert alive() is None
        nursery.cancel_scope.cancel()


async def test_rounds_double_up_to_the_longest_period(autojump_clock, monkeypatch):
    rounds: list[float] = []
    monkeypatch.setattr(
        "triolette.runtime.heap.refreeze", lambda: rounds.append(trio.current_time())
    )
    async with trio.open_nursery() as nursery:
        start = trio.current_time()
        await nursery.start(keep_heap_frozen)
        await trio.sleep(REFREEZE_MAX * 6)
        nursery.cancel_scope.cancel()
    gaps = [later - earlier for earlier, later in zip([start, *rounds], rounds, strict=False)]
    assert gaps[:4] == [FIRST_FREEZE, FIRST_FREEZE * 2, FIRST_FREEZE * 4, FIRST_FREEZE * 8]
    assert max(gaps) == REFREEZE_MAX
    assert gaps[-3:] == [REFREEZE_MAX] * 3
