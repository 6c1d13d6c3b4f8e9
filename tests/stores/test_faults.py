"""Fault injection for the file backends: ENOSPC and EIO at every step of a save.

A failed save raises :class:`~triolette.StoreWriteError`, leaves what was persisted before as
it was, leaves no debris, is not taken for done, and the next save after the fault clears
succeeds. The monkeypatched faults fire once (a transient fault that then clears); the real
``ENOSPC`` test fills a tiny tmpfs inside a private mount namespace.
"""

from __future__ import annotations

import contextlib
import datetime
import errno
import json
import os
import shutil
import sqlite3
import stat
import subprocess
import sys
import textwrap
from pathlib import Path
from typing import Any

import pytest

from tests.stores.layout import devices_in
from triolette import JsonFileStore, SqliteStore, StateNotJSONError, StoreWriteError

pytestmark = pytest.mark.skipif(
    not os.path.isdir("/proc/self/fd"), reason="needs /proc/self/fd to tell files apart"
)

ERRNOS = [pytest.param(errno.ENOSPC, id="ENOSPC"), pytest.param(errno.EIO, id="EIO")]
BACKENDS = ["json", "sqlite"]


def _open(backend: str, folder: Path) -> tuple[JsonFileStore | SqliteStore, Path]:
    if backend == "json":
        path = folder / "state.json"
        return JsonFileStore(path), path
    path = folder / "state.db"
    return SqliteStore(path), path


def _raw(backend: str, path: Path) -> object:
    """What is on disk, read without the store: the file's bytes or the table's rows."""
    if backend == "json":
        return path.read_bytes()
    with contextlib.closing(sqlite3.connect(f"file:{path}?mode=ro", uri=True)) as db:
        return sorted(db.execute("SELECT key, data FROM store").fetchall())


def _persisted(backend: str, path: Path) -> dict[str, Any]:
    """The states on disk, decoded without the store."""
    if backend == "json":
        document: dict[str, Any] = devices_in(path.read_bytes())
        return document
    with contextlib.closing(sqlite3.connect(f"file:{path}?mode=ro", uri=True)) as db:
        return {key: json.loads(data) for key, data in db.execute("SELECT key, data FROM store")}


# -- injected faults --------------------------------------------------------------------------


class _OneFault:
    """Make the first call of one kind under ``folder`` raise ``OSError(error_number)``.

    Kinds: ``write`` (a data write), ``fsync-file``, ``fsync-folder`` (an fsync of a directory),
    ``replace-last-good`` (the rename that keeps the previous generation) and
    ``replace-target`` (the rename over the store file). Every other call goes through.
    """

    def __init__(self, monkeypatch, folder: Path, kind: str, error_number: int) -> None:
        self.folder = str(folder)
        self.kind = kind
        self.error_number = error_number
        self.fired = 0
        real_write, real_fsync, real_replace = os.write, os.fsync, os.replace

        def write(fd, data):
            if kind == "write" and self._mine(fd):
                self._fire()
            return real_write(fd, data)

        def fsync(fd):
            if kind.startswith("fsync-") and self._mine(fd):
                is_folder = stat.S_ISDIR(os.fstat(fd).st_mode)
                if is_folder == (kind == "fsync-folder"):
                    self._fire()
            return real_fsync(fd)

        def replace(src, dst, **kwargs):
            target = os.fspath(dst)
            if os.path.dirname(target) == self.folder and (
                (kind == "replace-last-good" and target.endswith(".last-good"))
                or (kind == "replace-target" and target.endswith("state.json"))
            ):
                self._fire()
            return real_replace(src, dst, **kwargs)

        monkeypatch.setattr(os, "write", write)
        monkeypatch.setattr(os, "fsync", fsync)
        monkeypatch.setattr(os, "replace", replace)

    def _mine(self, fd: int) -> bool:
        try:
            name = os.readlink(f"/proc/self/fd/{fd}")
        except OSError:
            return False
        return name == self.folder or name.startswith(self.folder + os.sep)

    def _fire(self) -> None:
        if not self.fired:
            self.fired += 1
            raise OSError(self.error_number, os.strerror(self.error_number))


