"""The worker thread that runs blocking backend calls: it runs even while the loop never rests."""

from __future__ import annotations

import time

import trio

from triolette.actors.worker_thread import WorkerThread


def _many_short_blocking_steps() -> str:
    """Gives the GIL up and takes it back 20 times, as the steps of a batch write do."""
    for _ in range(20):
        time.sleep(0.0005)
    return "done"


async def _spin() -> None:
    while True:  # always ready: the loop never waits for I/O with a timeout
        await trio.lowlevel.checkpoint()


async def test_a_call_finishes_while_the_event_loop_is_never_idle() -> None:
    """A trio thread always busy lets the GIL go only inside epoll_wait(0) and takes it back at
    once, which starved the worker: the call took 3 to 9 s here, and about 0.11 s with the
    hand-over (20 hand-overs, one per 5 ms)."""
    worker = WorkerThread()
    async with trio.open_nursery() as nursery:
        for _ in range(20):
            nursery.start_soon(_spin)
        with trio.fail_after(2):
            assert await worker.run(_many_short_blocking_steps) == "done"
        nursery.cancel_scope.cancel()
    assert worker.idle.is_set()
