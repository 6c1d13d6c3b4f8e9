"""Which snapshot of each device key was submitted, which is durable, and who waits for which."""

from __future__ import annotations

import contextlib

import trio

from triolette.core.errors import FlushIncompleteError


class Durability:
    """Sequence numbers of snapshots, and the ``flush`` waiters of the persistence actor.

    Every submitted snapshot gets the next number (:meth:`submitted`); a key is durable up to
    the highest number marked written (:meth:`mark_durable`). Runs on the trio thread only.
    """

    def __init__(self) -> None:
        self._seq = 0
        self._submitted: dict[str, int] = {}
        self._durable: dict[str, int] = {}
        self._waiters: list[tuple[str, int, trio.Event]] = []
        self._closed = False

    @property
    def waiting(self) -> int:
        """Tasks waiting in :meth:`wait` now."""
        return len(self._waiters)

    def submitted(self, key: str) -> int:
        """Number a new snapshot of ``key`` and return its number."""
        self._seq += 1
        self._submitted[key] = self._seq
        return self._seq

    def mark_durable(self, numbers: dict[str, int]) -> None:
        """Record the snapshots ``{key: number}`` as durable and wake whom that satisfies."""
        durable = self._durable
        for key, seq in numbers.items():  # per key on the trio thread: kept lean
            if seq > durable.get(key, 0):
                durable[key] = seq
        still = []
        for key, target, done in self._waiters:
            if durable.get(key, 0) >= target:
                done.set()
            else:
                still.append((key, target, done))
        self._waiters = still

    def latest(self, key: str) -> int:
        """The number of the newest snapshot of ``key`` submitted so far (0: none)."""
        return self._submitted.get(key, 0)

    def durable(self, key: str) -> int:
        """The number of the newest snapshot of ``key`` known to be durable (0: none)."""
        return self._durable.get(key, 0)

    def not_durable(self) -> list[str]:
        """The keys with a submitted snapshot that is not known to be durable, sorted."""
        durable = self._durable
        return sorted(key for key, seq in self._submitted.items() if durable.get(key, 0) < seq)

    async def wait(self, key: str | None = None) -> None:
        """Wait until every snapshot submitted so far (of ``key``, or of all) is durable.

        Cancelling the wait leaves no waiter behind. Raises
        :class:`~triolette.FlushIncompleteError` naming every key not durable when
        :meth:`close` came first.
        """
        targets = {
            each: self._submitted.get(each, 0)
            for each in ([key] if key is not None else list(self._submitted))
        }
        await self.wait_for(targets)

    async def wait_for(self, targets: dict[str, int]) -> None:
        """Wait until each key of ``targets`` is durable up to its number at least.

        Cancelling the wait leaves no waiter behind. Raises
        :class:`~triolette.FlushIncompleteError` as :meth:`wait` does.
        """
        for each, target in targets.items():
            if self._durable.get(each, 0) < target and not self._closed:
                waiter = (each, target, trio.Event())
                self._waiters.append(waiter)
                try:
                    await waiter[2].wait()
                finally:
                    with contextlib.suppress(ValueError):
                        self._waiters.remove(waiter)
        missing = [each for each, target in targets.items() if self._durable.get(each, 0) < target]
        if missing:
            raise FlushIncompleteError(missing, "the persistence actor stopped first")

    def close(self) -> None:
        """No snapshot becomes durable any more: wake every waiter, refuse to wait from now."""
        self._closed = True
        for _, _, done in self._waiters:
            done.set()
