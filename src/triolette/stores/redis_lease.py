"""RedisLease: device leases as Redis hashes that expire, and an epoch key per device.

``PREFIXlease:KEY`` is a hash (``token``, ``host``, ``pid``, ``since``, ``epoch``) that the
server expires after the lease length (``PEXPIRE``: the server's clock decides). A claim
takes every key whose lease is gone or ours, in one Lua script, or none; it ``INCR``s
``PREFIXlease-epoch`` and writes the new epoch to ``PREFIXepoch:KEY``, which never expires
and which the store's write script checks (see :meth:`RedisStore.fence
<triolette.stores.RedisStore.fence>`). Renewal and release are Lua scripts that check the
holder's token first, so one claimant never extends or ends another's lease.
"""

from __future__ import annotations

import datetime
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

import redis

from triolette.core.errors import LeaseHeldError, LeaseLostError
from triolette.stores.lease import LeaseOwner, describe_since

if TYPE_CHECKING:
    from triolette.stores.redis import RedisStore

# KEYS: n lease hashes, n epoch keys, the epoch counter. ARGV: token, host, pid, milliseconds.
_CLAIM = """
local n = (#KEYS - 1) / 2
for i = 1, n do
  local holder = redis.call('HGET', KEYS[i], 'token')
  if holder and holder ~= ARGV[1] then
    local h = redis.call('HMGET', KEYS[i], 'host', 'pid', 'since')
    return {'held', i, h[1], h[2], h[3]}
  end
end
local epoch = redis.call('INCR', KEYS[#KEYS])
local now = redis.call('TIME')
local stamp = now[1] .. string.format('%06d', tonumber(now[2]))
for i = 1, n do
  redis.call('DEL', KEYS[i])
  redis.call('HSET', KEYS[i], 'token', ARGV[1], 'host', ARGV[2], 'pid', ARGV[3],
    'since', stamp, 'epoch', epoch)
  redis.call('PEXPIRE', KEYS[i], ARGV[4])
  redis.call('SET', KEYS[n + i], epoch)
end
return {'granted', epoch}
"""
# KEYS: the lease hashes. ARGV: token, epoch, then milliseconds (renew) or nothing (release).
# Returns 0, or the index of the first lease that is not ours (nothing changed then).
_RENEW = """
for i = 1, #KEYS do
  local v = redis.call('HMGET', KEYS[i], 'token', 'epoch')
  if v[1] ~= ARGV[1] or v[2] ~= ARGV[2] then return i end
end
for i = 1, #KEYS do
  if ARGV[3] then redis.call('PEXPIRE', KEYS[i], ARGV[3]) else redis.call('DEL', KEYS[i]) end
end
return 0
"""


class RedisLease:
    """A lease on devices of a :class:`~triolette.stores.RedisStore` prefix (see
    :class:`~triolette.stores.lease.Lease`), on a connection of its own; a command the
    server does not answer within a third of the lease fails (``ConnectionError``)."""

    def __init__(self, store: RedisStore, owner: LeaseOwner, seconds: float) -> None:
        from triolette.stores.redis import RedisStore

        self.seconds = seconds
        self.owner = owner
        self._store = store
        self._db = RedisStore(
            store._url,
            prefix=store.prefix,
            timeout=seconds / 3,
            connect_timeout=min(store.connect_timeout, seconds),
            client_name=f"{store.client_name}-lease",
        )
        self.location = store.location
        self._keys: list[str] = []
        self.epoch: int | None = None

    def __repr__(self) -> str:
        return f"RedisLease({self.location!r}, epoch={self.epoch})"

    def _run(self, *args: Any) -> Any:
        try:
            return self._db._call(*args)
        except redis.RedisError as error:
            raise ConnectionError(f"lease on {self.location}: {error}") from error

    def claim(self, keys: Sequence[str]) -> int:
        """Lease every key of ``keys`` or none; return the epoch granted."""
        keys = sorted(set(keys))
        store, owner = self._store, self.owner
        reply = self._run(
            "EVAL",
            _CLAIM,
            2 * len(keys) + 1,
            *map(store.lease_key, keys),
            *map(store.epoch_key, keys),
            f"{store.prefix}lease-epoch",
            owner.token,
            owner.host,
            owner.pid,
            round(self.seconds * 1000),
        )
        if reply[0] == "held":
            _, index, host, pid, stamp = reply
            since = datetime.datetime.fromtimestamp(int(stamp) / 1e6, datetime.UTC)
            device = keys[int(index) - 1]
            raise LeaseHeldError(self.location, device, host, int(pid), describe_since(since))
        self._keys, self.epoch = keys, int(reply[1])
        return self.epoch

    def _check(self, *extra: object) -> int:
        keys = [self._store.lease_key(key) for key in self._keys]
        token = self.owner.token
        return int(self._run("EVAL", _RENEW, len(keys), *keys, token, self.epoch, *extra))

    def renew(self) -> None:
        """Extend the lease by its length from now (the server's clock)."""
        if self.epoch is None:
            raise LeaseLostError(self.location, "no lease was granted")
        lost = self._check(round(self.seconds * 1000))
        if lost:
            raise LeaseLostError(
                self.location,
                f"the lease of {self._keys[lost - 1]!r} is no longer ours (epoch {self.epoch})",
            )

    def release(self) -> None:
        """End the lease now; a standby may take over at once."""
        if self.epoch is not None:
            self._check()

    def close(self) -> None:
        self._db.close()
