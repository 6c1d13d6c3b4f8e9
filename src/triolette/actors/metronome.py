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
ON_TIME = 0.01
"""A cycle that overruns the next tick by less than this share of the interval is on time."""


class Metronome:
    """Ticks every ``interval`` seconds from its start; devices :meth:`wait` for the next one.

    Run it with ``await nursery.start(metronome.run)`` before the devices that follow it.
    ``fired`` is the number of the last tick released (0: the start).
    """

    def __init__(self, interval: float) -> None:
        self.interval = interval
        self._grace = interval * ON_TIME
        self.fired = 0
        self.start = 0.0
        self._lot = trio.lowlevel.ParkingLot()

    def due(self, tick: int) -> float:
        """When tick number ``tick`` is (or was) due."""
        return self.start + tick * self.interval

    async def run(self, *, task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED) -> None:
        """Tick until cancelled."""
        self.start = trio.current_time()
        task_status.started()
        while True:
            tick = self.fired + 1
            now = trio.current_time()
            if self.due(tick) < now:  # the loop itself fell behind: skip, do not burst
                tick = int((now - self.start) // self.interval) + 1
            await trio.sleep_until(self.due(tick))
            self.fired = tick
            # Devices that finish this cycle park for the next tick, not in the lot released now.
            releasing, self._lot = self._lot, trio.lowlevel.ParkingLot()
            while releasing.unpark(count=RELEASE_GROUP) and releasing:
                await trio.lowlevel.checkpoint()

    async def next_tick(self, after: int) -> int:
        """Return the first tick after tick ``after``, waiting for it if it has not fired.

        A tick that fired less than :data:`ON_TIME` of an interval ago counts as not missed:
        the timer and a cycle ending at the same moment wake in one scheduling round, in
        either order. Cancellable.
        """
        if self.fired > after and trio.current_time() - self.due(self.fired) <= self._grace:
            await trio.lowlevel.checkpoint()
            return self.fired
        await self._lot.park()
        return self.fired

    @property
    def waiting(self) -> int:
        """How many devices wait for the next tick."""
        return len(self._lot)
