"""Blocking backend calls on a worker thread, awaited so that the run never looks idle meanwhile.

A task that waits for a thread is *blocked* to trio. A virtual-time clock (trio's
``autojump_clock``) leaps to the next deadline as soon as every task is blocked, so it would
leap over real disk I/O: a retry timer or a shutdown deadline would fire "during" a write that
takes a millisecond. While a call runs, the waiting task therefore sits in trio's idle-wait
(``wait_all_tasks_blocked``), which no clock leaps over, and the thread's completion wakes it at
once. Whatever the clock, this costs a wake-up only when the whole run has been idle for a
growing cushion (10 ms, doubling up to 1 s), and none at all for a call that returns before.
Nothing here asks which clock runs.
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
        """Wait (until cancelled) in trio's idle-wait, up to :attr:`hold_until`; then plainly."""
        cushion = _FIRST_CUSHION
        while time.monotonic() < self.hold_until:
            await wait_all_tasks_blocked(cushion)
            cushion = min(_LAST_CUSHION, cushion * 2)
        await trio.sleep_forever()