# -- JSON store -------------------------------------------------------------------------------


@pytest.mark.parametrize("error_number", ERRNOS)
@pytest.mark.parametrize(
    "kind", ["write", "fsync-file", "replace-last-good", "replace-target", "fsync-folder"]
)
def test_json_store_survives_a_fault_at_every_step(tmp_path, monkeypatch, kind, error_number):
    folder = tmp_path.resolve()
    path = folder / "state.json"
    store = JsonFileStore(path)
    store.save("sensor", {"count": 1})
    store.save("sensor", {"count": 2})  # now there is a last good copy too
    before, last_good_before = path.read_bytes(), store.last_good.read_bytes()
    names_before = sorted(os.listdir(folder))
    batch: dict[str, dict[str, object]] = {"lamp": {"on": True}, "sensor": {"count": 3}}
    fault = _OneFault(monkeypatch, folder, kind, error_number)

    with pytest.raises(StoreWriteError) as failed:
        store.save_many(batch)

    assert fault.fired == 1
    error = failed.value
    assert isinstance(error, OSError)
    assert error.errno == error_number
    assert str(path) in str(error)
    assert "lamp" in str(error)
    assert "sensor" in str(error)
    assert sorted(os.listdir(folder)) == names_before  # no temp file left behind
    if kind == "fsync-folder":
        # The rename was done, only its durability is in doubt: the file holds the new
        # document and the generation it replaced is kept byte for byte as the last good copy.
        assert devices_in(path.read_bytes()) == batch
    else:
        assert path.read_bytes() == before
    # Once the previous generation was swapped in as the last good copy, it stays there.
    swapped = kind in ("replace-target", "fsync-folder")
    assert store.last_good.read_bytes() == (before if swapped else last_good_before)
    assert store.load("sensor") == {"count": 2}
    assert store.load("lamp") is None
    inode = path.stat().st_ino

    # The fault has cleared: the same save is written again, not taken as done.
    store.save_many(batch)
    assert fault.fired == 1
    assert path.stat().st_ino != inode
    assert devices_in(path.read_bytes()) == batch
    store.save("door", {"open": False})
    store.close()
    fresh = JsonFileStore(path)
    assert fresh.load_all() == {**batch, "door": {"open": False}}
    assert fresh.quarantined == []
    fresh.close()


# -- SQLite store -----------------------------------------------------------------------------


def test_after_a_failed_folder_fsync_saving_the_old_state_again_is_written(tmp_path, monkeypatch):
    """The rename landed before the fsync failed: the old state no longer looks unchanged."""
    folder = tmp_path.resolve()
    store = JsonFileStore(folder / "state.json")
    store.save("sensor", {"count": 1})
    fault = _OneFault(monkeypatch, folder, "fsync-folder", errno.EIO)
    with pytest.raises(StoreWriteError):
        store.save("sensor", {"count": 2})
    assert fault.fired == 1
    assert devices_in((folder / "state.json").read_bytes()) == {"sensor": {"count": 2}}

    store.save("sensor", {"count": 1})

    assert devices_in((folder / "state.json").read_bytes()) == {"sensor": {"count": 1}}
    store.close()


def test_sqlite_commit_failure_keeps_the_rows_and_the_store_reconnects(tmp_path, store_connections):
    path = tmp_path / "state.db"
    store = SqliteStore(path)
    store.save_many({"sensor": {"count": 1}, "lamp": {"on": False}})
    rows_before = _raw("sqlite", path)
    store_connections.fail_next_commit()
    batch: dict[str, dict[str, object]] = {"sensor": {"count": 2}, "door": {"open": True}}

    with pytest.raises(StoreWriteError) as failed:
        store.save_many(batch)

    assert isinstance(failed.value.__cause__, sqlite3.OperationalError)
    assert str(path) in str(failed.value)
    assert "sensor" in str(failed.value)
    assert "door" in str(failed.value)
    assert _raw("sqlite", path) == rows_before
    assert store.load("sensor") == {"count": 1}
    failing = store_connections.last

    store.save_many(batch)

    assert store_connections.last is not failing  # the connection that failed is not trusted
    assert _persisted("sqlite", path) == {"lamp": {"on": False}, **batch}
    store.close()
    fresh = SqliteStore(path)
    assert fresh.load_all() == {"lamp": {"on": False}, **batch}
    fresh.close()


