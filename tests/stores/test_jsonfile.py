"""JsonFileStore: quarantine of damaged files, last good copy, temp sweep, mode, lock, durable
write order, cosalette compatibility, the in-memory document and the one-device-per-line format.

Everything runs on real files in ``tmp_path``; the lock test uses a real second process.
"""

from __future__ import annotations

import builtins
import datetime
import io
import json
import logging
import os
import re
import stat
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from tests.stores.layout import corrupt_files, devices_in, temp_prefix
from triolette import JsonFileStore
from triolette.stores import QuarantineReport
from triolette.stores.jsonfile import REVISIONS_KEY

GOOD = {"sensor": {"count": 3}, "counter": {"n": 1}}
GOOD_BYTES = (json.dumps(GOOD, indent=2) + "\n").encode()  # as cosalette writes it

LAST_GOOD = {"sensor": {"count": 2}, "counter": {"n": 0}}
LAST_GOOD_BYTES = (json.dumps(LAST_GOOD, indent=2) + "\n").encode()

STAMP = re.compile(r"\.corrupt-(\d{8}T\d{6}Z)(?:-\d+)?$")

# A truncated document must really be broken: cutting only the final newline would still parse.
TRUNCATIONS = [1, 2, 17, len(GOOD_BYTES) // 2, len(GOOD_BYTES) - 2]

CORRUPT = [
    pytest.param(b"this is not json\n", "not valid JSON", id="not-json"),
    pytest.param(b'[{"count": 3}]\n', "top level is an array", id="array"),
    *(
        pytest.param(GOOD_BYTES[:cut], "not valid JSON", id=f"truncated-at-{cut}")
        for cut in TRUNCATIONS
    ),
    pytest.param(b"\0" * len(GOOD_BYTES), "NUL bytes", id="nul-bytes"),
    pytest.param(b"", "empty", id="zero-length"),
    pytest.param(b"  \n\t\n", "only blanks", id="blanks"),
    pytest.param(b'{"sensor": {"name": "caf\xe9"}}\n', "not UTF-8", id="invalid-utf8"),
    pytest.param(b'{"sensor": 5, "counter": {"n": 1}}\n', "'sensor' is a number", id="entry-5"),
    pytest.param(b'{"sensor": [1, 2]}\n', "'sensor' is an array", id="entry-array"),
    pytest.param(b'{"sensor": {"v": NaN}}\n', "NaN", id="nan"),
    pytest.param(b'{"sensor": {"v": -Infinity}}\n', "-Infinity", id="infinity"),
    pytest.param(b'{"sensor": {"v": "\\ud800"}}\n', "lone surrogate", id="lone-surrogate"),
    pytest.param(
        b'{"sensor": {"count": 9}, "sensor": {"count": 3}}\n',
        "the key 'sensor' appears twice",
        id="repeated-device",
    ),
    pytest.param(
        b'{"sensor": {"count": 9, "count": 3}}\n',
        "the key 'count' appears twice",
        id="repeated-key",
    ),
    pytest.param(
        b'{"sensor": {"v": ' + b"[" * 100_000 + b"]" * 100_000 + b"}}\n",
        "nests too deeply",
        id="too-deep",
    ),
]


@pytest.fixture
def far_timezone():
    """Run with a local time far from UTC, so a local-time stamp would be caught."""
    old = os.environ.get("TZ")
    os.environ["TZ"] = "XST-5:30"
    time.tzset()
    yield
    if old is None:
        del os.environ["TZ"]
    else:
        os.environ["TZ"] = old
    time.tzset()


@pytest.fixture
def permissive_umask():
    old = os.umask(0o022)
    yield
    os.umask(old)


def _now() -> datetime.datetime:
    return datetime.datetime.now(datetime.UTC).replace(microsecond=0)


def _error_records(caplog: pytest.LogCaptureFixture) -> list[logging.LogRecord]:
    return [
        r for r in caplog.records if r.name == "triolette.stores" and r.levelno >= logging.ERROR
    ]


def _check_quarantined(
    path: Path,
    raw: bytes,
    reason: str,
    store: JsonFileStore,
    caplog: pytest.LogCaptureFixture,
    opened: tuple[datetime.datetime, datetime.datetime],
) -> Path:
    """The bytes sit unchanged under a UTC-stamped name, reported once and logged once."""
    (moved,) = corrupt_files(path)
    assert moved.read_bytes() == raw
    match = STAMP.search(moved.name)
    assert match, moved.name
    stamp = datetime.datetime.strptime(match[1], "%Y%m%dT%H%M%SZ").replace(tzinfo=datetime.UTC)
    assert opened[0] <= stamp <= opened[1]

    (report,) = store.quarantined
    assert isinstance(report, QuarantineReport)
    assert report.path == path
    assert Path(report.moved_to) == moved
    assert reason in report.reason

    (record,) = _error_records(caplog)
    message = record.getMessage()
    assert str(path) in message
    assert str(moved) in message
    assert reason in message
    return moved


def _save_leaves_quarantine_alone(
    store: JsonFileStore, key: str, state: dict[str, object], moved: Path, raw: bytes
) -> None:
    """A save, then close: the quarantined file keeps its bytes, inode and mtime."""
    identity = moved.stat()
    store.save(key, state)
    store.close()
    assert corrupt_files(store.path) == [moved]
    assert moved.read_bytes() == raw
    assert moved.stat().st_ino == identity.st_ino
    assert moved.stat().st_mtime_ns == identity.st_mtime_ns


@pytest.mark.usefixtures("far_timezone")
@pytest.mark.parametrize(("raw", "reason"), CORRUPT)
def test_corrupt_file_without_last_good_is_moved_aside_and_store_starts_empty(
    tmp_path, caplog, raw, reason
):
    path = tmp_path / "state.json"
    path.write_bytes(raw)
    store = JsonFileStore(path)

    before = _now()
    with caplog.at_level(logging.ERROR, logger="triolette.stores"):
        assert store.load_all() == {}
        assert store.load("sensor") is None
    after = _now()

    moved = _check_quarantined(path, raw, reason, store, caplog, (before, after))
    assert store.quarantined[0].restored_from is None
    (record,) = _error_records(caplog)
    assert record.levelno == logging.CRITICAL, "a loss of every device's state is not missed"
    assert "EVERY DEVICE STARTS FROM EMPTY" in record.getMessage()
    assert "on_damage='refuse'" in record.getMessage()
    assert "\n" not in record.getMessage()
    assert not path.exists()
    _save_leaves_quarantine_alone(store, "sensor", {"count": 4}, moved, raw)
    assert devices_in(path.read_bytes()) == {"sensor": {"count": 4}}
    # The damaged bytes never become the "last good" copy.
    assert not store.last_good.exists()

    reopened = JsonFileStore(path)
    assert reopened.load_all() == {"sensor": {"count": 4}}
    assert reopened.quarantined == []
    reopened.close()


@pytest.mark.usefixtures("far_timezone")
@pytest.mark.parametrize(("raw", "reason"), CORRUPT)
def test_corrupt_file_with_last_good_is_moved_aside_and_last_good_restored(
    tmp_path, caplog, raw, reason
):
    path = tmp_path / "state.json"
    path.write_bytes(raw)
    last_good = tmp_path / "state.json.last-good"
    last_good.write_bytes(LAST_GOOD_BYTES)
    damaged_inode = path.stat().st_ino
    store = JsonFileStore(path)

    before = _now()
    with caplog.at_level(logging.ERROR, logger="triolette.stores"):
        assert store.load_all() == LAST_GOOD
    after = _now()

    moved = _check_quarantined(path, raw, reason, store, caplog, (before, after))
    assert store.quarantined[0].restored_from == last_good
    assert str(last_good) in _error_records(caplog)[0].getMessage()
    assert _error_records(caplog)[0].levelno == logging.ERROR  # nothing lost: no alarm
    # Rewritten at once, before any save: a crash now leaves the good content in place.
    assert devices_in(path.read_bytes()) == LAST_GOOD
    assert path.stat().st_ino != damaged_inode
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert last_good.read_bytes() == LAST_GOOD_BYTES  # the damage never became "last good"
    _save_leaves_quarantine_alone(store, "counter", {"n": 5}, moved, raw)
    assert devices_in(path.read_bytes()) == {**LAST_GOOD, "counter": {"n": 5}}
    assert devices_in(last_good.read_bytes()) == LAST_GOOD


def test_empty_but_valid_last_good_is_named_as_restored(tmp_path):
    path = tmp_path / "state.json"
    path.write_bytes(b"{broken")
    (tmp_path / "state.json.last-good").write_bytes(b"{}\n")
    store = JsonFileStore(path)

    assert store.load_all() == {}

    (report,) = store.quarantined
    assert report.restored_from == store.last_good
    assert devices_in(path.read_bytes()) == {}
    store.close()


def test_corrupt_file_and_corrupt_last_good_are_both_kept_and_store_starts_empty(tmp_path, caplog):
    path = tmp_path / "state.json"
    path.write_bytes(b"[1, 2")
    last_good = tmp_path / "state.json.last-good"
    last_good.write_bytes(b"\0\0\0")
    store = JsonFileStore(path)

    with caplog.at_level(logging.ERROR, logger="triolette.stores"):
        assert store.load_all() == {}

    assert [m.read_bytes() for m in corrupt_files(path)] == [b"[1, 2"]
    assert [m.read_bytes() for m in corrupt_files(last_good)] == [b"\0\0\0"]
    assert not path.exists()
    assert not last_good.exists()
    assert {r.path for r in store.quarantined} == {path, last_good}
    assert all(r.restored_from is None for r in store.quarantined)
    assert len(_error_records(caplog)) == 2
    store.close()


def test_moving_a_damaged_file_aside_is_made_durable(tmp_path, monkeypatch):
    folder = tmp_path.resolve()
    path = folder / "state.json"
    path.write_bytes(b"not json")
    events: list[tuple[str, str]] = []
    real_fsync, real_link = os.fsync, os.link

    def fsync(fd):
        events.append(("fsync", os.readlink(f"/proc/self/fd/{fd}")))
        real_fsync(fd)

    def link(src, dst, *args, **kwargs):
        events.append(("link", os.fspath(dst)))
        real_link(src, dst, *args, **kwargs)

    monkeypatch.setattr(os, "fsync", fsync)
    monkeypatch.setattr(os, "link", link)
    store = JsonFileStore(path)

    assert store.load_all() == {}

    (moved,) = corrupt_files(path)
    linked_at = events.index(("link", str(moved)))
    assert ("fsync", str(folder)) in events[linked_at + 1 :]
    store.close()


def test_repeated_quarantines_each_keep_their_own_copy(tmp_path):
    path = tmp_path / "state.json"
    contents = [b"first damage", b"second damage", b"third damage"]
    for raw in contents:
        path.write_bytes(raw)
        store = JsonFileStore(path)
        assert store.load_all() == {}
        store.close()

    moved = corrupt_files(path)
    assert sorted(m.read_bytes() for m in moved) == sorted(contents)


def test_last_good_holds_the_previous_generation_as_a_hard_link(tmp_path):
    path = tmp_path / "state.json"
    store = JsonFileStore(path)

    store.save("sensor", {"count": 1})
    assert not store.last_good.exists()
    first = path.stat()
    first_bytes = path.read_bytes()

    store.save("sensor", {"count": 2})
    assert store.last_good == tmp_path / "state.json.last-good"
    assert store.last_good.stat().st_ino == first.st_ino
    assert store.last_good.stat().st_nlink == 1
    assert store.last_good.read_bytes() == first_bytes
    assert devices_in(store.last_good.read_bytes()) == {"sensor": {"count": 1}}
    assert devices_in(path.read_bytes()) == {"sensor": {"count": 2}}
    second = path.stat()
    assert second.st_ino != first.st_ino

    store.save("sensor", {"count": 3})
    assert store.last_good.stat().st_ino == second.st_ino
    assert devices_in(store.last_good.read_bytes()) == {"sensor": {"count": 2}}
    assert devices_in(path.read_bytes()) == {"sensor": {"count": 3}}
    store.close()

    # No temp file or link survives a successful write.
    assert sorted(p.name for p in tmp_path.iterdir()) == [
        "state.json",
        "state.json.last-good",
        "state.json.lock",
    ]


def test_stale_temp_files_are_removed_on_open_and_others_left_alone(tmp_path):
    path = tmp_path / "state.json"
    path.write_bytes(GOOD_BYTES)
    prefix = temp_prefix(path)
    assert prefix == ".state.json.tmp-"
    stale = [tmp_path / f"{prefix}k2j3h4", tmp_path / f"{prefix}k2j3h4-prev"]
    unrelated = [
        tmp_path / ".other.json.tmp-k2j3h4",
        tmp_path / ".state.json.bak.tmp-k2j3h4",
        tmp_path / "state.json.tmp-k2j3h4",
        tmp_path / ".state.json.tmpk2j3h4",
        tmp_path / "notes.txt",
    ]
    for file in stale + unrelated:
        file.write_bytes(b'{"half": ')

    store = JsonFileStore(path)
    assert all(file.exists() for file in stale)  # opening is lazy
    assert store.load_all() == GOOD

    assert [file for file in stale if file.exists()] == []
    assert all(file.read_bytes() == b'{"half": ' for file in unrelated)
    assert path.read_bytes() == GOOD_BYTES
    store.close()


@pytest.mark.usefixtures("permissive_umask")
def test_new_store_file_is_owner_only_despite_permissive_umask(tmp_path):
    path = tmp_path / "data" / "state.json"
    store = JsonFileStore(path)

    store.save("sensor", {"secret": "hunter2"})
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    store.save("sensor", {"secret": "hunter3"})
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert stat.S_IMODE(store.last_good.stat().st_mode) == 0o600
    assert stat.S_IMODE((tmp_path / "data").stat().st_mode) == 0o700
    assert stat.S_IMODE((tmp_path / "data" / "state.json.lock").stat().st_mode) == 0o600
    store.close()


@pytest.mark.usefixtures("permissive_umask")
def test_existing_world_readable_file_becomes_owner_only_after_first_save(tmp_path):
    path = tmp_path / "state.json"
    path.write_bytes(GOOD_BYTES)
    path.chmod(0o644)
    store = JsonFileStore(path)

    store.save("sensor", {"count": 4})

    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert stat.S_IMODE(store.last_good.stat().st_mode) == 0o600  # the old generation too
    store.close()


def _record_fsync_and_replace(monkeypatch) -> list[tuple[str, ...]]:
    events: list[tuple[str, ...]] = []
    real_fsync, real_replace = os.fsync, os.replace

    def fsync(fd):
        events.append(("fsync", os.readlink(f"/proc/self/fd/{fd}"), str(os.fstat(fd).st_size)))
        real_fsync(fd)

    def replace(src, dst, *args, **kwargs):
        events.append(("replace", os.fspath(src), os.fspath(dst)))
        real_replace(src, dst, *args, **kwargs)

    monkeypatch.setattr(os, "fsync", fsync)
    monkeypatch.setattr(os, "replace", replace)
    return events


def test_first_write_fsyncs_temp_before_rename_and_folder_after(tmp_path, monkeypatch):
    folder = tmp_path.resolve()
    path = folder / "state.json"
    store = JsonFileStore(path)
    store.load_all()
    events = _record_fsync_and_replace(monkeypatch)

    store.save("sensor", {"count": 1})

    size = str(path.stat().st_size)
    renames = [e for e in events if e[0] == "replace"]
    assert len(renames) == 1
    _, temp, target = renames[0]
    assert target == str(path)
    assert Path(temp).parent == folder
    assert Path(temp).name.startswith(temp_prefix(path))
    rename_at = events.index(renames[0])
    assert ("fsync", temp, size) in events[:rename_at]
    assert [e[1] for e in events[rename_at + 1 :] if e[0] == "fsync"] == [str(folder)]
    store.close()


def test_next_write_links_last_good_then_renames_then_fsyncs_folder(tmp_path, monkeypatch):
    folder = tmp_path.resolve()
    path = folder / "state.json"
    store = JsonFileStore(path)
    store.save("sensor", {"count": 1})
    events = _record_fsync_and_replace(monkeypatch)

    store.save("sensor", {"count": 2})

    renames = [e for e in events if e[0] == "replace"]
    assert [e[2] for e in renames] == [str(store.last_good), str(path)]
    keep, main = renames
    temp = main[1]
    assert Path(temp).name.startswith(temp_prefix(path))
    keep_at, main_at = events.index(keep), events.index(main)
    temp_synced = [i for i, e in enumerate(events) if e[:2] == ("fsync", temp)]
    folder_synced = [i for i, e in enumerate(events) if e[:2] == ("fsync", str(folder))]
    # The data is complete and durable in the temp file before it takes the name.
    assert temp_synced
    assert temp_synced[0] < main_at
    assert events[temp_synced[0]][2] == str(path.stat().st_size)
    # The renames are durable only once the folder is synced, after the last one.
    assert folder_synced
    assert folder_synced[-1] > main_at
    # The old generation is kept before the new one replaces it.
    assert keep_at < main_at
    store.close()


def test_cosalette_file_loads_unchanged_and_other_keys_survive_a_save(tmp_path):
    document = {
        "sensor": {"count": 3},
        "counter": {"n": 1},
        "meter": {"reading": 1234.5, "unit": "m³", "history": [1, 2, None], "ok": True},
    }
    raw = (json.dumps(document, indent=2, ensure_ascii=False) + "\n").encode()
    path = tmp_path / "state.json"
    path.write_bytes(raw)
    store = JsonFileStore(path)

    assert store.load("sensor") == {"count": 3}
    assert store.load("counter") == {"n": 1}
    assert store.load("missing") is None
    assert store.load_all() == document
    assert list(store.load_all()) == list(document)
    assert store.quarantined == []
    assert path.read_bytes() == raw  # opening does not rewrite the file

    store.save("sensor", {"count": 4})
    store.close()

    saved = devices_in(path.read_bytes())
    assert saved == {**document, "sensor": {"count": 4}}
    assert list(saved) == list(document)
    assert store.last_good.read_bytes() == raw
    reopened = JsonFileStore(path)
    assert reopened.load_all() == saved
    reopened.close()


def _replace_behind_the_store(path: Path, document: dict[str, object]) -> None:
    other = path.with_name("elsewhere.json")
    other.write_text(json.dumps(document))
    os.rename(other, path)


def test_document_is_read_once_and_kept_in_memory(tmp_path, monkeypatch):
    path = tmp_path / "state.json"
    path.write_bytes(GOOD_BYTES)
    store = JsonFileStore(path)
    assert store.load("sensor") == {"count": 3}

    reads: list[str] = []

    def counting(real: Callable[..., Any], name: str) -> Callable[..., Any]:
        def wrapper(*args: Any, **kwargs: Any) -> Any:
            target = args[0]
            if isinstance(target, (str, Path)) and Path(target).name == path.name:
                reads.append(name)
            return real(*args, **kwargs)

        return wrapper

    for owner, name in [
        (Path, "read_bytes"),
        (Path, "read_text"),
        (Path, "open"),
        (builtins, "open"),
        (io, "open"),
        (os, "open"),
    ]:
        monkeypatch.setattr(owner, name, counting(getattr(owner, name), name))

    _replace_behind_the_store(path, {"sensor": {"count": 999}})

    assert store.load("sensor") == {"count": 3}
    assert store.load_all() == GOOD
    store.save("counter", {"n": 2})
    assert store.load("counter") == {"n": 2}
    store.save_many({"a": {}, "b": {"x": 1}})
    assert store.load_all() == {**GOOD, "counter": {"n": 2}, "a": {}, "b": {"x": 1}}
    assert reads == []
    # The write came from memory: the change made behind the store's back is gone.
    assert devices_in(path.read_bytes())["sensor"] == {"count": 3}
    store.close()


def test_save_many_is_one_replace_and_identical_content_is_none(tmp_path, monkeypatch):
    path = tmp_path / "state.json"
    store = JsonFileStore(path)
    store.save("existing", {"v": 0})
    events = _record_fsync_and_replace(monkeypatch)

    states: dict[str, dict[str, object]] = {f"device-{i}": {"i": i} for i in range(50)}
    store.save_many(states)

    onto_main = [e for e in events if e[0] == "replace" and e[2] == str(path)]
    assert len(onto_main) == 1
    assert devices_in(path.read_bytes()) == {"existing": {"v": 0}, **states}

    events.clear()
    written = path.stat()
    store.save_many({key: dict(value) for key, value in states.items()})
    store.save("existing", {"v": 0})
    assert events == []
    assert path.stat().st_ino == written.st_ino
    assert path.stat().st_mtime_ns == written.st_mtime_ns

    store.save_many({**states, "device-7": {"i": -7}})
    assert len([e for e in events if e[0] == "replace" and e[2] == str(path)]) == 1
    assert devices_in(path.read_bytes())["device-7"] == {"i": -7}
    store.close()


def test_unicode_round_trip_and_one_device_per_line(tmp_path):
    states: dict[str, dict[str, object]] = {
        "küche/温度": {
            "name": "Größe",
            "emoji": "😀🌡️",
            "escapes": 'tab\tnew\nline "quoted" back\\slash',
            "separators": "\u2028\u2029\x85",
            "control": "\x00\x1f\x7f",
            "list": ["ü", 1, 2.5, None, True, 2**70, -1e300, 0.1],
            "nested": {"ключ": {"深い": "値"}, "": "empty key"},
        },
        "😀": {"v": 0},
        'quo"te\nkey': {},
        "plain": {"x": -1},
    }
    path = tmp_path / "state.json"
    store = JsonFileStore(path)
    store.save_many(states)
    store.close()

    raw = path.read_bytes()
    assert devices_in(raw) == states
    lines = raw.decode("utf-8").split("\n")
    assert lines[0] == "{"
    assert lines[-2:] == ["}", ""]
    body = lines[1:-3]  # the last line before "}" holds the revisions
    revisions = ",".join(f"{json.dumps(k, ensure_ascii=False)}:1" for k in states)
    assert lines[-3] == f'"{REVISIONS_KEY}": {{{revisions}}}'  # each written once
    assert len(body) == len(states)
    assert all(line.endswith(",") for line in body)
    for line, (key, state) in zip(body, states.items(), strict=True):
        assert json.loads("{" + line.removesuffix(",") + "}") == {key: state}

    reopened = JsonFileStore(path)
    assert reopened.load_all() == states
    for key, state in states.items():
        assert reopened.load(key) == state
    assert reopened.quarantined == []
    reopened.close()


class _FakeTime:
    """A clock that only ``sleep`` moves, recording each pause."""

    def __init__(self) -> None:
        self.now = 100.0
        self.pauses: list[float] = []

    def monotonic(self) -> float:
        return self.now

    def sleep(self, seconds: float) -> None:
        self.pauses.append(seconds)
        self.now += seconds


@pytest.fixture
def fake_time(monkeypatch: pytest.MonkeyPatch) -> _FakeTime:
    fake = _FakeTime()
    monkeypatch.setattr("triolette.stores.jsonfile.time", fake)
    return fake


def test_a_rewrite_is_followed_by_a_pause_that_grows_with_the_file(tmp_path, fake_time):
    store = JsonFileStore(tmp_path / "state.json", rewrite_rate=1000)
    store.save("a", {"v": "x" * 500})
    first = (tmp_path / "state.json").stat().st_size
    assert fake_time.pauses == []  # the first rewrite starts at once
    store.save("a", {"v": "y" * 500})
    assert fake_time.pauses == [pytest.approx(first / 1000)]
    fake_time.now += 10  # the pause has passed by itself
    store.save("a", {"v": "z" * 500})
    assert len(fake_time.pauses) == 1
    assert store.rewrites == 3
    assert store.bytes_rewritten == first * 3
    assert json.loads((tmp_path / "state.json").read_text()) == {
        "a": {"v": "z" * 500},
        "triolette/revisions": {"a": 3},
    }


def test_the_pause_is_bounded_however_large_the_file(tmp_path, fake_time):
    from triolette.stores.jsonfile import MAX_PAUSE

    store = JsonFileStore(tmp_path / "state.json", rewrite_rate=1)
    store.save("a", {"v": 1})
    store.save("a", {"v": 2})
    assert fake_time.pauses == [MAX_PAUSE]


def test_without_a_rewrite_rate_each_batch_is_written_at_once(tmp_path, fake_time):
    store = JsonFileStore(tmp_path / "state.json", rewrite_rate=None)
    for n in range(3):
        store.save("a", {"v": n})
    assert fake_time.pauses == []
    assert store.rewrites == 3


@pytest.mark.parametrize("rate", [0, -1.0, float("nan")])
def test_a_rewrite_rate_that_is_not_positive_is_refused(tmp_path, rate):
    with pytest.raises(ValueError, match="rewrite_rate must be a positive number"):
        JsonFileStore(tmp_path / "state.json", rewrite_rate=rate)
