"""PostgresStore: device state as rows of one PostgreSQL table (the ``postgres`` extra, psycopg 3).

Each row is ``(key text primary key, data text, revision bigint, written_at timestamptz)``.
``data`` is the canonical JSON text, so a state round-trips byte for byte (``jsonb`` would
reorder keys). ``revision`` grows by one on each write of the key and ``written_at`` is the
server's time of that write.
"""

from __future__ import annotations

import contextlib
import logging
import math
import os
import re
import socket
import threading
from collections.abc import Mapping
from typing import Any

import psycopg
from psycopg import sql

from triolette.core.errors import StoreOpenError, StoreWriteError
from triolette.core.jsonstate import decode_state
from triolette.stores._remote import (
    StoredRecord,
    checked_text,
    encode_batch,
    safe_url,
    take_query,
)

logger = logging.getLogger("triolette.stores")

_TABLE_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]{0,62}")
_SCHEMA = """CREATE TABLE IF NOT EXISTS {table} (
    key text PRIMARY KEY,
    data text NOT NULL,
    revision bigint NOT NULL DEFAULT 1,
    written_at timestamptz NOT NULL DEFAULT now()
)"""
# One statement per batch: in autocommit mode it is its own transaction, one round trip.
_UPSERT = """INSERT INTO {table} AS s (key, data, revision, written_at)
SELECT k, d, 1, now() FROM unnest(%s::text[], %s::text[]) AS u(k, d)
ON CONFLICT (key) DO UPDATE
SET data = EXCLUDED.data, revision = s.revision + 1, written_at = EXCLUDED.written_at"""
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
        self._upsert = sql.SQL(_UPSERT).format(table=sql.Identifier(table))

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

    def _execute(self, query: Any, params: tuple[object, ...] = ()) -> list[tuple[Any, ...]]:
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
        rows = self._read(
            sql.SQL("SELECT key, data FROM {table} WHERE key = %s").format(
                table=sql.Identifier(self.table)
            ),
            (key,),
        )
        return decode_state(checked_text(key, rows[0][1])) if rows else None

    def load_all(self) -> dict[str, dict[str, object]]:
        """Every stored state, keyed by device."""
        return {key: decode_state(text) for key, text in self.load_all_encoded().items()}

    def load_all_encoded(self) -> dict[str, str]:
        """:meth:`load_all` as canonical texts."""
        return {key: record.text for key, record in self.load_records().items()}

    def load_records(self) -> dict[str, StoredRecord]:
        """Every stored state with its revision and the time of its last write."""
        rows = self._read(
            sql.SQL("SELECT key, data, revision, written_at FROM {table} ORDER BY key").format(
                table=sql.Identifier(self.table)
            )
        )
        return {
            key: StoredRecord(checked_text(key, data), revision, written_at)
            for key, data, revision, written_at in rows
        }

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
        """:meth:`save_many` for canonical texts (``encode_state`` output)."""
        if not texts:
            return
        keys = list(texts)
        try:
            self._execute(self._upsert, (keys, list(texts.values())))
        except (psycopg.OperationalError, psycopg.InterfaceError, ConnectionError) as error:
            raise StoreWriteError(self.location, keys, self._lost()) from error
        except psycopg.Error as error:
            raise StoreWriteError(self.location, keys, error) from error

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
