"""A telemetry device's cron schedule as ticks, for the same loop that follows a metronome.

Fire times are in local wall-clock time; they are waited for on trio's clock, in the
device's own task. The wall time is read at the start and then carried forward by trio's
clock, so fire times come at the right moments under a virtual clock too (a test with
pytest-trio's ``autojump_clock``). The wall clock is read again at each fire time and at
least every :data:`RECHECK` seconds of a wait: when it is found ahead (the clock was stepped
forward, the machine resumed from suspend), the schedule catches up. A clock stepped back is
not followed: a fire time is never used twice. A cycle that overran fire times skips them
(counted like missed metronome ticks), it does not run them in a burst.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from datetime import datetime

import trio

from triolette.core.cron import CronSchedule

logger = logging.getLogger("triolette.device")

RECHECK = 60.0
"""A long wait reads the wall clock again this often, so a clock stepped forward delays no
fire time by more than this."""
STEP = 1.0
"""Seconds the wall clock must be ahead of the carried time to count as stepped forward."""


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
        self._read = now
        self._anchor = (self._read_wall(), trio.current_time())
        self._last = datetime.fromtimestamp(self._anchor[0])  # the start, then the last fire

    def _read_wall(self) -> float:
        return (self._read or wall_clock)().timestamp()

    def _now(self) -> float:
        """The wall time (seconds since the epoch) carried by trio's clock; caught up if the
        wall clock is ahead."""
        wall, at = self._anchor
        carried = wall + trio.current_time() - at
        read = self._read_wall()
        if read - carried > STEP:
            self._anchor = (read, trio.current_time())
            return read
        return carried

    async def next_tick(self, after: int) -> int:
        """Sleep until the next fire time and return its tick number. Cancellable.

        Sleeps forever (after one WARNING) once the schedule has no fire time left (its year
        field is over).
        """
        now = self._now()
        fire = self.schedule.next_fire_after(max(datetime.fromtimestamp(now), self._last))
        if fire is None:
            logger.warning("%s: its cron schedule fires no more", self.device)
            await trio.sleep_forever()
        assert fire is not None
        missed = 0  # fire times that passed while the last cycle ran
        probe = self.schedule.next_fire_after(self._last)
        while probe is not None and probe < fire and missed < 1000:
            missed += 1
            probe = self.schedule.next_fire_after(probe)
        due = fire.timestamp()  # local time to absolute time: a DST change is accounted for
        while (left := due - now) > 0:
            await trio.sleep(min(left, RECHECK))
            now = self._now()
        self._last = fire
        self.fired = max(self.fired, after) + 1 + missed
        return self.fired
