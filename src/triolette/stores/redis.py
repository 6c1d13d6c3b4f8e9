"""RedisStore: device state as Redis hashes (the ``redis`` extra, redis-py).

Under a prefix (default ``triolette:``) each device is a hash ``PREFIXstate:KEY`` with the
fields ``data`` (the canonical JSON text), ``revision`` (one more on each write of the key)
``written_at`` (the server's time of that write, in microseconds since the epoch) and
``version`` (the state's layout version, absent for 0); the
set ``PREFIXdevices`` names every stored device. A batch is one Lua script: one round trip,
applied by the server as one atomic step.
"""

from __future__ import annotations

import datetime
import logging
from collections.abc import Iterable, Mapping
from typing import TYPE_CHECKING, Any
from urllib.parse import quote

import redis
from redis.backoff import NoBackoff
from redis.retry import Retry

from triolette.core.errors import (
    StoreConflictError,
    StoreFencedError,
    StoreOpenError,
    StoreWriteError,
)
from triolette.core.jsonstate import decode_state
from triolette.stores._remote import (
    Revisions,
    StoredRecord,
    checked_text,
    encode_batch,
    safe_url,
    take_query,
)

if TYPE_CHECKING:
    from triolette.stores.lease import LeaseOwner
    from triolette.stores.redis_lease import RedisLease

logger = logging.getLogger("triolette.stores")

# KEYS: the device set, one hash per device, then one epoch key per device. ARGV: the
# device names, their texts, their base revisions, then the lease epoch ('' without a lease),
# then their state versions ('' keeps the stored one).
# Redis does not roll a script back: every check comes before the first write, so a batch is
# written whole or not at all. Returns {'w', revision...}, {'c', name, found} or {'f', name}.
_WRITE = """
local count = (#KEYS - 1) / 2
local epoch = ARGV[3 * count + 1]
local want = {[1] = 'set'}
for i = 1, count + 1 do
  local kind = redis.call('TYPE', KEYS[i]).ok
  if kind ~= 'none' and kind ~= (want[i] or 'hash') then
    return redis.error_reply('the key ' .. KEYS[i] .. ' holds a ' .. kind .. ', not a triolette '
      .. (want[i] or 'hash') .. ': another program uses this prefix')
  end
end
if epoch ~= '' then
  for i = 1, count do
    if redis.call('GET', KEYS[count + 1 + i]) ~= epoch then return {'f', ARGV[i]} end
  end
end
for i = 1, count do
  local found = tonumber(redis.call('HGET', KEYS[i + 1], 'revision') or '0')
  if found ~= tonumber(ARGV[2 * count + i]) then return {'c', ARGV[i], found} end
end
local now = redis.call('TIME')
local stamp = now[1] .. string.format('%06d', tonumber(now[2]))
local out = {'w'}
for i = 1, count do
  redis.call('HSET', KEYS[i + 1], 'data', ARGV[count + i], 'written_at', stamp)
  out[i + 1] = redis.call('HINCRBY', KEYS[i + 1], 'revision', 1)
  local version = ARGV[3 * count + 1 + i]
  if version ~= '' then redis.call('HSET', KEYS[i + 1], 'version', version) end
  redis.call('SADD', KEYS[1], ARGV[i])
end
return out
"""
# KEYS: one hash per device. Returns data, revision per key ('' and 0 when absent; a key of
# another type is left to the write script, which names it).
_READ_SOME = """
local out = {}
for i = 1, #KEYS do
  out[2 * i - 1], out[2 * i] = '', '0'
  if redis.call('TYPE', KEYS[i]).ok == 'hash' then
    local v = redis.call('HMGET', KEYS[i], 'data', 'revision')
    out[2 * i - 1] = v[1] or ''
    out[2 * i] = v[2] or '0'
  end
end
return out
"""
# KEYS: the device set; ARGV: the hash prefix. Returns name, data, revision, written_at,
# version, ...
_READ = """
local out = {}
for _, name in ipairs(redis.call('SMEMBERS', KEYS[1])) do
  local v = redis.call('HMGET', ARGV[1] .. name, 'data', 'revision', 'written_at', 'version')
  if v[1] then
    out[#out + 1] = name
    out[#out + 1] = v[1]
    out[#out + 1] = v[2] or '0'
    out[#out + 1] = v[3] or '0'
    out[#out + 1] = v[4] or '0'
  end
end
return out
"""
# KEYS: one hash per device. Returns the version per key ('0' when absent or not recorded).
_READ_VERSIONS = """
local out = {}
for i = 1, #KEYS do
  out[i] = '0'
  if redis.call('TYPE', KEYS[i]).ok == 'hash' then
    out[i] = redis.call('HGET', KEYS[i], 'version') or '0'
  end
end
return out
"""
_LOST = (redis.ConnectionError, redis.TimeoutError)


