"""PostgresStore: device state as rows of one PostgreSQL table (the ``postgres`` extra, psycopg 3).

Each row is ``(key text primary key, data text, revision bigint, written_at timestamptz,
version integer)``.
``data`` is the canonical JSON text, so a state round-trips byte for byte (``jsonb`` would
reorder keys). ``revision`` grows by one on each write of the key and ``written_at`` is the
server's time of that write. ``version`` is the state's layout version (the writer's
``state_version``, 0 for a row written without one); a table made before it gets the column
when the store first connects.

Just over 400 lines: the schema, the one-statement batch (revision check, fencing and version
in the same statement) and the watchdog around psycopg's calls belong to one connection.
"""

from __future__ import annotations

import contextlib
import logging
import math
import os
import re
import socket
import threading
from collections.abc import Iterable, Mapping
from typing import TYPE_CHECKING, Any

import psycopg
from psycopg import sql

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
    from triolette.stores.postgres_lease import PostgresLease

logger = logging.getLogger("triolette.stores")

_TABLE_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]{0,62}")
_SCHEMA = """CREATE TABLE IF NOT EXISTS {table} (
    key text PRIMARY KEY,
    data text NOT NULL,
    revision bigint NOT NULL DEFAULT 1,
    written_at timestamptz NOT NULL DEFAULT now(),
    version integer NOT NULL DEFAULT 0
)"""
# Added to a table made before versions: rows written without one have version 0.
_ADD_VERSION = "ALTER TABLE {table} ADD COLUMN IF NOT EXISTS version integer NOT NULL DEFAULT 0"
_LEASE_SCHEMA = """CREATE TABLE IF NOT EXISTS {lease} (
    device text PRIMARY KEY,
    token text NOT NULL,
    host text NOT NULL,
    pid integer NOT NULL,
    since timestamptz NOT NULL,
    expires timestamptz NOT NULL,
    epoch bigint NOT NULL
);
CREATE SEQUENCE IF NOT EXISTS {epochs}"""
# One statement per batch (in autocommit mode its own transaction, one round trip). It locks
# the batch's rows and, with a lease epoch, their lease rows; it writes only when every base
# revision matches and every lease row carries the epoch, else nothing. A key created by
# another writer meanwhile fails the INSERT with a unique violation: nothing is written then
# either. It returns ('w', key, revision) per write, or ('c', key, found) per conflict, or
# ('f', key, 0) per key not fenced by the epoch.
_WRITE = """WITH batch AS (
  SELECT k, d, b, v FROM unnest(
    %(keys)s::text[], %(texts)s::text[], %(bases)s::bigint[], %(versions)s::integer[]
  ) AS u(k, d, b, v)
), fenced AS (
  SELECT device FROM {lease} WHERE device = ANY(%(keys)s) AND epoch = %(epoch)s FOR SHARE
), unfenced AS (
  SELECT k FROM batch WHERE %(epoch)s::bigint IS NOT NULL AND k NOT IN (SELECT device FROM fenced)
), current AS (
  SELECT key, revision FROM {table} WHERE key = ANY(%(keys)s) FOR UPDATE
), conflicts AS (
  SELECT k, coalesce(c.revision, 0) AS found FROM batch LEFT JOIN current c ON c.key = batch.k
  WHERE coalesce(c.revision, 0) <> batch.b
), go AS (
  SELECT NOT EXISTS (SELECT 1 FROM conflicts) AND NOT EXISTS (SELECT 1 FROM unfenced) AS ok
), inserted AS (
  INSERT INTO {table} (key, data, revision, written_at, version)
  SELECT k, d, 1, now(), coalesce(v, 0) FROM batch WHERE b = 0 AND (SELECT ok FROM go)
  RETURNING key, revision
), updated AS (
  UPDATE {table} AS s SET data = batch.d, revision = s.revision + 1, written_at = now(),
    version = coalesce(batch.v, s.version)
  FROM batch WHERE s.key = batch.k AND batch.b > 0 AND s.revision = batch.b AND (SELECT ok FROM go)
  RETURNING s.key, s.revision
)
SELECT 'w', key, revision FROM inserted UNION ALL SELECT 'w', key, revision FROM updated
UNION ALL SELECT 'f', k, 0 FROM unfenced UNION ALL SELECT 'c', k, found FROM conflicts"""
_SYNCHRONOUS_COMMIT = {
    "on": "a server crash loses no acknowledged batch",
    "remote_apply": "a server crash loses no acknowledged batch",
    "remote_write": "a server crash loses no acknowledged batch",
    "local": "a server crash loses no acknowledged batch",
    "off": "a server crash can lose the batches of its last moment "
    "(up to three times wal_writer_delay, 600 ms by default); it never corrupts",
}


