"""TrioClock: the running trio clock as a :class:`~triolette.core.clock.ClockPort`."""

from __future__ import annotations

import trio


class TrioClock:
    """``now()`` is ``trio.current_time()``, ``sleep`` is ``trio.sleep``.

    So under ``trio.testing.MockClock`` (or pytest-trio's ``autojump_clock``) it follows
    virtual time as every other timer of the app does. Both need a trio run
    (``RuntimeError`` otherwise); cancelling ``sleep`` cancels it.
    """

    def now(self) -> float:
        return trio.current_time()

    async def sleep(self, seconds: float) -> None:
        await trio.sleep(seconds)

    def __repr__(self) -> str:
        return "TrioClock()"
