"""Shared drift-free ticks: one timer per interval, however many devices follow it.

A thousand devices each sleeping on their own deadline cost a thousand timers, cancel scopes
and timeouts per period; here one task sleeps and wakes the waiting devices through a parking
lot. Tick N is due at ``start + N * interval``; a device whose cycle overran a tick waits for
the next one instead of running the missed ticks in a burst.

A tick releases its devices in groups of :data:`RELEASE_GROUP`, with a checkpoint between
groups: trio runs every ready task once per scheduling batch, so releasing a thousand devices
at once would hold every other task (a command, a sensor read with a deadline) for the whole
thousand cycles. In groups, other tasks get a turn every few dozen device cycles.
"""

from __future__ import annotations

import trio

RELEASE_GROUP = 25


class Metronome:
    """Ticks every ``interval`` seconds from its start; devices :meth:`wait` for the next one.

    Run it with ``await nursery.start(metronome.run)`` before the devices that follow it.
    """

    def __init__(self, interval: float) -> None:
        self.interval = interval
        self.tick = 0
        self.start: float | None = None
        self._lot = trio.lowlevel.ParkingLot()

    async def run(self, *, task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED) -> None:
        """Tick until cancelled."""
        start = self.start = trio.current_time()
        task_status.started()
        while True:
            self.tick += 1
            due = start + self.tick * self.interval
            now = trio.current_time()
            if due < now:  # the loop itself fell behind: skip, do not burst
                self.tick = int((now - start) // self.interval) + 1
                due = start + self.tick * self.interval
            await trio.sleep_until(due)
            # Devices that finish this cycle park for the next tick, not in the lot released now.
            releasing, self._lot = self._lot, trio.lowlevel.ParkingLot()
            while releasing.unpark(count=RELEASE_GROUP) and releasing:
                await trio.lowlevel.checkpoint()

    async def wait(self) -> int:
        """Wait for the next tick and return its number. Cancellable."""
        await self._lot.park()
        return self.tick

    @property
    def waiting(self) -> int:
        """How many devices wait for the next tick."""
        return len(self._lot)
