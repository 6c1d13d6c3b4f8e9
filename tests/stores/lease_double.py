"""An in-memory shared store with leases, for unit tests of the lease keeper and the runtime.

``LeaseBoard`` plays the server: every claimant's lease per key, the epoch counter, and the
clock that decides expiry (the test's: a ``MockClock`` under the autojump clock). It is run
through the same contract tests as the PostgreSQL and Redis leases (``test_lease.py``).
"""

from __future__ import annotations

import datetime
from collections.abc import Callable, Mapping, Sequence

import attrs

from triolette import MemoryStore
from triolette.core.errors import LeaseHeldError, LeaseLostError, StoreFencedError
from triolette.stores.lease import LeaseOwner


@attrs.define
class _Grant:
    owner: LeaseOwner
    since: datetime.datetime
    expires: float
    epoch: int


class LeaseBoard:
    """The leases of every key, as the server of a shared store keeps them."""

    def __init__(self, clock: Callable[[], float]) -> None:
        self.clock = clock
        self.grants: dict[str, _Grant] = {}
        self.epochs: dict[str, int] = {}  # the newest epoch per key (never expires)
        self.counter = 0
        self.renewals = 0
        self.data: dict[str, str] = {}
        """The stored texts every store on this board shares."""
        self.failure: Exception | None = None
        """Raised by every lease call while set (a lost server)."""

    def expire(self, keys: Sequence[str]) -> None:
        for key in keys:
            if key in self.grants:
                self.grants[key].expires = -1.0

    def check(self) -> None:
        if self.failure is not None:
            raise self.failure


class MemoryLease:
    """A :class:`~triolette.stores.lease.Lease` on a :class:`LeaseBoard`."""

    location = "memory"

    def __init__(self, board: LeaseBoard, owner: LeaseOwner, seconds: float) -> None:
        self.board = board
        self.owner = owner
        self.seconds = seconds
        self.keys: list[str] = []
        self.epoch: int | None = None

    def claim(self, keys: Sequence[str]) -> int:
        board, now = self.board, self.board.clock()
        board.check()
        keys = sorted(set(keys))
        for key in keys:
            grant = board.grants.get(key)
            if grant is not None and grant.expires > now and grant.owner != self.owner:
                since = grant.since.isoformat(timespec="seconds")
                raise LeaseHeldError(self.location, key, grant.owner.host, grant.owner.pid, since)
        board.counter += 1
        stamp = datetime.datetime.now(datetime.UTC)
        for key in keys:
            board.grants[key] = _Grant(self.owner, stamp, now + self.seconds, board.counter)
            board.epochs[key] = board.counter
        self.keys, self.epoch = keys, board.counter
        return board.counter

    def _ours(self) -> str | None:
        """The first key whose lease is not ours (expired ones still are, until claimed)."""
        for key in self.keys:
            grant = self.board.grants.get(key)
            if grant is None or grant.owner != self.owner or grant.epoch != self.epoch:
                return key
        return None

    def renew(self) -> None:
        board = self.board
        board.check()
        if self.epoch is None:
            raise LeaseLostError(self.location, "no lease was granted")
        lost = self._ours()
        if lost is not None:
            raise LeaseLostError(self.location, f"the lease of {lost!r} is no longer ours")
        for key in self.keys:
            board.grants[key].expires = board.clock() + self.seconds
        board.renewals += 1

    def release(self) -> None:
        self.board.check()
        if self.epoch is not None and self._ours() is None:
            for key in self.keys:
                del self.board.grants[key]

    def close(self) -> None:
        return


class LeasedMemoryStore(MemoryStore):
    """A :class:`MemoryStore` that shares a :class:`LeaseBoard` and fences its writes."""

    def __init__(self, board: LeaseBoard) -> None:
        super().__init__()
        self._memory = board.data
        self.board = board
        self.epoch: int | None = None
        self.refused = 0

    def open_lease(self, owner: LeaseOwner, seconds: float) -> MemoryLease:
        return MemoryLease(self.board, owner, seconds)

    def fence(self, epoch: int | None) -> None:
        self.epoch = epoch

    def save_encoded(self, texts: Mapping[str, str]) -> None:
        if self.epoch is not None:
            for key in texts:
                if self.board.epochs.get(key) != self.epoch:
                    self.refused += 1
                    raise StoreFencedError("memory", key, self.epoch)
        super().save_encoded(texts)
