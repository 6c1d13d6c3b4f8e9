"""Keeps a running app's long-lived heap out of the garbage collector's way.

CPython's full collection walks every tracked object. A bridge holds a large, steady heap
(actors, stores, tasks), and each QoS 1 round trip lets a few short-lived objects reach the
oldest generation, so at a thousand devices a full collection comes about once a second and
holds the event loop for as long as the walk of the whole heap takes (about 15 ms): the
worst command latency. ``gc.freeze()`` moves what exists into a generation the collector
skips, so a full collection then walks only what is younger.

:meth:`ServeHeap.keep_frozen` collects and freezes soon after the devices start. Later rounds, at
doubling intervals, collect and freeze only what is younger than the frozen heap (a walk of
the young objects alone); every :data:`REFREEZE_MAX` a full round thaws first, so cyclic
garbage among frozen objects (what a restarted device leaves behind) is reclaimed then, and
that round is the one walk of the whole heap in the period.

While the devices run, the youngest generation is collected after :data:`YOUNG_THRESHOLD`
allocations instead of CPython's 700: each QoS 1 cycle allocates a few dozen tracked objects,
most freed by their reference count within the cycle, so at 20,000 cycles a second the default
ran two thousand young collections a second over objects still in flight (measured at 1,000
devices: 11 % more cycles a second and a lower loop lag with the larger threshold).

A stop cancels every device at once, and each cancelled task leaves cyclic garbage (its
``Cancelled`` and traceback). Collected while the final snapshots wait, that garbage, and a
round of the keeper falling in the stop, took about a third of a 10,000-device stop. So a
serve's :class:`ServeHeap` ends the rounds and pauses the collector when the stop is
requested, and thaws and resumes it once the stop is over; the next collection after that
reclaims the lot.

The collector, its thresholds and the frozen heap belong to the process: two apps served in
one process share them, and each serve puts back what it found when it ends.
"""

from __future__ import annotations

import gc

import trio

FIRST_FREEZE = 1.0
"""Seconds after the start of the devices until the first freeze."""
REFREEZE_MAX = 600.0
"""The longest time between two rounds, and the time between two full rounds."""
YOUNG_THRESHOLD = 7000
"""Allocations between two collections of the youngest generation while devices run."""


def refreeze() -> None:
    """Thaw, collect everything, and freeze what survived."""
    gc.unfreeze()
    gc.collect()
    gc.freeze()


def freeze_younger() -> None:
    """Collect what is not frozen (the collector skips the frozen heap), freeze the rest."""
    gc.collect()
    gc.freeze()


class ServeHeap:
    """The heap through one serve: frozen while its devices run, left alone while it stops.

    :meth:`keep_frozen` (a companion of the devices) raises the youngest generation's
    threshold to :data:`YOUNG_THRESHOLD` (a program's own higher one, or 0, is kept) and runs
    the freezing rounds; :meth:`stopping` pauses the cyclic collector (if it was enabled: one
    the program disabled stays so); :meth:`release` thaws the heap and puts the collector
    back as it found it. Each idempotent. The memory the pause can hold is bounded by the
    garbage the stop makes (a few kilobytes per device).
    """

    def __init__(self) -> None:
        self._paused = False
        self._thresholds: tuple[int, int, int] | None = None

    async def keep_frozen(
        self, *, task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED
    ) -> None:
        """Freeze the heap at :data:`FIRST_FREEZE`, then what is younger at doubling
        intervals, and all of it again every :data:`REFREEZE_MAX`.

        Runs until cancelled, and leaves the heap frozen and the threshold raised until
        :meth:`release`. A full round holds the loop for one walk of the whole heap; the
        others walk the objects made since the last round.
        """
        if self._thresholds is None:
            self._thresholds = young, middle, old = gc.get_threshold()
            if 0 < young < YOUNG_THRESHOLD:
                gc.set_threshold(YOUNG_THRESHOLD, middle, old)
        task_status.started()
        await trio.sleep(FIRST_FREEZE)
        refreeze()
        delay, since_full = FIRST_FREEZE, 0.0
        while True:
            delay = min(delay * 2, REFREEZE_MAX)
            await trio.sleep(delay)
            since_full += delay
            if since_full >= REFREEZE_MAX:
                refreeze()
                since_full = 0.0
            else:
                freeze_younger()

    def stopping(self) -> None:
        if not self._paused and gc.isenabled():
            gc.disable()
            self._paused = True

    def release(self) -> None:
        gc.unfreeze()
        if self._thresholds is not None:
            gc.set_threshold(*self._thresholds)
            self._thresholds = None
        if self._paused:
            self._paused = False
            gc.enable()
