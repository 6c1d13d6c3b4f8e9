"""The clock a handler reads: the :class:`ClockPort` protocol (``now()``, ``sleep()``).

A handler that asks for the time through a clock port can be tested on a settable clock
(``triolette.testing.FakeClock``) without patching anything global. The default one,
``triolette.actors.clock.TrioClock``, reads the running trio clock.
"""

from __future__ import annotations

from typing import Protocol, runtime_checkable


@runtime_checkable
class ClockPort(Protocol):
    """What code reads the time from: seconds on a monotonic scale, and a sleep on that scale.

    ``now()`` may start anywhere (it is not wall-clock time); only differences mean something.
    ``sleep(seconds)`` is a checkpoint of the run; cancelling it cancels the sleep.
    """

    def now(self) -> float: ...

    async def sleep(self, seconds: float) -> None: ...
