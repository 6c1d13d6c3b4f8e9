"""SqliteStore: WAL and synchronous modes, batching, cosalette's layout, damage, locks, close."""

from __future__ import annotations

import contextlib
import datetime
import json
import logging
import os
import re
import shutil
import sqlite3
from pathlib import Path
from typing import Any, cast

import pytest

from triolette import SqliteStore

STATES: dict[str, dict[str, Any]] = {
    "sensor": {"count": 41, "calib": {"offset": -0.25, "when": "2024-05-01T10:00:00Z"}},
    "lamp": {"on": True, "brightness": None, "scenes": ["warm", "cold", "näht"]},
}


def _reader(path: Path) -> contextlib.closing[sqlite3.Connection]:
    """A second, read-only connection, like an operator's sqlite3 shell."""
    return contextlib.closing(sqlite3.connect(f"file:{path}?mode=ro", uri=True))


def _rows(path: Path, table: str = "store") -> dict[str, str]:
    with _reader(path) as db:
        return dict(db.execute(f"SELECT key, data FROM {table}").fetchall())


def _stamp_of(moved_to: Path, path: Path) -> datetime.datetime:
    match = re.fullmatch(re.escape(path.name) + r"\.corrupt-(\d{8}T\d{6}Z)", moved_to.name)
    assert match, moved_to
    return datetime.datetime.strptime(match[1], "%Y%m%dT%H%M%SZ").replace(tzinfo=datetime.UTC)


# -- modes ------------------------------------------------------------------------------------


def test_wal_mode_and_synchronous_full_are_in_force(tmp_path, store_connections):
    path = tmp_path / "state.db"
    store = SqliteStore(path)
    store.save("sensor", STATES["sensor"])
    with _reader(path) as db:
        assert db.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
    assert store_connections.last.execute("PRAGMA synchronous").fetchone()[0] == 2  # FULL
    store.close()

    # synchronous is per connection, not stored in the file: a reopened store sets it again.
    assert store.load("sensor") == STATES["sensor"]
    assert len(store_connections.opened) == 2
    assert store_connections.last.execute("PRAGMA synchronous").fetchone()[0] == 2
    store.close()


def test_synchronous_normal_is_honoured(tmp_path, store_connections):
    store = SqliteStore(tmp_path / "state.db", synchronous="NORMAL")
    store.save("sensor", STATES["sensor"])
    assert store_connections.last.execute("PRAGMA synchronous").fetchone()[0] == 1  # NORMAL
    store.close()


@pytest.mark.parametrize("bad", ["OFF", "full", "sometimes"])
def test_bad_synchronous_value_is_a_value_error_naming_it(tmp_path, bad):
    path = tmp_path / "state.db"
    with pytest.raises(ValueError, match=re.escape(repr(bad))):
        SqliteStore(path, synchronous=cast(Any, bad))
    assert not path.exists()


# -- batches --------------------------------------------------------------------------------


def test_a_batch_is_one_transaction_and_identical_content_is_not_rewritten(
    tmp_path, store_connections
):
    path = tmp_path / "state.db"
    store = SqliteStore(path)
    assert store.load_all() == {}
    statements: list[str] = []
    store_connections.last.set_trace_callback(statements.append)
    batch = {f"device{index}": {"reading": index, "unit": "°C"} for index in range(100)}

    store.save_many(batch)

    assert statements.count("BEGIN IMMEDIATE") == 1
    assert sum(1 for sql in statements if sql.strip().upper() == "COMMIT") == 1
    assert {key: json.loads(data) for key, data in _rows(path).items()} == batch

    statements.clear()
    store.save_many(batch)
    store.save("device7", {"reading": 7, "unit": "°C"})
    assert statements == []  # no transaction, no statement at all

    changed = {**batch, "device3": {"reading": -3, "unit": "°C"}}
    store.save_many(changed)
    assert statements.count("BEGIN IMMEDIATE") == 1
    writes = [sql for sql in statements if sql.startswith("INSERT")]
    assert len(writes) == 1
    assert "device3" in writes[0]
    store.close()


# -- cosalette compatibility ----------------------------------------------------------------


