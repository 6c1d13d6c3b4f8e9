"""A telemetry device's cron schedule as ticks, for the same loop that follows a metronome.

The next fire time is computed on the wall clock (local time) and slept for on trio's clock,
one sleep per cycle, in the device's own task. A fire time is never used twice, even if the
wall clock steps back; a cycle that overran fire times skips them (counted like missed
metronome ticks), it does not run them in a burst.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from datetime import datetime

import trio

from triolette.core.cron import CronSchedule

logger = logging.getLogger("triolette.device")


def wall_clock() -> datetime:
    """The wall clock as a naive local datetime (tests replace it with one on trio's clock)."""
    return datetime.now()


class CronTicks:
    """Ticks at the fire times of ``schedule``; tick 0 is the start.

    ``now`` reads the wall clock as a naive local datetime (default: :func:`wall_clock`).
    """

    def __init__(
        self, schedule: CronSchedule, device: str, now: Callable[[], datetime] | None = None
    ) -> None:
        self.schedule = schedule
        self.device = device
        self.fired = 0
        self._now = now
        self._last = (now or wall_clock)()  # the start, then the last fire time used

    async def next_tick(self, after: int) -> int:
        """Sleep until the next fire time and return its tick number. Cancellable.

        Sleeps forever (after one WARNING) once the schedule has no fire time left (its year
        field is over).
        """
        now = (self._now or wall_clock)()
        fire = self.schedule.next_fire_after(max(now, self._last))
        if fire is None:
            logger.warning("%s: its cron schedule fires no more", self.device)
            await trio.sleep_forever()
        assert fire is not None
        missed = 0  # fire times that passed while the last cycle ran
        probe = self.schedule.next_fire_after(self._last)
        while probe is not None and probe < fire and missed < 1000:
            missed += 1
            probe = self.schedule.next_fire_after(probe)
        await trio.sleep(max(0.0, fire.timestamp() - now.timestamp()))  # local time rules
        self._last = fire
        self.fired = max(self.fired, after) + 1 + missed
        return self.fired
