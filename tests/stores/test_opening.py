"""Opening a file store: every failure is one StoreOpenError line naming the path and the cause,
nothing in the state folder is followed through a link, and damage can refuse to start.

The folder may be writable by others while the bridge runs as root, so each planted link is an
attack: the tests check the link's target is neither read as state, nor written, nor chmod-ed.
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import sqlite3
import stat
import tempfile
import threading
from pathlib import Path
from typing import Any, cast

import pytest

from tests.stores.layout import corrupt_files
from triolette import JsonFileStore, SqliteStore, StoreLockedError
from triolette.core.errors import StoreOpenError

BACKENDS = {"json": (JsonFileStore, "state.json"), "sqlite": (SqliteStore, "state.db")}


def _modes_bind_us() -> bool:
    """Whether file modes stop this process: not for root with its usual capabilities."""
    with tempfile.TemporaryDirectory() as folder:
        probe = Path(folder) / "probe"
        probe.touch(mode=0o000)
        try:
            probe.read_bytes()
        except PermissionError:
            return True
        return False


MIGHTY = not _modes_bind_us()

Store = JsonFileStore | SqliteStore


def _store(backend: str, folder: Path, **options: Any) -> tuple[Store, Path]:
    kind, name = BACKENDS[backend]
    path = folder / name
    return kind(path, **options), path


def _refused(store: Store) -> StoreOpenError:
    """Open ``store`` and return the StoreOpenError, checked to be one line naming the path."""
    with pytest.raises(StoreOpenError) as refused:
        store.load_all()
    message = str(refused.value)
    assert refused.value.path == store.path
    assert str(store.path) in message
    assert "\n" not in message
    return refused.value


@pytest.fixture
def victim(tmp_path: Path) -> Path:
    """A file outside the state folder that an attacker wants overwritten or chmod-ed."""
    path = tmp_path / "elsewhere" / "precious.json"
    path.parent.mkdir()
    path.write_text('{"sensor": {"count": 666}}\n')
    path.chmod(0o644)
    return path


def _untouched(victim: Path) -> None:
    assert victim.read_text() == '{"sensor": {"count": 666}}\n'
    assert stat.S_IMODE(victim.stat().st_mode) == 0o644


# -- one line naming the path and the cause ---------------------------------------------------


def test_a_locked_store_is_a_store_open_error():
    assert issubclass(StoreLockedError, StoreOpenError)


@pytest.mark.parametrize("backend", sorted(BACKENDS))
def test_a_folder_where_the_file_should_be_is_refused_and_the_lock_released(tmp_path, backend):
    store, path = _store(backend, tmp_path)
    path.mkdir()

    error = _refused(store)

    assert "is a folder" in str(error)
    path.rmdir()
    assert store.load_all() == {}, "the failed open kept its lock"
    store.close()


@pytest.mark.parametrize("backend", sorted(BACKENDS))
def test_a_file_where_the_folder_should_be_is_refused(tmp_path, backend):
    (tmp_path / "data").write_text("not a folder")
    store, _ = _store(backend, tmp_path / "data")

    assert "Not a directory" in str(_refused(store))


@pytest.mark.skipif(MIGHTY, reason="file modes do not stop this process (root)")
@pytest.mark.parametrize("backend", sorted(BACKENDS))
def test_a_folder_that_is_not_writable_is_refused(tmp_path, backend):
    folder = tmp_path / "data"
    folder.mkdir(mode=0o500)
    store, _ = _store(backend, folder)
    try:
        assert f"{folder}: the folder is not writable" in str(_refused(store))
    finally:
        folder.chmod(0o700)


@pytest.mark.skipif(MIGHTY, reason="file modes do not stop this process (root)")
@pytest.mark.parametrize("backend", sorted(BACKENDS))
def test_a_folder_that_became_read_only_is_refused_at_open_not_at_each_write(tmp_path, backend):
    folder = tmp_path / "data"
    store, _ = _store(backend, folder)
    store.save("sensor", {"count": 1})
    store.close()  # the lock file and the store file exist from now on
    folder.chmod(0o500)
    try:
        error = _refused(store)
    finally:
        folder.chmod(0o700)
    assert f"{folder}: the folder is not writable" in str(error)


@pytest.mark.skipif(MIGHTY, reason="file modes do not stop this process (root)")
@pytest.mark.parametrize("backend", sorted(BACKENDS))
def test_an_unreadable_file_is_refused(tmp_path, backend):
    store, path = _store(backend, tmp_path)
    path.write_bytes(b"{}")
    path.chmod(0o000)
    try:
        assert "Permission denied" in str(_refused(store))
    finally:
        path.chmod(0o600)


def test_a_database_with_another_schema_is_refused_naming_its_columns(tmp_path):
    path = tmp_path / "state.db"
    with contextlib.closing(sqlite3.connect(path)) as db, db:
        db.execute("CREATE TABLE store (key TEXT PRIMARY KEY, value TEXT)")
        db.execute("INSERT INTO store VALUES ('sensor', '{}')")

    error = _refused(SqliteStore(path))

    assert "key, value" in str(error)
    assert "not key and data" in str(error)
    with contextlib.closing(sqlite3.connect(path)) as db:  # the other program's, untouched
        assert db.execute("SELECT * FROM store").fetchall() == [("sensor", "{}")]
        assert db.execute("PRAGMA journal_mode").fetchone()[0] == "delete"
        tables = db.execute("SELECT name FROM sqlite_master WHERE type = 'table'").fetchall()
        assert tables == [("store",)]


def test_a_database_another_program_keeps_locked_is_refused(tmp_path):
    """A rollback-journal database held by another program: SQLite's "database is locked"."""
    path = tmp_path / "state.db"
    other = sqlite3.connect(path, isolation_level=None, check_same_thread=False)
    other.execute("CREATE TABLE store (key TEXT PRIMARY KEY, data TEXT NOT NULL)")
    other.execute("BEGIN EXCLUSIVE")
    try:
        error = _refused(SqliteStore(path))
    finally:
        other.execute("ROLLBACK")
        other.close()

    assert "another program holds a lock on the database" in str(error)
    assert "database is locked" in str(error)