def _describe_durability(config: Mapping[str, str] | None) -> str:
    if config is None:
        return "unknown (CONFIG GET was refused): ask the server's operator"
    appendonly, fsync = config.get("appendonly"), config.get("appendfsync")
    settings = f"appendonly={appendonly} appendfsync={fsync} save={config.get('save')!r}"
    if appendonly == "yes":
        cost = {
            "always": "a server crash loses no acknowledged batch",
            "everysec": "a server crash can lose about the last second of batches",
            "no": "a server crash can lose the batches the OS had not written (often 30 s)",
        }.get(str(fsync), "unknown")
    elif config.get("save"):
        cost = "a server crash or restart loses every batch since the last RDB snapshot"
    else:
        cost = "the server keeps nothing on disk: a server restart loses every state"
    return f"{settings}: {cost}"


class RedisStore:
    """Device state in Redis, through one connection (redis-py, no automatic retries).

    ``url`` is a redis-py URL (``redis://:password@host:6379/0``, ``rediss://`` for TLS); a
    ``prefix=...`` query parameter overrides ``prefix``; ``client_name`` names the connection
    in the server's ``CLIENT LIST``. The first call connects, loads
    nothing else, and logs (INFO) what a server crash can cost under the server's
    ``appendonly``/``appendfsync``/``save`` (``unknown`` when ``CONFIG GET`` is refused); if
    that first connection fails it raises :class:`~triolette.StoreOpenError` naming the URL
    without its password. Afterwards a lost connection or a server silent for ``timeout``
    seconds is an outage: :class:`~triolette.StoreWriteError` (a write) or ``ConnectionError``
    (a read), both ``OSError``, and the next call connects again. Used by one thread at a time.
    """

    def __init__(
        self,
        url: str,
        *,
        prefix: str = "triolette:",
        timeout: float = 10.0,
        connect_timeout: float = 5.0,
        client_name: str = "triolette",
    ) -> None:
        url, prefix_in_url = take_query(url, "prefix")
        self.prefix = prefix if prefix_in_url is None else prefix_in_url
        shown_prefix = "" if self.prefix == "triolette:" else f"?prefix={quote(self.prefix)}"
        self.location = safe_url(url) + shown_prefix
        """The URL without its password, for logs and errors."""
        self.timeout = timeout
        self.connect_timeout = connect_timeout
        self.client_name = client_name
        """The connection's name in the server's ``CLIENT LIST``."""
        self.durability: str | None = None
        """What a server crash can cost, as logged when the store first connected."""
        self._url = url
        self._client: redis.Redis | None = None
        self._opened = False
        self._devices = f"{self.prefix}devices"
        self._revisions = Revisions()
        self._writer_versions: dict[str, int] = {}
        self._epoch: int | None = None

    def __repr__(self) -> str:
        return f"RedisStore({self.location!r}, prefix={self.prefix!r})"

    def state_key(self, key: str) -> str:
        """The Redis key of ``key``'s hash."""
        return f"{self.prefix}state:{key}"

    def epoch_key(self, key: str) -> str:
        """The Redis key of the epoch of ``key``'s newest lease."""
        return f"{self.prefix}epoch:{key}"

    def lease_key(self, key: str) -> str:
        """The Redis key of ``key``'s lease (a hash that expires)."""
        return f"{self.prefix}lease:{key}"

    # -- connection -------------------------------------------------------------------------

    def _connection(self) -> redis.Redis:
        if self._client is not None:
            return self._client
        try:
            # A single-connection client connects here, in its constructor.
            client = redis.Redis.from_url(
                self._url,
                socket_timeout=self.timeout,
                socket_connect_timeout=self.connect_timeout,
                retry=Retry(NoBackoff(), 0),  # the persistence actor retries, with backoff
                single_connection_client=True,
                decode_responses=True,
                client_name=self.client_name,
            )
        except redis.RedisError as error:
            if not self._opened:
                raise StoreOpenError(self.location, str(error)) from None
            raise ConnectionError(f"cannot reach the store {self.location}: {error}") from error
        if not self._opened:
            try:
                client.ping()
                self.durability = _describe_durability(self._config(client))
            except redis.RedisError as error:
                client.close()
                raise StoreOpenError(self.location, str(error)) from None
            logger.info("store %s prefix %r: %s", self.location, self.prefix, self.durability)
            self._opened = True
        self._client = client
        return client

    @staticmethod
    def _config(client: redis.Redis) -> dict[str, str] | None:
        try:
            config = {**client.config_get("append*"), **client.config_get("save")}
        except redis.ResponseError:  # CONFIG is often renamed or forbidden on managed servers
            return None
        return {str(key): str(value) for key, value in config.items()}

    def _drop(self) -> None:
        client, self._client = self._client, None
        if client is not None:
            client.close()

    def _call(self, *args: Any) -> Any:
        """One command; a lost connection drops the client so the next call reconnects."""
        client = self._connection()
        try:
            return client.execute_command(*args)  # type: ignore[no-untyped-call]
        except _LOST:
            self._drop()
            raise

    # -- the Store protocol -----------------------------------------------------------------

    def load(self, key: str) -> dict[str, object] | None:
        """The state of ``key``, or ``None``; ``ConnectionError`` when the server is lost."""
        record = self._records([key]).get(key)
        return None if record is None else decode_state(record[1])

    def load_all(self) -> dict[str, dict[str, object]]:
        """Every stored state, keyed by device."""
        return {key: decode_state(text) for key, text in self.load_all_encoded().items()}

    def load_all_encoded(self) -> dict[str, str]:
        """:meth:`load_all` as canonical texts."""
        return {key: record.text for key, record in self.load_records().items()}

    def load_records(self) -> dict[str, StoredRecord]:
        """Every stored state with its revision and the time of its last write (one call)."""
        flat = self._read("EVAL", _READ, 1, self._devices, f"{self.prefix}state:")
        records = {}
        for i in range(0, len(flat), 5):
            key, text, revision, stamp, version = flat[i : i + 5]
            written = datetime.datetime.fromtimestamp(int(stamp) / 1e6, datetime.UTC)
            text = checked_text(key, text)
            records[key] = StoredRecord(text, int(revision), written, int(version))
        self._revisions.saw({key: r.revision or 0 for key, r in records.items()}, complete=True)
        return dict(sorted(records.items()))

    def _records(self, keys: list[str]) -> dict[str, tuple[int, str]]:
        """``(revision, text)`` of the stored ``keys`` (those that exist), revisions noted."""
        flat = self._read("EVAL", _READ_SOME, len(keys), *map(self.state_key, keys))
        records = {
            key: (int(flat[2 * i + 1]), checked_text(key, flat[2 * i]))
            for i, key in enumerate(keys)
            if flat[2 * i]
        }
        self._revisions.saw({key: records[key][0] if key in records else 0 for key in keys})
        return records

    def save(self, key: str, data: dict[str, object]) -> None:
        """Store ``data`` under ``key``; see :meth:`save_many`."""
        self.save_many({key: data})

    def save_many(self, states: Mapping[str, dict[str, object]]) -> None:
        """Store every entry in one script call.

        :class:`~triolette.StateNotJSONError` before anything is sent for a non-JSON state;
        :class:`~triolette.StoreWriteError` (an ``OSError``) when the server fails or is lost.
        """
        self.save_encoded(encode_batch(states))

    def save_encoded(self, texts: Mapping[str, str]) -> None:
        """:meth:`save_many` for canonical texts (``encode_state`` output).

        Revisions and fencing as in :meth:`PostgresStore.save_encoded
        <triolette.stores.PostgresStore.save_encoded>`: a stale base revision refuses the
        whole batch with :class:`~triolette.StoreConflictError`, a newer lease on one of its
        devices with :class:`~triolette.StoreFencedError`.
        """
        if not texts:
            return
        keys = list(texts)
        try:
            self._settle(keys)
            bases = [self._revisions.base(key) for key in keys]
            reply = self._call(
                "EVAL",
                _WRITE,
                2 * len(keys) + 1,
                self._devices,
                *map(self.state_key, keys),
                *map(self.epoch_key, keys),
                *keys,
                *texts.values(),
                *bases,
                "" if self._epoch is None else self._epoch,
                *(self._writer_versions.get(key, "") for key in keys),
            )
        except (*_LOST, ConnectionError) as error:
            # One cause whatever the phase of the outage (reset, silence, refused reconnect),
            # so that it is logged once; the client's words are in the __cause__ chain.
            self._revisions.attempted(texts)
            lost = ConnectionError(
                "the connection to the server was lost, "
                f"or it did not answer within {self.timeout:g} s"
            )
            raise StoreWriteError(self.location, keys, lost) from error
        except redis.RedisError as error:
            raise StoreWriteError(self.location, keys, error) from error
        if reply[0] == "f":
            assert self._epoch is not None
            raise StoreFencedError(self.location, reply[1], self._epoch)
        if reply[0] == "c":
            key = reply[1]
            raise StoreConflictError(self.location, key, self._revisions.base(key), int(reply[2]))
        self._revisions.wrote(dict(zip(keys, map(int, reply[1:]), strict=True)))

    def declare_versions(self, versions: Mapping[str, int]) -> None:
        """Record ``versions[key]`` in the hash field ``version`` with each later write of
        ``key``; a key never declared keeps the version it has."""
        self._writer_versions.update(versions)

    def load_versions(self, keys: Iterable[str]) -> dict[str, int]:
        """The stored version of each of ``keys`` (0 for one written without, or absent)."""
        keys = list(keys)
        if not keys:
            return {}
        flat = self._read("EVAL", _READ_VERSIONS, len(keys), *map(self.state_key, keys))
        return {key: int(version) for key, version in zip(keys, flat, strict=True)}

    def _settle(self, keys: list[str]) -> None:
        """Read the base revision of the keys never read, or whose last write was lost."""
        unknown = self._revisions.unknown(keys)
        if unknown:
            self._revisions.resolve(self._records(unknown), unknown)

    def fence(self, epoch: int | None) -> None:
        """Carry lease ``epoch`` with every later write (``None``: no lease, no fencing);
        see :meth:`PostgresStore.fence <triolette.stores.PostgresStore.fence>`."""
        self._epoch = epoch

    def open_lease(self, owner: LeaseOwner, seconds: float) -> RedisLease:
        """A lease on devices of this store, on a connection of its own (see
        :class:`~triolette.stores.redis_lease.RedisLease`)."""
        from triolette.stores.redis_lease import RedisLease

        return RedisLease(self, owner, seconds)

    def close(self) -> None:
        """Close the connection; the next call connects again."""
        self._drop()

    def _read(self, *args: Any) -> Any:
        try:
            return self._call(*args)
        except redis.RedisError as error:
            raise ConnectionError(f"cannot read the store {self.location}: {error}") from error
