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
that round is the one full walk of the period.

A stop cancels every device at once, and each cancelled task leaves cyclic garbage (its
``Cancelled`` and traceback). Collected while the final snapshots wait, that garbage, and a
round of the keeper falling in the stop, took about a third of a 10,000-device stop. So a
serve's :class:`ServeHeap` ends the rounds and pauses the collector when the stop is
requested, and thaws and resumes it once the stop is over; the next collection after that
reclaims the lot.
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
    """Freeze the heap at :data:`FIRST_FREEZE` and again at doubling intervals.

    Runs until cancelled, and leaves the heap frozen: its owner thaws it (see
    :class:`ServeHeap`). Each round holds the loop for one full collection.
    """
    task_status.started()
    delay = FIRST_FREEZE
    while True:
        await trio.sleep(delay)
        refreeze()
        delay = min(delay * 2, REFREEZE_MAX)


def refreeze() -> None:
    """Thaw, collect everything, and freeze what survived."""
    gc.unfreeze()
    gc.collect()
    gc.freeze()


class ServeHeap:
    """The heap through one serve: frozen while it runs, left alone while it stops.

    :meth:`stopping` pauses the cyclic collector (if it was enabled: one the program disabled
    stays so); :meth:`release` thaws the heap and resumes what was paused. Both idempotent.
    The memory the pause can hold is bounded by the garbage the stop makes (a few kilobytes
    per device).
    """

    def __init__(self) -> None:
        self._paused = False

    def stopping(self) -> None:
        if not self._paused and gc.isenabled():
            gc.disable()
            self._paused = True

    def release(self) -> None:
        gc.unfreeze()
        if self._paused:
            self._paused = False
            gc.enable()