# -- links planted in the state folder ----------------------------------------------------------


@pytest.mark.parametrize("backend", sorted(BACKENDS))
def test_a_symlinked_lock_file_is_refused_and_its_target_not_written(tmp_path, victim, backend):
    store, path = _store(backend, tmp_path)
    Path(f"{path}.lock").symlink_to(victim)

    assert "symbolic link" in str(_refused(store))
    _untouched(victim)


@pytest.mark.parametrize("backend", sorted(BACKENDS))
def test_a_hard_linked_lock_file_is_refused_and_its_target_not_written(tmp_path, victim, backend):
    store, path = _store(backend, tmp_path)
    os.link(victim, f"{path}.lock")

    assert "hard links" in str(_refused(store))
    _untouched(victim)


@pytest.mark.parametrize("backend", sorted(BACKENDS))
def test_a_symlinked_store_file_is_refused_not_read(tmp_path, victim, backend):
    store, path = _store(backend, tmp_path)
    path.symlink_to(victim)

    assert "symbolic link" in str(_refused(store))
    _untouched(victim)


@pytest.mark.parametrize("suffix", ["-wal", "-shm", "-journal"])
def test_a_symlinked_sqlite_companion_is_refused(tmp_path, victim, suffix):
    store, path = _store("sqlite", tmp_path)
    Path(f"{path}{suffix}").symlink_to(victim)

    assert f"{path}{suffix}" in str(_refused(store))
    _untouched(victim)


def test_a_symlinked_last_good_is_not_read_as_state(tmp_path, victim):
    path = tmp_path / "state.json"
    path.write_bytes(b"{damaged")
    store = JsonFileStore(path)
    store.last_good.symlink_to(victim)

    assert "symbolic link" in str(_refused(store))
    _untouched(victim)
    assert path.read_bytes() == b"{damaged"


