"""FakeClock and the ClockPort protocol: virtual time that moves only when told."""

from __future__ import annotations

import pytest
import trio
import trio.testing

from triolette.actors.clock import TrioClock
from triolette.core.clock import ClockPort
from triolette.testing import FakeClock


def test_now_starts_at_zero_and_moves_only_by_advance():
    clock = FakeClock()
    assert clock.now() == 0
    clock.advance(60)
    clock.jump(1.5)
    assert clock.now() == 61.5
    assert repr(clock) == "<FakeClock at 61.5 s>"
    with pytest.raises(ValueError, match="time can't go backwards"):
        clock.advance(-1)


def test_both_clocks_are_clock_ports():
    assert isinstance(FakeClock(), ClockPort)
    assert isinstance(TrioClock(), ClockPort)
    assert not isinstance(object(), ClockPort)


def test_a_trio_run_on_a_fake_clock_follows_advance():
    clock = FakeClock()
    woke: list[float] = []

    async def main() -> None:
        async def sleeper() -> None:
            await clock.sleep(30)  # the ClockPort sleep: trio.sleep on the run's clock
            woke.append(TrioClock().now())

        async with trio.open_nursery() as nursery:
            nursery.start_soon(sleeper)
            await trio.testing.wait_all_tasks_blocked()
            assert woke == []
            clock.advance(29)
            await trio.testing.wait_all_tasks_blocked()
            assert woke == []
            clock.advance(1)

    trio.run(main, clock=clock)
    assert woke == [30.0]


async def test_the_fixture_is_this_tests_clock(fake_clock: FakeClock):
    assert trio.lowlevel.current_clock() is fake_clock
    with trio.move_on_after(5) as scope:
        fake_clock.advance(5)
        await trio.sleep_forever()
    assert scope.cancelled_caught
    assert trio.current_time() == 5


async def test_around_a_mock_clock_it_reads_and_moves_that_clock(autojump_clock):
    clock = FakeClock(autojump_clock)
    await trio.sleep(10)  # autojumps
    assert clock.now() == 10
    clock.advance(5)
    assert trio.current_time() == 15
