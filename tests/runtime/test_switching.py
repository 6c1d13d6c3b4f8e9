"""The GIL's switch interval: short while the devices run, as the program had it after."""

from __future__ import annotations

import sys
from collections.abc import Iterator

import pytest
import trio
import trio.testing

from triolette import App, MemoryStore
from triolette.runtime.switching import SWITCH_INTERVAL


@pytest.fixture
def program_interval() -> Iterator[None]:
    previous = sys.getswitchinterval()
    yield
    sys.setswitchinterval(previous)


async def _interval_while_serving() -> float:
    app = App("switching", store=MemoryStore(), log_statistics_every=None, heartbeat_every=None)
    seen: list[float] = []

    @app.device("watcher")
    async def watcher() -> None:
        seen.append(sys.getswitchinterval())
        await trio.sleep_forever()

    async with trio.open_nursery() as nursery:
        await nursery.start(app.serve)
        await trio.testing.wait_all_tasks_blocked()  # the watcher has started
        app.shutdown()
    return seen[0]


async def test_the_interval_is_short_while_devices_run_and_put_back_after(
    autojump_clock: trio.abc.Clock, program_interval: None
) -> None:
    sys.setswitchinterval(0.005)
    assert await _interval_while_serving() == SWITCH_INTERVAL
    assert sys.getswitchinterval() == 0.005


async def test_a_program_s_own_shorter_interval_is_kept(
    autojump_clock: trio.abc.Clock, program_interval: None
) -> None:
    sys.setswitchinterval(0.0005)
    assert await _interval_while_serving() == 0.0005
    assert sys.getswitchinterval() == 0.0005