def _cosalette_database(path: Path, states: dict[str, dict[str, Any]]) -> None:
    """Write a database the way cosalette's SqliteStore does, with plain sqlite3."""
    db = sqlite3.connect(path)
    try:
        db.execute("PRAGMA journal_mode=WAL")
        db.execute("CREATE TABLE IF NOT EXISTS store (key TEXT PRIMARY KEY, data TEXT NOT NULL)")
        with db:
            db.executemany(
                "INSERT OR REPLACE INTO store (key, data) VALUES (?, ?)",
                [(key, json.dumps(state, indent=2)) for key, state in states.items()],
            )
    finally:
        db.close()


def test_a_cosalette_database_loads_unchanged(tmp_path):
    path = tmp_path / "state.db"
    _cosalette_database(path, STATES)
    original = _rows(path)

    store = SqliteStore(path)
    assert store.load("sensor") == STATES["sensor"]
    assert store.load("lamp") == STATES["lamp"]
    assert store.load("missing") is None
    assert store.load_all() == STATES
    assert store.quarantined == []

    # Saving what is already there touches nothing: cosalette's own text stays.
    store.save_many(STATES)
    assert _rows(path) == original

    lamp = {**STATES["lamp"], "on": False}
    store.save("lamp", lamp)
    store.close()

    rows = _rows(path)
    assert rows["sensor"] == original["sensor"]
    assert json.loads(rows["lamp"]) == lamp
    assert {key: json.loads(data) for key, data in rows.items()} == {**STATES, "lamp": lamp}


def test_after_a_save_a_plain_reader_sees_json_in_the_data_column(tmp_path):
    path = tmp_path / "state.db"
    store = SqliteStore(path)
    store.save_many(STATES)
    with _reader(path) as db:
        columns = [row[1] for row in db.execute("PRAGMA table_info(store)")]
        rows = db.execute("SELECT key, data FROM store").fetchall()
    assert columns == ["key", "data", "revision", "version"]
    assert {key: json.loads(data) for key, data in rows} == STATES
    store.close()


# -- damaged database -----------------------------------------------------------------------


@pytest.mark.parametrize(
    "content",
    [
        pytest.param(bytes(range(256)) * 24 + b"no header, no pages", id="garbage"),
        pytest.param(json.dumps({"sensor": {"count": 1}}).encode(), id="json-document"),
    ],
)
def test_a_damaged_database_is_moved_aside_with_its_companions(tmp_path, caplog, content):
    path = tmp_path / "state.db"
    path.write_bytes(content)
    wal_bytes = b"a stale write-ahead log\n" * 40
    Path(f"{path}-wal").write_bytes(wal_bytes)
    Path(f"{path}-shm").write_bytes(b"\x01" * 512)
    before = datetime.datetime.now(datetime.UTC).replace(microsecond=0)
    store = SqliteStore(path)

    with caplog.at_level(logging.ERROR, logger="triolette.stores"):
        assert store.load_all() == {}

    [report] = store.quarantined
    assert report.path == path
    assert report.restored_from is None
    moved_to = Path(report.moved_to)
    assert moved_to.parent == tmp_path
    assert before <= _stamp_of(moved_to, path) <= datetime.datetime.now(datetime.UTC)
    assert moved_to.read_bytes() == content
    assert Path(f"{moved_to}-wal").read_bytes() == wal_bytes
    assert Path(f"{moved_to}-shm").exists()  # an index SQLite rebuilds from the log
    [record] = [r for r in caplog.records if r.name == "triolette.stores"]
    assert record.levelno == logging.CRITICAL
    assert "EVERY DEVICE STARTS FROM EMPTY" in record.getMessage()
    assert str(path) in record.getMessage()
    assert str(moved_to) in record.getMessage()

    store.save("sensor", {"count": 2})
    store.close()
    assert moved_to.read_bytes() == content
    assert Path(f"{moved_to}-wal").read_bytes() == wal_bytes
    assert json.loads(_rows(path)["sensor"]) == {"count": 2}
    again = SqliteStore(path)
    assert again.load_all() == {"sensor": {"count": 2}}
    assert again.quarantined == []
    again.close()