def test_sqlite_full_database_keeps_the_rows_and_the_store_reconnects(tmp_path, store_connections):
    """SQLITE_FULL from SQLite itself: the connection may not grow the file by one page."""
    path = tmp_path / "state.db"
    store = SqliteStore(path)
    store.save_many({"sensor": {"count": 1}, "lamp": {"on": False}})
    rows_before = _raw("sqlite", path)
    db = store_connections.last
    pages = db.execute("PRAGMA page_count").fetchone()[0]
    assert db.execute(f"PRAGMA max_page_count={pages}").fetchone()[0] == pages
    big: dict[str, object] = {"trace": "x" * 20_000}

    with pytest.raises(StoreWriteError) as failed:
        store.save_many({"sensor": {"count": 2}, "scope": big})

    cause = failed.value.__cause__
    assert isinstance(cause, sqlite3.Error)
    assert cause.sqlite_errorcode == sqlite3.SQLITE_FULL
    assert failed.value.errno == errno.ENOSPC, "SQLite's full disk reads like the JSON store's"
    assert "scope" in str(failed.value)
    assert _raw("sqlite", path) == rows_before

    # A new connection has no page limit: the retry succeeds only if the store reconnected.
    store.save_many({"sensor": {"count": 2}, "scope": big})
    assert _persisted("sqlite", path) == {
        "lamp": {"on": False},
        "sensor": {"count": 2},
        "scope": big,
    }
    store.close()


# -- both backends ----------------------------------------------------------------------------


@pytest.mark.parametrize("backend", BACKENDS)
def test_a_failed_save_is_not_remembered(tmp_path, monkeypatch, store_connections, backend):
    folder = tmp_path.resolve()
    store, path = _open(backend, folder)
    store.save("sensor", {"count": 1})
    if backend == "json":
        assert isinstance(store, JsonFileStore)
        _OneFault(monkeypatch, folder, "write", errno.ENOSPC)
    else:
        assert isinstance(store, SqliteStore)
        store_connections.fail_next_commit()

    with pytest.raises(StoreWriteError):
        store.save("sensor", {"count": 2})
    assert _persisted(backend, path) == {"sensor": {"count": 1}}

    store.save("sensor", {"count": 2})  # the very same save, the fault has cleared
    assert _persisted(backend, path) == {"sensor": {"count": 2}}
    store.close()


@pytest.mark.parametrize("backend", BACKENDS)
def test_a_value_that_is_not_json_rejects_the_whole_batch(tmp_path, backend):
    store, path = _open(backend, tmp_path)
    store.save("sensor", {"count": 1})
    before = _raw(backend, path)
    batch: dict[str, dict[str, object]] = {
        "lamp": {"on": True},
        "clock": {"set": {"when": datetime.datetime(2024, 5, 1, 10, 0)}},
        "sensor": {"count": 2},
    }

    with pytest.raises(StateNotJSONError) as refused:
        store.save_many(batch)

    assert refused.value.device == "clock"
    assert refused.value.path == '["set"]["when"]'
    assert str(refused.value) == 'clock: ["set"]["when"] is a datetime'
    assert _raw(backend, path) == before
    assert store.load_all() == {"sensor": {"count": 1}}
    store.close()
    fresh, _ = _open(backend, tmp_path)
    assert fresh.load_all() == {"sensor": {"count": 1}}
    fresh.close()


# -- a real full file system --------------------------------------------------------------------

