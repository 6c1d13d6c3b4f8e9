"""PostgresLease: device leases as rows of ``<table>_lease``, with an expiry the server computes.

Each row is ``(device, token, host, pid, since, expires, epoch)``; ``expires`` is always the
server's ``now()`` plus the lease length, so only the server's clock matters. Each grant takes
a new epoch from the sequence ``<table>_epoch``; the store's writes check it (see
:meth:`PostgresStore.fence <triolette.stores.PostgresStore.fence>`).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import psycopg
from psycopg import sql

from triolette.core.errors import LeaseHeldError, LeaseLostError
from triolette.stores.lease import LeaseOwner, describe_since
from triolette.stores.postgres import PostgresStore

# Takes every key whose lease expired (or is ours), all in one statement, only when none is
# held by another; a row another claimant inserted meanwhile makes the count fall short, and
# the claim is then undone (release).
_CLAIM = """WITH held AS (
  SELECT device FROM {lease}
  WHERE device = ANY(%(keys)s) AND expires > now() AND token <> %(token)s FOR UPDATE
), granted AS (
  SELECT nextval(%(sequence)s::regclass) AS epoch WHERE NOT EXISTS (SELECT 1 FROM held)
), claimed AS (
  INSERT INTO {lease} AS l (device, token, host, pid, since, expires, epoch)
  SELECT d, %(token)s, %(host)s, %(pid)s, now(), now() + %(ms)s * interval '1 millisecond', epoch
  FROM unnest(%(keys)s::text[]) AS d, granted
  ON CONFLICT (device) DO UPDATE SET token = EXCLUDED.token, host = EXCLUDED.host,
    pid = EXCLUDED.pid, since = EXCLUDED.since, expires = EXCLUDED.expires,
    epoch = EXCLUDED.epoch
  WHERE l.expires <= now() OR l.token = EXCLUDED.token
  RETURNING device
)
SELECT (SELECT epoch FROM granted), (SELECT count(*) FROM claimed)"""
_HOLDER = """SELECT device, host, pid, since FROM {lease}
WHERE device = ANY(%(keys)s) AND token <> %(token)s AND expires > now() ORDER BY device LIMIT 1"""
_RENEW = """UPDATE {lease} SET expires = now() + %(ms)s * interval '1 millisecond'
WHERE device = ANY(%(keys)s) AND token = %(token)s AND epoch = %(epoch)s RETURNING device"""
_RELEASE = """UPDATE {lease} SET expires = now()
WHERE device = ANY(%(keys)s) AND token = %(token)s AND epoch = %(epoch)s"""


class PostgresLease:
    """A lease on devices of a :class:`~triolette.stores.PostgresStore` table (see
    :class:`~triolette.stores.lease.Lease`), on a connection of its own so that renewals
    never wait behind the store's writes. A statement the server does not answer within a
    third of the lease fails (``ConnectionError``), so a renewal is tried again in time."""

    def __init__(
        self,
        url: str,
        table: str,
        owner: LeaseOwner,
        seconds: float,
        *,
        connect_timeout: float = 5.0,
    ) -> None:
        self.seconds = seconds
        self.owner = owner
        self._db = PostgresStore(
            url, table=table, timeout=seconds / 3, connect_timeout=min(connect_timeout, seconds)
        )
        self.location = self._db.location
        names = {"lease": sql.Identifier(self._db.lease_table)}
        self._sequence = '"' + f"{table}_epoch".replace('"', '""') + '"'
        self._sql = {
            name: sql.SQL(text).format(**names)
            for name, text in (
                ("claim", _CLAIM),
                ("holder", _HOLDER),
                ("renew", _RENEW),
                ("release", _RELEASE),
            )
        }
        self._keys: list[str] = []
        self.epoch: int | None = None

    def __repr__(self) -> str:
        return f"PostgresLease({self.location!r}, epoch={self.epoch})"

    def _run(self, name: str, **params: Any) -> list[tuple[Any, ...]]:
        owner = self.owner
        base = {
            "token": owner.token,
            "ms": round(self.seconds * 1000),
            "epoch": self.epoch,
            "sequence": self._sequence,
        }
        try:
            return self._db._execute(self._sql[name], {**base, **params})
        except psycopg.Error as error:
            raise ConnectionError(f"lease on {self.location}: {error}") from error

    def claim(self, keys: Sequence[str]) -> int:
        """Lease every key of ``keys`` or none; return the epoch granted."""
        keys = sorted(set(keys))
        owner = self.owner
        rows = self._run("claim", keys=keys, host=owner.host, pid=owner.pid)
        epoch, count = rows[0]
        if epoch is not None and count == len(keys):
            self._keys, self.epoch = keys, int(epoch)
            return self.epoch
        if epoch is not None:  # another claimant won some row meanwhile: undo ours
            self._keys, self.epoch = keys, int(epoch)
            self.release()
        self.epoch = None
        held = self._run("holder", keys=keys)
        if not held:
            raise ConnectionError("another bridge claimed these devices at the same moment")
        device, host, pid, since = held[0]
        raise LeaseHeldError(self.location, device, host, pid, describe_since(since))

    def renew(self) -> None:
        """Extend the lease by its length from the server's now."""
        if self.epoch is None:
            raise LeaseLostError(self.location, "no lease was granted")
        renewed = {row[0] for row in self._run("renew", keys=self._keys)}
        if len(renewed) < len(self._keys):
            lost = sorted(set(self._keys) - renewed)[0]
            raise LeaseLostError(
                self.location, f"the lease of {lost!r} is no longer ours (epoch {self.epoch})"
            )

    def release(self) -> None:
        """End the lease now; a standby may take over at once."""
        if self.epoch is not None:
            self._run("release", keys=self._keys)

    def close(self) -> None:
        self._db.close()