class PostgresStore:
    """Device state in a PostgreSQL table, through one connection in autocommit mode.

    ``url`` is a libpq URL (``postgresql://user:password@host:5432/db``); a ``table=NAME``
    query parameter overrides ``table``. Nothing happens until the first call, which connects,
    creates the table if needed and logs (INFO) what a server crash can cost under the
    server's ``synchronous_commit`` and ``fsync``. If that first connection fails it raises
    :class:`~triolette.StoreOpenError` naming the URL without its password.

    Afterwards a lost connection is an outage: the call raises
    :class:`~triolette.StoreWriteError` (a write) or ``ConnectionError`` (a read), both
    ``OSError``, and the next call connects again. A call the server does not answer within
    ``timeout`` seconds has its socket shut down and fails the same way. A batch
    (``save_many``, ``save_encoded``) is one statement and one round trip, all or nothing.
    Used by one thread at a time.
    """

    def __init__(
        self,
        url: str,
        *,
        table: str = "triolette_store",
        timeout: float = 10.0,
        connect_timeout: float = 5.0,
    ) -> None:
        url, table_in_url = take_query(url, "table")
        table = table_in_url or table
        if not _TABLE_NAME.fullmatch(table):
            raise ValueError(f"table must be a plain SQL name (letters, digits, _), not {table!r}")
        self.table = table
        self.location = safe_url(url) + ("" if table == "triolette_store" else f"?table={table}")
        """The URL without its password, for logs and errors."""
        self.timeout = timeout
        self.connect_timeout = connect_timeout
        self.durability: str | None = None
        """What a server crash can cost, as logged when the store first connected."""
        self._url = url
        self._conn: psycopg.Connection[Any] | None = None
        self._opened = False
        self.lease_table = f"{table}_lease"
        """The table of the devices' leases (see :meth:`open_lease`)."""
        self._names = {
            "table": sql.Identifier(table),
            "lease": sql.Identifier(self.lease_table),
            "epochs": sql.Identifier(f"{table}_epoch"),
        }
        self._write_query = sql.SQL(_WRITE).format(**self._names)
        self._revisions = Revisions()
        self._epoch: int | None = None
        self._writer_versions: dict[str, int] = {}

    def __repr__(self) -> str:
        return f"PostgresStore({self.location!r}, table={self.table!r})"

    # -- connection -------------------------------------------------------------------------

    def _connection(self) -> psycopg.Connection[Any]:
        if self._conn is not None and not self._conn.closed:
            return self._conn
        try:
            conn = psycopg.connect(
                self._url,
                autocommit=True,
                connect_timeout=max(1, math.ceil(self.connect_timeout)),
                application_name="triolette",
            )
        except psycopg.Error as error:
            if not self._opened:
                raise StoreOpenError(self.location, str(error)) from None
            raise ConnectionError(f"cannot reach the store {self.location}: {error}") from error
        if not self._opened:
            try:
                self._set_up(conn)
            except psycopg.Error as error:
                conn.close()
                raise StoreOpenError(self.location, str(error)) from None
            self._opened = True
        self._conn = conn
        return conn

    def _set_up(self, conn: psycopg.Connection[Any]) -> None:
        conn.execute(sql.SQL(_SCHEMA).format(table=sql.Identifier(self.table)))
        conn.execute(sql.SQL(_ADD_VERSION).format(table=sql.Identifier(self.table)))
        for statement in _LEASE_SCHEMA.split(";"):
            conn.execute(sql.SQL(statement).format(**self._names))
        level = str(conn.execute("SHOW synchronous_commit").fetchone()[0])  # type: ignore[index]
        fsync = str(conn.execute("SHOW fsync").fetchone()[0])  # type: ignore[index]
        cost = _SYNCHRONOUS_COMMIT.get(level, "unknown")
        if fsync != "on":
            cost = "an operating system crash can lose or corrupt the database (fsync is off)"
        self.durability = f"synchronous_commit={level} fsync={fsync}: {cost}"
        logger.info("store %s table %s: %s", self.location, self.table, self.durability)

    def _drop(self) -> None:
        conn, self._conn = self._conn, None
        if conn is not None:
            with contextlib.suppress(psycopg.Error):
                conn.close()

    @staticmethod
    def _cut(conn: psycopg.Connection[Any]) -> None:
        """Shut the connection's socket down so that a call blocked on it fails now."""
        try:
            fd = os.dup(conn.pgconn.socket)
        except (OSError, psycopg.Error):
            return
        with socket.socket(fileno=fd) as sock, contextlib.suppress(OSError):
            sock.shutdown(socket.SHUT_RDWR)

    def _execute(self, query: Any, params: Any = ()) -> list[tuple[Any, ...]]:
        """Run one statement within ``timeout``; psycopg's errors drop the connection."""
        conn = self._connection()
        watchdog = threading.Timer(self.timeout, self._cut, (conn,))
        watchdog.daemon = True
        watchdog.start()
        try:
            cursor = conn.execute(query, params)
            return cursor.fetchall() if cursor.description is not None else []
        except psycopg.Error:
            self._drop()
            raise
        finally:
            watchdog.cancel()

    # -- the Store protocol -----------------------------------------------------------------

    def load(self, key: str) -> dict[str, object] | None:
        """The state of ``key``, or ``None``; ``ConnectionError`` when the server is lost."""
        record = self._records([key]).get(key)
        return None if record is None else decode_state(record.text)

    def load_all(self) -> dict[str, dict[str, object]]:
        """Every stored state, keyed by device."""
        return {key: decode_state(text) for key, text in self.load_all_encoded().items()}

    def load_all_encoded(self) -> dict[str, str]:
        """:meth:`load_all` as canonical texts."""
        return {key: record.text for key, record in self.load_records().items()}

    def load_records(self) -> dict[str, StoredRecord]:
        """Every stored state with its revision and the time of its last write."""
        rows = self._read(
            sql.SQL(
                "SELECT key, data, revision, written_at, version FROM {table} ORDER BY key"
            ).format(table=sql.Identifier(self.table))
        )
        records = {
            key: StoredRecord(checked_text(key, data), revision, written_at, version)
            for key, data, revision, written_at, version in rows
        }
        self._revisions.saw({key: r.revision or 0 for key, r in records.items()}, complete=True)
        return records

    def _records(self, keys: list[str]) -> dict[str, StoredRecord]:
        """The stored records of ``keys`` (those that exist), their revisions noted."""
        rows = self._read(
            sql.SQL(
                "SELECT key, data, revision, written_at, version FROM {table} WHERE key = ANY(%s)"
            ).format(table=sql.Identifier(self.table)),
            (keys,),
        )
        records = {
            key: StoredRecord(checked_text(key, data), revision, written_at, version)
            for key, data, revision, written_at, version in rows
        }
        self._revisions.saw({key: record.revision or 0 for key, record in records.items()})
        self._revisions.saw({key: 0 for key in keys if key not in records})
        return records

    def save(self, key: str, data: dict[str, object]) -> None:
        """Store ``data`` under ``key``; see :meth:`save_many`."""
        self.save_many({key: data})

    def save_many(self, states: Mapping[str, dict[str, object]]) -> None:
        """Store every entry in one statement, or none of them.

        :class:`~triolette.StateNotJSONError` before anything is sent for a non-JSON state;
        :class:`~triolette.StoreWriteError` (an ``OSError``) when the server fails or is lost.
        """
        self.save_encoded(encode_batch(states))

    def save_encoded(self, texts: Mapping[str, str]) -> None:
        """:meth:`save_many` for canonical texts (``encode_state`` output).

        Each record is written only if it still has the revision this store last read or
        wrote (a key it never read is read first): otherwise nothing of the batch is written
        and :class:`~triolette.StoreConflictError` names the first device in conflict. Under
        a lease (:meth:`fence`), a batch is refused whole with
        :class:`~triolette.StoreFencedError` once a newer lease holds one of its devices.
        """
        if not texts:
            return
        keys = list(texts)
        try:
            self._settle(keys)
            bases = [self._revisions.base(key) for key in keys]
            versions = [self._writer_versions.get(key) for key in keys]  # None: keep it
            params = {
                "keys": keys,
                "texts": list(texts.values()),
                "bases": bases,
                "versions": versions,
            }
            rows = self._execute(self._write_query, {**params, "epoch": self._epoch})
        except psycopg.errors.UniqueViolation as error:
            raise self._created_meanwhile(keys, bases) from error
        except (psycopg.OperationalError, psycopg.InterfaceError, ConnectionError) as error:
            self._revisions.attempted(texts)
            raise StoreWriteError(self.location, keys, self._lost()) from error
        except psycopg.Error as error:
            raise StoreWriteError(self.location, keys, error) from error
        refused = sorted((kind, key, found) for kind, key, found in rows if kind != "w")
        if refused:
            kind, key, found = refused[-1]  # a fenced batch ('f') outranks a conflict ('c')
            if kind == "f":
                assert self._epoch is not None
                raise StoreFencedError(self.location, key, self._epoch)
            raise StoreConflictError(self.location, key, self._revisions.base(key), found)
        self._revisions.wrote({key: revision for _, key, revision in rows})

    def declare_versions(self, versions: Mapping[str, int]) -> None:
        """Record ``versions[key]`` in the column ``version`` with each later write of
        ``key``; a key never declared keeps the version it has."""
        self._writer_versions.update(versions)

    def load_versions(self, keys: Iterable[str]) -> dict[str, int]:
        """The stored version of each of ``keys`` (0 for one written without, or absent)."""
        keys = list(keys)
        rows = self._read(
            sql.SQL("SELECT key, version FROM {table} WHERE key = ANY(%s)").format(
                table=sql.Identifier(self.table)
            ),
            (keys,),
        )
        found = dict(rows)
        return {key: found.get(key, 0) for key in keys}

    def _settle(self, keys: list[str]) -> None:
        """Read the base revision of the keys never read, or whose last write was lost."""
        unknown = self._revisions.unknown(keys)
        if unknown:
            try:
                records = self._records(unknown)
            except ConnectionError as error:
                raise psycopg.OperationalError(str(error)) from error
            stored = {key: (record.revision or 0, record.text) for key, record in records.items()}
            self._revisions.resolve(stored, unknown)

    def _created_meanwhile(self, keys: list[str], bases: list[int]) -> Exception:
        """The conflict of a key another writer created after this store saw it absent."""
        created = self._records([key for key, base in zip(keys, bases, strict=True) if not base])
        for key, record in sorted(created.items()):
            return StoreConflictError(self.location, key, 0, record.revision or 0)
        return StoreWriteError(self.location, keys, RuntimeError("a key was created meanwhile"))

    def fence(self, epoch: int | None) -> None:
        """Carry lease ``epoch`` with every later write (``None``: no lease, no fencing).

        The server then refuses a batch (:class:`~triolette.StoreFencedError`) unless every
        device in it is leased under that very epoch: once another bridge has taken a
        device over, this store can no longer write it.
        """
        self._epoch = epoch

    def open_lease(self, owner: LeaseOwner, seconds: float) -> PostgresLease:
        """A lease on devices of this store, on a connection of its own (see
        :class:`~triolette.stores.postgres_lease.PostgresLease`)."""
        from triolette.stores.postgres_lease import PostgresLease

        return PostgresLease(
            self._url, self.table, owner, seconds, connect_timeout=self.connect_timeout
        )

    def _lost(self) -> ConnectionError:
        """The one cause of every write lost with the connection, whatever the phase (reset,
        silence, refused reconnect): one outage reads as one error, logged once. The
        client's words are in the ``__cause__`` chain."""
        return ConnectionError(
            f"the connection to the server was lost, or it did not answer within {self.timeout:g} s"
        )

    def close(self) -> None:
        """Close the connection; the next call connects again."""
        self._drop()

    def _read(self, query: Any, params: tuple[object, ...] = ()) -> list[tuple[Any, ...]]:
        try:
            return self._execute(query, params)
        except psycopg.Error as error:
            raise ConnectionError(f"cannot read the store {self.location}: {error}") from error
