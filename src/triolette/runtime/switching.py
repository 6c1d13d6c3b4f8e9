"""The GIL's switch interval while devices run: 1 ms instead of CPython's 5 ms.

The event loop shares the GIL with the worker threads that run blocking backend calls (see
:mod:`triolette.actors.worker_thread`). When a worker runs Python (rendering a JSON store
file) and the loop wants the GIL back, the loop waits for the worker to reach the end of its
switch interval, and that wait is loop lag, felt by every device and command. With 1,000
devices and a JSON store, the 10 ms ticker of ``bench/persistence.py`` was late by 6.1-6.5 ms
at the 99th percentile with 5 ms, and by 2.9-3.0 ms with 1 ms, at the same cycle rate.

The interval belongs to the process: :func:`keep_switches_short` shortens it while the
devices run (a program's own shorter interval is kept) and puts back what it found when
cancelled.
"""

from __future__ import annotations

import sys

import trio

SWITCH_INTERVAL = 0.001
"""Seconds a thread may keep the GIL from another that waits for it, while devices run."""


async def keep_switches_short(
    *, task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED
) -> None:
    """Hold the switch interval at most :data:`SWITCH_INTERVAL` until cancelled."""
    previous = sys.getswitchinterval()
    sys.setswitchinterval(min(previous, SWITCH_INTERVAL))
    task_status.started()
    try:
        await trio.sleep_forever()
    finally:
        sys.setswitchinterval(previous)
