"""Coalescing groups: telemetry that shares one bus runs one member at a time, in order.

``@app.telemetry(..., group="bus1")`` members take turns: at most one of them runs a cycle at
any moment, so a serial bus sees one transaction after another. Members that wait together
(the members due at one tick) take their turns in registration order, one batch per tick:
each member registers its wish first and looks one scheduling round later, by which time
the others woken by the same tick have registered too.
"""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator

import trio


class GroupTurns:
    """The turn-taking of one group; ``order`` maps each member to its registration rank."""

    def __init__(self, order: dict[str, int]) -> None:
        self._order = order
        self._holder: str | None = None
        self._waiting: dict[str, trio.Event] = {}

    @contextlib.asynccontextmanager
    async def turn(self, member: str) -> AsyncIterator[None]:
        """Hold the group's turn for the block. Cancellable while waiting (the turn passes
        on); the turn is released when the block ends, however it ends."""
        woken = self._waiting[member] = trio.Event()
        try:
            await trio.lowlevel.checkpoint()  # let the members of the same tick line up
            if self._holder is None and self._next() == member:
                self._take(member)
            else:
                await woken.wait()
        except BaseException:
            self._waiting.pop(member, None)
            if self._holder == member:  # handed the turn, then cancelled
                self._holder = None
            self._pass_on()
            raise
        try:
            yield
        finally:
            self._holder = None
            self._pass_on()

    def _next(self) -> str | None:
        return min(self._waiting, key=self._order.__getitem__, default=None)

    def _take(self, member: str) -> None:
        self._holder = member
        self._waiting.pop(member).set()

    def _pass_on(self) -> None:
        member = self._next()
        if self._holder is None and member is not None:
            self._take(member)