_FILL_UP = textwrap.dedent(
    """
    import errno, json, os, sqlite3, sys
    from pathlib import Path
    from triolette import JsonFileStore, SqliteStore, StoreWriteError

    def state(index):
        return {"payload": "x" * 700, "index": index}

    def how(error):
        if error.errno == errno.ENOSPC:
            return "ENOSPC"
        cause = error.__cause__
        if isinstance(cause, sqlite3.Error) and cause.sqlite_errorcode == sqlite3.SQLITE_FULL:
            return "SQLITE_FULL"
        return repr(error)

    def drive(name, make, folder):
        path = folder / ("state.json" if name == "json" else "state.db")
        filler = folder / "filler"
        filler.write_bytes(bytes(8192))
        store = make(path)
        saved = {}
        for index in range(1000):
            key = f"device{index}"
            try:
                store.save(key, state(index))
            except StoreWriteError as exc:
                error = exc
                break
            saved[key] = state(index)
        else:
            return {"backend": name, "full": False}
        store.close()
        debris = sorted(n for n in os.listdir(folder) if ".tmp-" in n)
        fresh = make(path)
        previous = fresh.load_all() == saved
        filler.unlink()
        fresh.save(key, state(index))
        fresh.close()
        again = make(path)
        after = again.load_all() == {**saved, key: state(index)}
        again.close()
        return {
            "backend": name,
            "full": True,
            "saved_before": len(saved),
            "error": how(error),
            "names": str(path) in str(error) and key in str(error),
            "debris": debris,
            "previous_loads": previous,
            "retry_loads": after,
        }

    for name, make, folder in (
        ("json", JsonFileStore, Path(sys.argv[1])),
        ("sqlite", SqliteStore, Path(sys.argv[2])),
    ):
        print("RESULT", json.dumps(drive(name, make, folder)), flush=True)
    """
)

# The -shm index alone takes 32 KiB, so the SQLite file system gets 128 KiB.
_MOUNT_AND_RUN = (
    'mount -t tmpfs -o size=64k tmpfs "$1" && mount -t tmpfs -o size=128k tmpfs "$2" '
    '|| exit 77; exec "$3" -c "$4" "$1" "$2"'
)


def _unshare() -> list[str]:
    program = shutil.which("unshare")
    if program is None:
        pytest.skip("unshare(1) is not installed")
    for flags in (["-r", "-m"], ["-m"]):
        with contextlib.suppress(OSError, subprocess.TimeoutExpired):
            probe = subprocess.run([program, *flags, "true"], capture_output=True, timeout=30)
            if probe.returncode == 0:
                return [program, *flags]
    pytest.skip("unshare cannot make a mount namespace here (no user namespaces and not root)")


def test_a_really_full_file_system(tmp_path):
    json_fs, sqlite_fs = tmp_path / "json-fs", tmp_path / "sqlite-fs"
    json_fs.mkdir()
    sqlite_fs.mkdir()
    command = [*_unshare(), "sh", "-c", _MOUNT_AND_RUN, "sh"]
    child = subprocess.run(
        [*command, str(json_fs), str(sqlite_fs), sys.executable, _FILL_UP],
        capture_output=True,
        text=True,
        timeout=120,
    )
    if child.returncode == 77:
        pytest.skip(f"cannot mount a tmpfs in a new mount namespace: {child.stderr.strip()}")
    assert child.returncode == 0, child.stderr
    results = {
        result["backend"]: result
        for result in (
            json.loads(line.removeprefix("RESULT "))
            for line in child.stdout.splitlines()
            if line.startswith("RESULT ")
        )
    }
    common = {"full": True, "names": True, "debris": [], "previous_loads": True}
    assert results["json"] == {
        **results["json"],
        **common,
        "error": "ENOSPC",
        "retry_loads": True,
    }
    assert results["sqlite"]["error"] == "ENOSPC"
    assert results["sqlite"] == {**results["sqlite"], **common, "retry_loads": True}
    assert results["json"]["saved_before"] > 1
    assert results["sqlite"]["saved_before"] > 1
    assert os.listdir(json_fs) == []  # the tmpfs was private to the child