def test_a_store_file_swapped_for_a_link_is_not_chmod_ed_through_it(tmp_path, victim):
    store, path = _store("json", tmp_path)
    store.save("sensor", {"count": 1})
    path.unlink()
    path.symlink_to(victim)

    store.save("sensor", {"count": 2})  # the previous "generation" is the planted link

    _untouched(victim)
    store.close()


def test_a_fifo_planted_as_the_store_file_is_refused_without_hanging(tmp_path):
    store, path = _store("json", tmp_path)
    os.mkfifo(path)
    outcome: list[BaseException] = []

    def open_store() -> None:
        try:
            store.load_all()
        except BaseException as exc:
            outcome.append(exc)

    opener = threading.Thread(target=open_store, daemon=True)
    opener.start()
    opener.join(timeout=10)

    assert not opener.is_alive(), "opening a FIFO blocked"
    assert [type(error) for error in outcome] == [StoreOpenError]
    assert "not a regular file" in str(outcome[0])


# -- folder and file modes ----------------------------------------------------------------------


@pytest.mark.parametrize("backend", sorted(BACKENDS))
@pytest.mark.parametrize("mode", [0o770, 0o707, 0o1777])
def test_a_state_folder_others_can_write_is_warned_about_once(tmp_path, caplog, backend, mode):
    folder = tmp_path / "data"
    folder.mkdir()
    folder.chmod(mode)
    store, _ = _store(backend, folder)

    with caplog.at_level(logging.WARNING, logger="triolette.stores"):
        store.save("sensor", {"count": 1})
        store.close()
        store.load_all()
    store.close()

    warnings = [r for r in caplog.records if r.levelno == logging.WARNING]
    assert len(warnings) == 2  # once per opening, not per write
    assert str(folder) in warnings[0].getMessage()
    assert f"{mode:04o}" in warnings[0].getMessage()


@pytest.mark.parametrize("backend", sorted(BACKENDS))
def test_an_owner_only_folder_is_not_warned_about(tmp_path, caplog, backend):
    store, _ = _store(backend, tmp_path / "data")
    with caplog.at_level(logging.WARNING, logger="triolette.stores"):
        store.load_all()
    store.close()
    assert caplog.records == []


@pytest.mark.parametrize("backend", sorted(BACKENDS))
def test_created_folders_are_owner_only_and_made_durable(tmp_path, monkeypatch, backend):
    folder = tmp_path.resolve()
    synced: list[str] = []
    real_fsync = os.fsync

    def fsync(fd: int) -> None:
        synced.append(os.readlink(f"/proc/self/fd/{fd}"))
        real_fsync(fd)

    monkeypatch.setattr(os, "fsync", fsync)
    previous = os.umask(0o022)
    try:
        store, _ = _store(backend, folder / "var" / "bridge")
        store.load_all()
        store.close()
    finally:
        os.umask(previous)

    for created in (folder / "var", folder / "var" / "bridge"):
        assert stat.S_IMODE(created.stat().st_mode) == 0o700, created
        assert str(created.parent) in synced, f"the creation of {created} was not fsynced"
    assert synced.index(str(folder)) < synced.index(str(folder / "var"))


def test_a_quarantined_database_and_its_log_are_owner_only(tmp_path):
    path = tmp_path / "state.db"
    path.write_bytes(b"not a database at all" * 100)
    Path(f"{path}-wal").write_bytes(b"stale log")
    for name in (path, f"{path}-wal"):
        os.chmod(name, 0o644)
    store = SqliteStore(path)

    assert store.load_all() == {}
    store.close()

    (report,) = store.quarantined
    for name in (report.moved_to, f"{report.moved_to}-wal"):
        assert stat.S_IMODE(os.stat(name).st_mode) == 0o600, name


@pytest.mark.parametrize("backend", sorted(BACKENDS))
def test_a_store_file_others_may_read_is_made_owner_only_when_opened(tmp_path, backend):
    store, path = _store(backend, tmp_path)
    store.save("token", {"secret": "s3cr3t"})
    store.close()
    path.chmod(0o644)  # copied in from a backup, say

    assert store.load_all() == {"token": {"secret": "s3cr3t"}}
    store.close()

    assert stat.S_IMODE(path.stat().st_mode) == 0o600


