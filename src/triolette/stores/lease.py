"""Ownership leases on a shared store: who holds a device, and the protocol a backend offers.

A bridge that writes devices into a shared store (PostgreSQL, Redis) first claims them with a
lease that it renews. Each grant carries an *epoch* that only grows; the store carries the
epoch of its bridge's lease with every write (:meth:`LeasedStore.fence`) and the server
refuses a write whose epoch is no longer the newest for one of its devices. So a holder that
was paused past its lease (SIGSTOP, a frozen VM) cannot write once another bridge took over,
whatever its own clock says.

Local file stores need no lease: their exclusive file lock already makes one process the only
writer (:class:`~triolette.StoreLockedError`).
"""

from __future__ import annotations

import datetime
import os
import socket
import uuid
from collections.abc import Sequence
from typing import Protocol, runtime_checkable

import attrs


@attrs.frozen
class LeaseOwner:
    """Who claims a lease: host name, process id, and a token unique to this claimant."""

    host: str
    pid: int
    token: str = attrs.field(factory=lambda: uuid.uuid4().hex, repr=False)

    @classmethod
    def here(cls) -> LeaseOwner:
        """This process on this host, with a new token."""
        return cls(socket.gethostname(), os.getpid())


def describe_since(moment: datetime.datetime) -> str:
    """A lease's grant time as an operator reads it: UTC, to the second."""
    return moment.astimezone(datetime.UTC).isoformat(timespec="seconds")


class Lease(Protocol):
    """One claimant's lease on a set of devices; synchronous (call it from a worker thread).

    ``claim`` takes every key or none and returns the epoch granted; it raises
    :class:`~triolette.LeaseHeldError` naming the holder when another claimant's lease on
    one of the keys has not expired. ``renew`` extends the lease by its length from the
    server's now; it raises :class:`~triolette.LeaseLostError` when the lease is no longer
    this claimant's, and ``OSError`` (``ConnectionError``) when the server cannot be reached:
    the caller retries until its own deadline. ``release`` ends the lease at once (so a
    standby takes over without waiting); ``close`` closes the connection.
    """

    location: str
    seconds: float

    def claim(self, keys: Sequence[str]) -> int: ...

    def renew(self) -> None: ...

    def release(self) -> None: ...

    def close(self) -> None: ...


@runtime_checkable
class LeasedStore(Protocol):
    """A shared store that offers leases on its devices and fences its writes by epoch."""

    def open_lease(self, owner: LeaseOwner, seconds: float) -> Lease: ...

    def fence(self, epoch: int | None) -> None: ...
