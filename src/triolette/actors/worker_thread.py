"""Blocking backend calls on a worker thread, awaited so that the run never looks idle meanwhile.

A task that waits for a thread is *blocked* to trio. A virtual-time clock (trio's
``autojump_clock``) leaps to the next deadline as soon as every task is blocked, so it would
leap over real disk I/O: a retry timer or a shutdown deadline would fire "during" a write that
takes a millisecond. While a call runs, the waiting task therefore sits in trio's idle-wait
(``wait_all_tasks_blocked``), which no clock leaps over, and the thread's completion wakes it at
once. Under a virtual clock it wakes otherwise only when the whole run has been idle for a
growing cushion (10 ms, doubling up to 1 s); under the real clock, for the hand-overs below.
A call that returns within 5 ms costs no extra wake-up. Nothing here asks which clock runs.

A busy event loop starves the thread of the GIL. The worker needs the GIL each time one of its
blocking steps returns (every SQLite statement, the write and the fsync of a file), but a
trio thread with tasks always ready never blocks: it lets the GIL go only inside its
``epoll_wait(0)`` and takes it back at once, and CPython's forced switch does not reach the
waiting thread that way. With 1,000 devices offered more cycles than the loop can run, a
single SQLite batch took 2 to 4 s, so nothing became durable for that long (and a lease
renewal would wait as long). So while a call runs, every :data:`HAND_OVER_EVERY` of it the
waiting task blocks the trio thread for up to :data:`HAND_OVER_FOR`, releasing the GIL for
the worker to take; that wait ends at once when the call does. A call that ends sooner costs
nothing; a long one (an fsync on an SD card) holds the loop for at most 5 % of its length.
"""

from __future__ import annotations

import contextlib
import math
import threading
import time
from collections.abc import Callable
from typing import Any

import outcome
import trio

# trio.testing, the public home of wait_all_tasks_blocked, imports pytest; the function itself
# is part of trio's core run loop.
from trio._core._run import wait_all_tasks_blocked

_FIRST_CUSHION = 0.01
_LAST_CUSHION = 1.0
HAND_OVER_EVERY = 0.005
"""Seconds of a running call between two hand-overs of the GIL to its thread."""
HAND_OVER_FOR = 0.00025
"""The longest the trio thread blocks in one hand-over (a thread wakes well within it)."""


class WorkerThread:
    """Runs one blocking call at a time on a worker thread for its owner (an actor's task).

    :attr:`idle` is set while no call runs; any thread may wait on it. :attr:`hold_until` is
    a wall-clock time (``time.monotonic()``) after which a call still running no longer keeps
    the run busy, so a hung call cannot keep virtual time from reaching a deadline.
    """

    def __init__(self) -> None:
        self.idle = threading.Event()
        self.idle.set()
        self.hold_until = math.inf

    async def run(self, fn: Callable[..., Any], *args: Any) -> Any:
        """Return ``fn(*args)`` (or raise its error), computed on a worker thread.

        Cancellation stops the wait, not the call: the thread then finishes unobserved and
        its result is dropped.
        """
        token = trio.lowlevel.current_trio_token()
        result: list[outcome.Outcome[Any]] = []
        with trio.CancelScope() as waiting:

            def deliver(done: outcome.Outcome[Any]) -> None:  # in the worker thread
                result.append(done)
                self.idle.set()
                # An abandoned call may end after the trio run did: nobody waits for it then.
                with contextlib.suppress(trio.RunFinishedError):
                    token.run_sync_soon(waiting.cancel)

            # trio.to_thread.run_sync would cost extra trips through a busy event loop
            # (limiter, checkpoints); this is its abandon-on-cancel path with one wake-up.
            self.idle.clear()
            trio.lowlevel.start_thread_soon(lambda: fn(*args), deliver)
            await self._keep_the_run_busy()
        return result[0].unwrap()

    async def _keep_the_run_busy(self) -> None:
        """Wait (until cancelled) in trio's idle-wait, up to :attr:`hold_until`, handing the
        GIL over every :data:`HAND_OVER_EVERY`; then plainly."""
        cushion = _FIRST_CUSHION
        while time.monotonic() < self.hold_until:
            with trio.move_on_after(HAND_OVER_EVERY) as turn:
                await wait_all_tasks_blocked(cushion)
                cushion = min(_LAST_CUSHION, cushion * 2)
            if turn.cancelled_caught:  # block the loop a moment: the thread can take the GIL
                self.idle.wait(HAND_OVER_FOR)
        await trio.sleep_forever()
