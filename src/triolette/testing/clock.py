"""FakeClock: a settable test clock on trio's own ``MockClock``, readable as a ``ClockPort``."""

from __future__ import annotations

import math

import trio
import trio.testing


class FakeClock:
    """Virtual time for a test: ``now()`` starts at 0 and moves only when told (or autojumps).

    It wraps a :class:`trio.testing.MockClock` (:attr:`trio_clock`), which must be the clock of
    the trio run the app serves in for the app's timers to follow it: ``AppHarness`` makes it
    so when it starts the run itself (an asyncio test), and the ``fake_clock`` fixture of
    triolette's pytest plugin wraps pytest-trio's ``mock_clock``. ``advance(seconds)`` (also
    ``jump``) moves time at once: every timer due by then fires at the next scheduling point,
    all together; ``AppHarness.advance_time`` steps through them in order instead.
    ``autojump=True`` lets trio skip idle time by itself (as ``autojump_clock`` does).

    It satisfies :class:`~triolette.core.clock.ClockPort`: ``now()`` and ``await sleep(s)``
    (a ``trio.sleep`` on the run's clock).
    """

    def __init__(
        self, trio_clock: trio.testing.MockClock | None = None, *, autojump: bool = False
    ) -> None:
        self.trio_clock = trio_clock if trio_clock is not None else trio.testing.MockClock()
        if autojump:
            self.trio_clock.autojump_threshold = 0
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

    @property
    def autojumps(self) -> bool:
        """Whether trio skips idle time by itself on this clock."""
        return not math.isinf(self.trio_clock.autojump_threshold)

    async def sleep(self, seconds: float) -> None:
        """Sleep ``seconds`` of the current trio run's clock (this one, when it is the run's)."""
        await trio.sleep(seconds)


def _nothing() -> None:
    pass