def test_a_database_failing_its_check_is_moved_aside_with_its_log_untouched(tmp_path):
    """Closing the last connection checkpoints the WAL into the database and deletes the log:
    the damaged file must be moved before that, or its bytes change and the log is lost."""
    origin = tmp_path / "origin.db"
    db = sqlite3.connect(origin, isolation_level=None)
    db.execute("PRAGMA journal_mode=WAL")
    db.execute("CREATE TABLE store (key TEXT PRIMARY KEY, data TEXT NOT NULL)")
    db.executemany(
        "INSERT INTO store VALUES (?, ?)",
        [(f"device{index}", json.dumps({"blob": "x" * 100})) for index in range(200)],
    )
    db.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    db.execute("INSERT INTO store VALUES ('late', '{}')")  # a commit that lives in the WAL only
    path = tmp_path / "state.db"
    for suffix in ("", "-wal", "-shm"):  # the files as a power cut would leave them
        shutil.copyfile(f"{origin}{suffix}", f"{path}{suffix}")
    db.close()
    damaged = bytearray(path.read_bytes())
    damaged[3 * 4096 : 4 * 4096] = b"\xff" * 4096  # one page of the table overwritten
    path.write_bytes(bytes(damaged))
    wal_bytes = Path(f"{path}-wal").read_bytes()
    assert wal_bytes

    store = SqliteStore(path)
    assert store.load_all() == {}

    [report] = store.quarantined
    moved_to = Path(report.moved_to)
    assert moved_to.read_bytes() == bytes(damaged)
    assert Path(f"{moved_to}-wal").read_bytes() == wal_bytes
    store.save("sensor", {"count": 1})
    store.close()
    assert json.loads(_rows(path)["sensor"]) == {"count": 1}


# -- damaged rows ---------------------------------------------------------------------------


def test_damaged_rows_move_to_the_quarantine_table(tmp_path, caplog):
    path = tmp_path / "state.db"
    _cosalette_database(path, {"good": {"count": 3}})
    damaged = {
        "torn": '{"count": 4',
        "listed": "[1, 2, 3]",
        "nan": '{"level": NaN}',
        "twice": '{"count": 1, "count": 2}',
    }
    with contextlib.closing(sqlite3.connect(path)) as db, db:
        db.executemany("INSERT INTO store VALUES (?, ?)", damaged.items())

    store = SqliteStore(path)
    with caplog.at_level(logging.ERROR, logger="triolette.stores"):
        assert store.load_all() == {"good": {"count": 3}}

    assert (
        sorted(str(report.moved_to) for report in store.quarantined)
        == ["table store_quarantine"] * 4
    )
    for key in damaged:
        [report] = [r for r in store.quarantined if repr(key) in r.reason]
        assert report.path == path
    assert _rows(path, "store_quarantine") == damaged
    assert _rows(path) == {"good": json.dumps({"count": 3}, indent=2)}
    errors = [r for r in caplog.records if r.name == "triolette.stores"]
    assert len(errors) == 4
    assert all(r.levelno == logging.CRITICAL for r in errors)
    assert "DEVICE 'torn' STARTS FROM EMPTY" in errors[0].getMessage()

    store.save("torn", {"count": 5})
    store.close()
    again = SqliteStore(path)
    assert again.load_all() == {"good": {"count": 3}, "torn": {"count": 5}}
    assert again.quarantined == []
    again.close()
    assert _rows(path, "store_quarantine") == damaged


# -- permissions ----------------------------------------------------------------------------


def test_the_database_is_owner_only(tmp_path):
    path = tmp_path / "state.db"
    previous = os.umask(0o022)
    try:
        store = SqliteStore(path)
        store.save_many(STATES)
        for name in (path, f"{path}-wal", f"{path}-shm", f"{path}.lock"):
            assert os.stat(name).st_mode & 0o777 == 0o600, name
        store.close()
    finally:
        os.umask(previous)
    assert path.stat().st_mode & 0o777 == 0o600


# -- close ----------------------------------------------------------------------------------


def test_close_checkpoints_and_the_store_reopens_on_next_use(tmp_path):
    path = tmp_path / "state.db"
    wal = Path(f"{path}-wal")
    store = SqliteStore(path)
    store.save_many(STATES)
    assert wal.stat().st_size > 0
    # An idle second connection: SQLite no longer checkpoints by itself when the store's
    # connection closes, so an empty log proves close() checkpointed.
    with _reader(path) as reader:
        assert reader.execute("SELECT count(*) FROM store").fetchall() == [(2,)]
        store.close()
        assert not wal.exists() or wal.stat().st_size == 0
        assert len(path.read_bytes()) > 0

    assert store.load_all() == STATES
    store.save("door", {"open": False})
    store.close()
    assert not wal.exists() or wal.stat().st_size == 0
    assert json.loads(_rows(path)["door"]) == {"open": False}