def test_a_quarantined_json_file_is_owner_only(tmp_path):
    path = tmp_path / "state.json"
    path.write_bytes(b"{damaged")
    path.chmod(0o644)
    store = JsonFileStore(path)

    assert store.load_all() == {}
    store.close()

    (report,) = store.quarantined
    assert stat.S_IMODE(os.stat(report.moved_to).st_mode) == 0o600


# -- refusing to start from empty -----------------------------------------------------------


@pytest.mark.parametrize("last_good", [None, b"\0\0"], ids=["no-last-good", "damaged-last-good"])
def test_refuse_leaves_a_damaged_json_file_in_place_and_refuses_every_time(
    tmp_path, caplog, last_good
):
    path = tmp_path / "state.json"
    path.write_bytes(b'{"gas": {"impulses": 12')
    if last_good is not None:
        path.with_name("state.json.last-good").write_bytes(last_good)

    for _ in range(2):  # a restart refuses again: nothing was moved out of the way
        store = JsonFileStore(path, on_damage="refuse")
        with caplog.at_level(logging.INFO, logger="triolette.stores"):
            error = _refused(store)
        assert "on_damage='refuse'" in str(error)
        assert "not valid JSON" in str(error)
        assert store.quarantined == []

    assert path.read_bytes() == b'{"gas": {"impulses": 12'
    assert corrupt_files(path) == []
    assert caplog.records == []
    assert JsonFileStore(path).load_all() == {}, "the failed open kept its lock"


def test_refuse_still_restores_a_good_last_copy(tmp_path):
    path = tmp_path / "state.json"
    path.write_bytes(b"{damaged")
    path.with_name("state.json.last-good").write_bytes(b'{"gas": {"impulses": 11}}')
    store = JsonFileStore(path, on_damage="refuse")

    assert store.load_all() == {"gas": {"impulses": 11}}
    store.close()
    assert len(store.quarantined) == 1


def test_refuse_leaves_a_damaged_database_in_place(tmp_path):
    path = tmp_path / "state.db"
    content = b"not a database at all" * 100
    path.write_bytes(content)
    store = SqliteStore(path, on_damage="refuse")

    assert "on_damage='refuse'" in str(_refused(store))

    assert path.read_bytes() == content
    assert corrupt_files(path) == []


def test_refuse_leaves_a_damaged_row_in_place(tmp_path):
    path = tmp_path / "state.db"
    with contextlib.closing(sqlite3.connect(path)) as db, db:
        db.execute("CREATE TABLE store (key TEXT PRIMARY KEY, data TEXT NOT NULL)")
        db.executemany("INSERT INTO store VALUES (?, ?)", [("gas", '{"n": 1'), ("ok", "{}")])
    store = SqliteStore(path, on_damage="refuse")

    assert "the row 'gas'" in str(_refused(store))

    with contextlib.closing(sqlite3.connect(path)) as db:
        assert dict(db.execute("SELECT key, data FROM store")) == {"gas": '{"n": 1', "ok": "{}"}


@pytest.mark.parametrize("backend", sorted(BACKENDS))
def test_an_unknown_on_damage_is_a_value_error_naming_it(tmp_path, backend):
    kind, name = BACKENDS[backend]
    with pytest.raises(ValueError, match="'stop'"):
        kind(tmp_path / name, on_damage=cast(Any, "stop"))


def test_a_json_file_repeating_a_device_is_damage_and_the_last_good_copy_is_used(tmp_path):
    path = tmp_path / "state.json"
    raw = b'{"gas": {"impulses": 900}, "gas": {"impulses": 3}}'
    path.write_bytes(raw)
    path.with_name("state.json.last-good").write_text(json.dumps({"gas": {"impulses": 899}}))
    store = JsonFileStore(path)

    assert store.load_all() == {"gas": {"impulses": 899}}
    store.close()

    (report,) = store.quarantined
    assert "'gas' appears twice" in report.reason
    assert Path(report.moved_to).read_bytes() == raw
