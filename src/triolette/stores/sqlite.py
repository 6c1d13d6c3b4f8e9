"""SqliteStore: device state as rows of one SQLite database in WAL mode."""

from __future__ import annotations

import contextlib
import datetime
import errno
import json
import os
import sqlite3
from pathlib import Path
from typing import Literal

from triolette.core.errors import StoreOpenError, StoreWriteError
from triolette.core.jsonstate import decode_state, encode_state
from triolette.stores._encoded import QuarantineReport, logger
from triolette.stores._files import (
    fsync_folder,
    open_file,
    own,
    quarantine,
    refuse_link,
    restrict,
)
from triolette.stores._filestore import LockedFileStore, OnDamage

_SCHEMA = """
CREATE TABLE IF NOT EXISTS store (
    key TEXT PRIMARY KEY, data TEXT NOT NULL, revision INTEGER NOT NULL DEFAULT 0
);
CREATE TABLE IF NOT EXISTS store_quarantine (
    key TEXT NOT NULL, data TEXT, reason TEXT NOT NULL, moved_at TEXT NOT NULL
);
"""
# The whole batch goes in as one JSON object {key: state text} and one statement, so the
# writer thread takes the GIL back once per batch, not once per row: next to a busy trio
# thread every re-take can wait a whole switch interval (5 ms). json_each is built into
# SQLite from 3.38; older libraries get one statement per row.
_UPSERT_BATCH = (
    "INSERT INTO store (key, data, revision) SELECT key, value, 1 FROM json_each(?) WHERE true "
    "ON CONFLICT (key) DO UPDATE SET data = excluded.data, revision = store.revision + 1"
)
_UPSERT_ROW = (
    "INSERT INTO store (key, data, revision) VALUES (?, ?, 1) "
    "ON CONFLICT (key) DO UPDATE SET data = excluded.data, revision = store.revision + 1"
)
# Added to a table made without it (cosalette's, an older triolette's): readers that select
# key and data by name never notice it; rows written before have revision 0.
_ADD_REVISION = "ALTER TABLE store ADD COLUMN revision INTEGER NOT NULL DEFAULT 0"
# Likewise the state's version (the writer's state_version): 0 for rows written without one.
# Set by a second statement of a batch's transaction, only for the rows whose version changes.
_ADD_VERSION = "ALTER TABLE store ADD COLUMN version INTEGER NOT NULL DEFAULT 0"
_SET_VERSION = "UPDATE store SET version = ? WHERE key = ?"
_HAS_JSON_EACH = sqlite3.sqlite_version_info >= (3, 38)
_DAMAGED = {sqlite3.SQLITE_NOTADB, sqlite3.SQLITE_CORRUPT}
_COMPANIONS = ("-wal", "-shm", "-journal")  # files SQLite opens by name next to the database
_BUSY_TIMEOUT = 5.0


# SQLite's primary result codes that have an errno twin, so both file stores report alike.
_ERRNO = {
    sqlite3.SQLITE_FULL: errno.ENOSPC,
    sqlite3.SQLITE_IOERR: errno.EIO,
    sqlite3.SQLITE_BUSY: errno.EBUSY,
    sqlite3.SQLITE_LOCKED: errno.EBUSY,
    sqlite3.SQLITE_READONLY: errno.EROFS,
}


def _errno_of(error: BaseException) -> int | None:
    code = getattr(error, "sqlite_errorcode", None)
    return None if code is None else _ERRNO.get(code & 0xFF)


class _DamagedDatabase(Exception):
    """The file is not a usable SQLite database: quarantine it and start a new one."""


