"""Keeps a running app's long-lived heap out of the garbage collector's way.

CPython's full collection walks every tracked object. A bridge holds a large, steady heap
(actors, stores, tasks), and each QoS 1 round trip lets a few short-lived objects reach the
oldest generation, so at a thousand devices a full collection comes about once a second and
holds the event loop for as long as the walk of the whole heap takes (about 15 ms): the
worst command latency. ``gc.freeze()`` moves what exists into a generation the collector
skips, so a full collection then walks only what is younger.

:func:`keep_heap_frozen` collects and freezes soon after the devices start, then again at
doubling intervals up to :data:`REFREEZE_MAX`, each time thawing first: cyclic garbage among
frozen objects (what a restarted device leaves behind) is reclaimed at the next round, and
that round is the one full walk of the period. When the app stops, everything is thawed.
"""

from __future__ import annotations

import gc

import trio

FIRST_FREEZE = 1.0
"""Seconds after the start of the devices until the first freeze."""
REFREEZE_MAX = 600.0
"""The longest time between two rounds of thaw, collect and freeze."""


async def keep_heap_frozen(
    *, task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED
) -> None:
    """Freeze the heap at :data:`FIRST_FREEZE` and again at doubling intervals; thaw on exit.

    Runs until cancelled; each round holds the loop for one full collection.
    """
    task_status.started()
    delay = FIRST_FREEZE
    try:
        while True:
            await trio.sleep(delay)
            refreeze()
            delay = min(delay * 2, REFREEZE_MAX)
    finally:
        gc.unfreeze()


def refreeze() -> None:
    """Thaw, collect everything, and freeze what survived."""
    gc.unfreeze()
    gc.collect()
    gc.freeze()
