"""A telemetry device's cron schedule as ticks, for the same loop that follows a metronome.

The next fire time is computed on the wall clock (local time) and waited for on trio's clock,
in the device's own task, reading the wall clock again at least every minute. A fire time is
never used twice, even if the wall clock steps back; a cycle that overran fire times skips
them (counted like missed metronome ticks), it does not run them in a burst.

Under a virtual clock (trio's ``MockClock``, such as pytest-trio's ``autojump_clock``) the
wall clock is read once and then moved with trio's clock, so a test of a cron device runs
its fire times in virtual time.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from datetime import datetime, timedelta

import trio

from triolette.core.cron import CronSchedule

logger = logging.getLogger("triolette.device")

RECHECK = 60.0
"""A long wait reads the wall clock again this often, so a clock step (NTP) shifts no fire
time by more than this."""


def wall_clock() -> datetime:
    """The wall clock as a naive local datetime (tests replace it with one on trio's clock)."""
    return datetime.now()


class CronTicks:
    """Ticks at the fire times of ``schedule``; tick 0 is the start.

    ``now`` reads the wall clock as a naive local datetime (default: :func:`wall_clock`,
    or under a virtual clock the time it said at the start moved by trio's clock).
    """

    def __init__(
        self, schedule: CronSchedule, device: str, now: Callable[[], datetime] | None = None
    ) -> None:
        self.schedule = schedule
        self.device = device
        self.fired = 0
        self._now = now or _virtual_wall_clock() or wall_clock
        self._last = self._now()  # the start, then the last fire time used

    async def next_tick(self, after: int) -> int:
        """Sleep until the next fire time and return its tick number. Cancellable.

        Sleeps forever (after one WARNING) once the schedule has no fire time left (its year
        field is over).
        """
        now = self._now()
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
        while (left := fire.timestamp() - now.timestamp()) > 0:  # local time rules (DST)
            await trio.sleep(min(left, RECHECK))
            now = self._now()
        self._last = fire
        self.fired = max(self.fired, after) + 1 + missed
        return self.fired


def _virtual_wall_clock() -> Callable[[], datetime] | None:
    """Under trio's MockClock, a wall clock that moves with it; ``None`` under a real clock."""
    from trio.testing import MockClock

    if not isinstance(trio.lowlevel.current_clock(), MockClock):
        return None
    start, started = wall_clock(), trio.current_time()
    return lambda: start + timedelta(seconds=trio.current_time() - started)