class SqliteStore(LockedFileStore):
    """Rows ``store(key TEXT PRIMARY KEY, data TEXT NOT NULL)``, the table cosalette uses.

    Opened on first use: exclusive lock on ``<name>.lock``, ``journal_mode=WAL``,
    ``synchronous=FULL`` (every committed batch survives a power cut; ``"NORMAL"`` trades the
    last commits for speed), ``quick_check``, and one read of every row. A database that is
    not SQLite or fails the check is moved aside with its ``-wal`` and ``-shm`` files (every
    device starts from empty, logged at CRITICAL); a row that is not a JSON object is moved to
    the ``store_quarantine`` table (that device starts from empty). Both are reported in
    :attr:`quarantined`; with ``on_damage="refuse"`` opening raises
    :class:`~triolette.StoreOpenError` instead and moves nothing. A symbolic link as the
    database or one of its companion files, a table ``store`` without ``key`` and ``data``
    columns, or a database another program keeps locked are ``StoreOpenError`` too. One
    connection, used by one thread at a time; each batch is one ``BEGIN IMMEDIATE``
    transaction. :meth:`close` checkpoints the WAL and closes.

    Each row's ``revision`` grows by one on each write of it (see :meth:`load_records`); a
    table without that column (cosalette's) gets it at open, 0 for the rows already there.
    The column ``version`` (the state's version, see :meth:`declare_versions`) is added the
    same way.
    """

    def __init__(
        self,
        path: str | os.PathLike[str],
        *,
        synchronous: Literal["FULL", "NORMAL", "EXTRA"] = "FULL",
        on_damage: OnDamage = "start-empty",
    ) -> None:
        if synchronous not in ("FULL", "NORMAL", "EXTRA"):
            raise ValueError(f"synchronous must be FULL, NORMAL or EXTRA, not {synchronous!r}")
        super().__init__(path, on_damage=on_damage)
        self.synchronous = synchronous
        self._db: sqlite3.Connection | None = None

    def _open_locked(self) -> dict[str, str]:
        try:
            try:
                rows = self._read()
            except _DamagedDatabase as exc:
                self._check_loss("the database", str(exc))
                self._quarantine_database(str(exc))
                rows = self._read()
            return self._check_rows(rows)
        except sqlite3.OperationalError as exc:
            self._disconnect()
            if _errno_of(exc) != errno.EBUSY:
                raise
            raise StoreOpenError(
                self.path,
                f"another program holds a lock on the database ({exc}; waited {_BUSY_TIMEOUT:g} s)",
            ) from exc
        except BaseException:
            self._disconnect()
            raise

    def _connection(self) -> sqlite3.Connection:
        if self._db is None:
            # SQLite follows links: refuse them first. The database is made owner-only here
            # (SQLite gives -wal and -shm the same mode).
            fd = open_file(self.path, os.O_RDWR | os.O_CREAT)
            try:
                own(fd)
            finally:
                os.close(fd)
            for suffix in _COMPANIONS:
                refuse_link(Path(f"{self.path}{suffix}"))
            self._db = sqlite3.connect(
                self.path, isolation_level=None, check_same_thread=False, timeout=_BUSY_TIMEOUT
            )
            # On failure the connection stays open: every caller disconnects on error, and a
            # damaged database must be moved aside before closing (see _quarantine_database).
            self._refuse_foreign(self._db)
            self._db.execute("PRAGMA journal_mode=WAL")
            self._db.execute(f"PRAGMA synchronous={self.synchronous}")
        return self._db

    def _refuse_foreign(self, db: sqlite3.Connection) -> None:
        """Raise :class:`StoreOpenError`, before anything is written, if the table ``store``
        exists without our columns: the database belongs to another program."""
        columns = [row[1] for row in db.execute("PRAGMA table_info(store)")]
        if columns and not {"key", "data"} <= set(columns):
            raise StoreOpenError(
                self.path,
                f"its table 'store' has the columns {', '.join(columns)}, not key and data: "
                "it is not a triolette or cosalette store",
            )

    def _read(self) -> list[tuple[str, str]]:
        try:
            db = self._connection()
            verdict = db.execute("PRAGMA quick_check").fetchone()[0]
        except sqlite3.DatabaseError as exc:
            if exc.sqlite_errorcode in _DAMAGED:
                raise _DamagedDatabase(str(exc)) from exc
            raise
        if verdict != "ok":
            raise _DamagedDatabase(f"quick_check failed: {verdict}")
        db.executescript(_SCHEMA)
        columns = [row[1] for row in db.execute("PRAGMA table_info(store)")]
        if "revision" not in columns:
            db.execute(_ADD_REVISION)
        if "version" not in columns:
            db.execute(_ADD_VERSION)
        rows = db.execute("SELECT key, data, revision, version FROM store").fetchall()
        self._revisions = {key: revision for key, _, revision, _ in rows}
        self._versions = {key: version for key, _, _, version in rows if version}
        return [(key, data) for key, data, _, _ in rows]

    def _quarantine_database(self, reason: str) -> None:
        # Move the files while the connection is still open: closing the last connection to a
        # database that is still in place checkpoints its WAL and deletes the -wal and -shm
        # files, while a moved database is left alone.
        try:
            moved_to = quarantine(self.path)
            for suffix in ("-wal", "-shm"):
                companion = Path(f"{self.path}{suffix}")
                if companion.exists():
                    os.replace(companion, f"{moved_to}{suffix}")
                    restrict(Path(f"{moved_to}{suffix}"))
            fsync_folder(self.path.parent)
        finally:
            self._disconnect()
        self._report(QuarantineReport(self.path, reason, moved_to), lost="EVERY DEVICE")

    def _check_rows(self, rows: list[tuple[str, str]]) -> dict[str, str]:
        texts, damaged = {}, []
        for key, data in rows:
            try:
                texts[key] = encode_state(key, decode_state(data))
            except (TypeError, ValueError) as exc:
                damaged.append((key, data, str(exc)))
        if damaged:
            key, _, reason = damaged[0]
            self._check_loss(f"the row {key!r}", reason)
            now = datetime.datetime.now(datetime.UTC).isoformat(timespec="seconds")
            db = self._connection()
            db.execute("BEGIN IMMEDIATE")
            db.executemany(
                "INSERT INTO store_quarantine VALUES (?, ?, ?, ?)",
                [(key, data, reason, now) for key, data, reason in damaged],
            )
            db.executemany("DELETE FROM store WHERE key = ?", [(key,) for key, *_ in damaged])
            db.execute("COMMIT")
            for key, _, reason in damaged:
                self._report(
                    QuarantineReport(self.path, f"row {key!r}: {reason}", "table store_quarantine"),
                    lost=f"DEVICE {key!r}",
                )
        return texts

    def _write(self, changed: dict[str, str], current: dict[str, str]) -> None:
        try:
            db = self._connection()
            db.execute("BEGIN IMMEDIATE")
            try:
                if _HAS_JSON_EACH:
                    db.execute(_UPSERT_BATCH, (json.dumps(changed),))
                else:
                    db.executemany(_UPSERT_ROW, changed.items())
                moved = self._moved_versions(changed)
                if moved:
                    db.executemany(_SET_VERSION, moved)
                db.execute("COMMIT")
            except BaseException:
                with contextlib.suppress(sqlite3.Error):
                    db.execute("ROLLBACK")
                raise
        except (sqlite3.Error, OSError) as exc:
            # After an I/O error the connection's view of the file is not trusted again.
            self._disconnect()
            raise StoreWriteError(self.path, list(changed), exc, errno=_errno_of(exc)) from exc

    def _moved_versions(self, changed: dict[str, str]) -> list[tuple[int, str]]:
        """``(version, key)`` of the rows of ``changed`` whose recorded version changes."""
        declared, stored = self._writer_versions, self._versions
        if not declared:
            return []
        return [
            (declared[k], k) for k in changed if k in declared and declared[k] != stored.get(k, 0)
        ]

    def _disconnect(self) -> None:
        if self._db is not None:
            with contextlib.suppress(sqlite3.Error):
                self._db.close()
            self._db = None

    def _close_locked(self) -> None:
        try:
            if self._db is not None:
                self._db.execute("PRAGMA wal_checkpoint(TRUNCATE)")
        except sqlite3.Error as exc:
            # Harmless for the data (the WAL is replayed on the next open); worth a line.
            logger.warning("could not checkpoint %s at close: %s", self.path, exc)
        finally:
            self._disconnect()
