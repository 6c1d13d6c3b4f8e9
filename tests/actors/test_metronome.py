"""The shared metronome: drift-free ticks in spread phases, skipped when missed, in groups."""

from __future__ import annotations

import pytest
import trio
import trio.testing

from triolette.actors.metronome import MIN_SLOT, ON_TIME, RELEASE_GROUP, Metronome


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
        tick = await metronome.lane().next_tick(after=0)
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
        await metronome.lane().next_tick(after=0)
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


@pytest.mark.parametrize(
    ("interval", "followers", "slots"),
    [
        (0.01, 1, 1),
        (0.01, 2 * RELEASE_GROUP - 1, 1),
        (0.01, 2 * RELEASE_GROUP, 2),
        (0.01, 1000, 8),
        (1.0, 1000, 32),
        (1.0, 100_000, 512),
        (2.048, 100_000, 2048),
    ],
)
def test_slots_are_a_power_of_two_bounded_by_groups_of_followers_and_the_shortest_slot(
    interval, followers, slots
):
    metronome = Metronome(interval, followers=followers)
    assert metronome.slots == slots
    assert interval / metronome.slots >= MIN_SLOT * 0.999
    assert followers / metronome.slots >= min(followers, RELEASE_GROUP)


def test_consecutive_lanes_take_spread_out_slots():
    metronome = Metronome(1.0, followers=8 * RELEASE_GROUP)
    assert [metronome.lane().slot for _ in range(10)] == [0, 4, 2, 6, 1, 5, 3, 7, 0, 4]


async def test_each_lane_ticks_on_its_own_phase_without_drift(autojump_clock):
    """Lane k of 4 wakes at start + (N + slot/4) * interval, exactly, tick after tick."""
    metronome = Metronome(1.0, followers=4 * RELEASE_GROUP)
    woke: dict[int, list[tuple[int, float]]] = {}

    async def device(slot_of: list[int]) -> None:
        lane = metronome.lane()
        slot_of.append(lane.slot)
        tick = lane.fired
        for _ in range(50):
            tick = await lane.next_tick(after=tick)
            woke.setdefault(lane.slot, []).append((tick, trio.current_time()))
            await trio.sleep(0.1)  # a cycle's work

    slots: list[int] = []
    async with trio.open_nursery() as nursery:
        start = await _run(metronome, nursery)
        async with trio.open_nursery() as devices:
            for _ in range(4):
                devices.start_soon(device, slots)
        nursery.cancel_scope.cancel()
    assert sorted(slots) == [0, 1, 2, 3]
    for slot, wakes in woke.items():
        assert [tick for tick, _ in wakes] == list(range(1, 51))
        assert [at for _, at in wakes] == [start + tick + slot / 4 for tick, _ in wakes]


async def test_a_lane_that_overran_skips_to_its_next_tick_and_stays_on_its_phase(autojump_clock):
    metronome = Metronome(1.0, followers=2 * RELEASE_GROUP)
    async with trio.open_nursery() as nursery:
        start = await _run(metronome, nursery)
        metronome.lane()  # slot 0
        lane = metronome.lane()
        assert lane.slot == 1
        await trio.sleep_until(start + 2.7)  # the first cycle overran ticks 1 (at 1.5) and 2
        assert await lane.next_tick(after=0) == 3
        assert trio.current_time() == start + 3.5
        nursery.cancel_scope.cancel()


async def test_a_timer_a_whole_interval_late_skips_ticks_instead_of_bursting(autojump_clock):
    """The loop was blocked for 3.2 intervals: every lane wakes once, for the latest tick."""
    metronome = Metronome(1.0, followers=2 * RELEASE_GROUP)
    seen: list[tuple[int, int]] = []

    async def device() -> None:
        lane = metronome.lane()
        tick = lane.fired
        while True:
            tick = await lane.next_tick(after=tick)
            seen.append((lane.slot, tick))

    async with trio.open_nursery() as nursery:
        start = await _run(metronome, nursery)
        nursery.start_soon(device)
        nursery.start_soon(device)
        await trio.testing.wait_all_tasks_blocked()
        autojump_clock.jump(3.2)  # as if a blocking call held the loop
        await trio.sleep_until(start + 4.9)
        nursery.cancel_scope.cancel()
    # At 3.2 the timer wakes for tick 1 and finds tick 3 (due 3.0) the latest due: it fires
    # that one only; slot 1 follows at 3.5, then both go on on the grid.
    assert seen == [(0, 3), (1, 3), (0, 4), (1, 4)]
