"""The shared metronome: drift-free ticks, skipped when missed, released in groups."""

from __future__ import annotations

import pytest
import trio
import trio.testing

from triolette.actors.metronome import ON_TIME, RELEASE_GROUP, Metronome


async def _run(metronome: Metronome, nursery: trio.Nursery) -> float:
    await nursery.start(metronome.run)
    return trio.current_time()


@pytest.mark.parametrize(
    ("overrun", "expected"),
    [(0.0, 1), (ON_TIME * 0.5, 1), (ON_TIME * 2, 2)],
    ids=["exactly-on-the-tick", "within-the-grace", "beyond-the-grace"],
)
async def test_a_cycle_ending_as_the_tick_fires_catches_it(autojump_clock, overrun, expected):
    """Within 1% of an interval the timer and the device wake in either order; beyond, skip."""
    interval = 10.0
    async with trio.open_nursery() as nursery:
        metronome = Metronome(interval)
        start = await _run(metronome, nursery)
        await trio.sleep_until(start + interval * (1 + overrun))  # a cycle that ends now
        tick = await metronome.next_tick(after=0)
        assert tick == expected
        assert trio.current_time() == pytest.approx(start + interval * max(1 + overrun, tick))
        nursery.cancel_scope.cancel()


class _DeviceStepsPerBatch(trio.abc.Instrument):
    """Counts the steps of tasks named ``device`` in each scheduling batch."""

    def __init__(self) -> None:
        self.per_batch = [0]

    def after_io_wait(self, timeout: float) -> None:  # a new batch starts
        self.per_batch.append(0)

    def before_task_step(self, task: trio.lowlevel.Task) -> None:
        if task.name == "device":
            self.per_batch[-1] += 1


async def test_devices_are_released_in_groups_so_other_tasks_get_turns(autojump_clock):
    metronome = Metronome(1.0)
    woken = 0

    async def device() -> None:
        nonlocal woken
        await metronome.next_tick(after=0)
        woken += 1

    async with trio.open_nursery() as nursery:
        await _run(metronome, nursery)
        for _ in range(RELEASE_GROUP * 4):
            nursery.start_soon(device, name="device")
        await trio.testing.wait_all_tasks_blocked()
        assert metronome.waiting == RELEASE_GROUP * 4
        steps = _DeviceStepsPerBatch()
        trio.lowlevel.add_instrument(steps)
        await trio.sleep_until(metronome.due(1) + 0.5)
        trio.lowlevel.remove_instrument(steps)
        nursery.cancel_scope.cancel()
    assert woken == RELEASE_GROUP * 4
    # A hundred devices woke on one tick, but no batch ran more than one group of them.
    assert max(steps.per_batch) == RELEASE_GROUP
