"""FakeClock: a settable test clock built on trio's ``MockClock``, readable as a ``ClockPort``."""

from __future__ import annotations

import trio
import trio.testing


class FakeClock(trio.abc.Clock):
    """Virtual time for a test: ``now()`` starts at 0 and moves only by :meth:`advance`.

    A trio clock (it keeps its time in a :class:`trio.testing.MockClock`, :attr:`trio_clock`),
    so it can be the clock of the run the app serves in, which the app's timers must follow:
    ``AppHarness`` runs an asyncio test's app on it, and pytest-trio runs a trio test on it when
    the test takes the ``fake_clock`` fixture (of triolette's pytest plugin). Around an existing
    ``MockClock`` (``FakeClock(autojump_clock)``) it reads and moves that clock.

    ``advance(seconds)`` (also ``jump``) moves time at once: every timer due by then fires at
    the next scheduling point, all together; ``AppHarness.advance_time`` steps through them in
    order instead. It satisfies :class:`~triolette.core.clock.ClockPort`: ``now()`` and
    ``await sleep(s)`` (a ``trio.sleep``, on the run's clock).
    """

    def __init__(self, trio_clock: trio.testing.MockClock | None = None) -> None:
        self.trio_clock = trio_clock if trio_clock is not None else trio.testing.MockClock()
        self._wake: trio.lowlevel.TrioToken | None = None

    def __repr__(self) -> str:
        return f"<FakeClock at {self.now():g} s>"

    def now(self) -> float:
        """The virtual time, in seconds (0 when the clock was made)."""
        return self.trio_clock.current_time()

    def advance(self, seconds: float) -> None:
        """Move virtual time forward by ``seconds`` (``ValueError`` if negative).

        Callable from the test's trio code, or from asyncio code while the harness runs the
        app there (the trio run is then woken to see its timers).
        """
        self.trio_clock.jump(seconds)
        if self._wake is not None:
            try:
                self._wake.run_sync_soon(_nothing)
            except trio.RunFinishedError:
                self._wake = None

    jump = advance

    async def sleep(self, seconds: float) -> None:
        """Sleep ``seconds`` of the current trio run's clock (this one, when it is the run's)."""
        await trio.sleep(seconds)

    # -- trio.abc.Clock ----------------------------------------------------------------------------

    def start_clock(self) -> None:
        self.trio_clock.start_clock()

    def current_time(self) -> float:
        return self.trio_clock.current_time()

    def deadline_to_sleep_time(self, deadline: float) -> float:
        return self.trio_clock.deadline_to_sleep_time(deadline)


def _nothing() -> None:
    pass
