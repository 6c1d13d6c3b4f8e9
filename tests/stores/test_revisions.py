"""Revisions: every record carries one; a shared store refuses a save based on a stale one.

PostgreSQL and Redis compare the revision a save was based on with the stored one in the same
statement or script as the write, and refuse the whole batch on a mismatch, naming the device
and both revisions. The file stores record revisions too, and still read files without them.
"""

from __future__ import annotations

import json
import sqlite3
from collections.abc import Callable, Iterator
from typing import Any

import pytest

from tests.stores.remote import REMOTE_BACKENDS, open_remote
from triolette import (
    JsonFileStore,
    MemoryStore,
    SqliteStore,
    StoreConflictError,
    StoreWriteError,
)
from triolette.core.jsonstate import decode_document
from triolette.stores._remote import Revisions
from triolette.stores.jsonfile import REVISIONS_KEY


@pytest.fixture(params=REMOTE_BACKENDS)
def two_stores(request: pytest.FixtureRequest) -> Iterator[Callable[[], Any]]:
    """Opens stores on one shared PostgreSQL database or Redis prefix."""
    url = str(request.getfixturevalue(f"{request.param}_url"))
    stores: list[Any] = []

    def make() -> Any:
        stores.append(open_remote(str(request.param), url))
        return stores[-1]

    yield make
    for store in stores:
        store.close()


def test_a_save_based_on_a_stale_revision_is_refused_and_overwrites_nothing(two_stores):
    mine, theirs = two_stores(), two_stores()
    mine.save("lamp", {"on": False})
    assert mine.load("lamp") == theirs.load("lamp") == {"on": False}  # both read revision 1
    theirs.save("lamp", {"on": True})  # revision 2
    with pytest.raises(StoreConflictError) as refused:
        mine.save_many({"lamp": {"on": False, "dim": 3}, "fan": {"speed": 1}})
    error = refused.value
    assert (error.device, error.expected, error.found) == ("lamp", 1, 2)
    assert str(error).startswith("lamp: the store ")
    assert "holds revision 2, but this save was based on revision 1" in str(error)
    assert "nothing was overwritten" in str(error)
    reader = two_stores()
    assert reader.load_all() == {"lamp": {"on": True}}  # not the lamp, not the fan either
    assert {key: r.revision for key, r in reader.load_records().items()} == {"lamp": 2}


def test_after_reading_the_newer_revision_the_save_goes_through(two_stores):
    mine, theirs = two_stores(), two_stores()
    mine.save("lamp", {"on": False})
    theirs.load_all()
    theirs.save("lamp", {"on": True})
    with pytest.raises(StoreConflictError):
        mine.save("lamp", {"on": False})
    assert mine.load("lamp") == {"on": True}  # a fresh read...
    mine.save("lamp", {"on": False})  # ...is the base of the next save
    assert two_stores().load_records()["lamp"].revision == 3


def test_a_record_created_by_another_writer_after_a_full_read_is_a_conflict(two_stores):
    mine, theirs = two_stores(), two_stores()
    assert mine.load_all() == {}  # every record read: "new" is known absent (revision 0)
    theirs.save("new", {"by": "them"})
    with pytest.raises(StoreConflictError) as refused:
        mine.save("new", {"by": "me"})
    assert (refused.value.expected, refused.value.found) == (0, 1)
    assert two_stores().load("new") == {"by": "them"}


def test_a_key_never_read_is_read_before_its_first_save(two_stores):
    """A store that never read a record takes the stored revision as the base (no conflict)."""
    two_stores().save("meter", {"kwh": 1})
    late = two_stores()
    late.save("meter", {"kwh": 2})
    assert two_stores().load_records()["meter"].revision == 2


def test_a_lost_write_that_landed_is_recognised_as_ours():
    revisions = Revisions()
    revisions.saw({"a": 4, "b": 4, "c": 4})
    revisions.attempted({"a": "A5", "b": "B5", "c": "C5"})
    assert revisions.unknown(["a", "b", "c", "d"]) == ["a", "b", "c", "d"]
    # a landed; b did not; c was changed by another writer meanwhile.
    revisions.resolve({"a": (5, "A5"), "b": (4, "B4"), "c": (5, "theirs")}, ["a", "b", "c"])
    assert [revisions.base(key) for key in "abc"] == [5, 4, 4]
    assert revisions.unknown(["a", "b", "c"]) == []


# -- the file stores ------------------------------------------------------------------------


def test_a_cosalette_json_file_loads_and_then_records_revisions(tmp_path):
    path = tmp_path / "state.json"
    path.write_text('{"lamp": {"on": true}, "meter": {"kwh": 7}}')
    store = JsonFileStore(path)
    assert store.load_all() == {"lamp": {"on": True}, "meter": {"kwh": 7}}
    assert {key: r.revision for key, r in store.load_records().items()} == {"lamp": 0, "meter": 0}
    store.save("lamp", {"on": False})
    store.save("lamp", {"on": True})
    store.close()

    document = json.loads(path.read_bytes())
    assert document[REVISIONS_KEY] == {"lamp": 2}
    # An older reader (one that knows no revisions) still reads an object of objects.
    assert decode_document(path.read_text())["meter"] == {"kwh": 7}
    reopened = JsonFileStore(path)
    assert reopened.load_all() == {"lamp": {"on": True}, "meter": {"kwh": 7}}
    assert {key: r.revision for key, r in reopened.load_records().items()} == {
        "lamp": 2,
        "meter": 0,
    }
    reopened.close()


def test_the_json_store_keeps_its_revisions_entry_for_itself(tmp_path):
    store = JsonFileStore(tmp_path / "state.json")
    store.save("lamp", {"on": True})
    with pytest.raises(StoreWriteError, match="the file's record of revisions"):
        store.save_many({"meter": {"kwh": 1}, REVISIONS_KEY: {"lamp": 99}})
    assert store.load_all() == {"lamp": {"on": True}}  # nothing of the batch
    assert store.load_records()["lamp"].revision == 1


def test_a_cosalette_sqlite_table_gets_a_revision_column_and_plain_readers_still_work(tmp_path):
    path = tmp_path / "state.db"
    with sqlite3.connect(path) as db:
        db.execute("CREATE TABLE store (key TEXT PRIMARY KEY, data TEXT NOT NULL)")
        db.execute("""INSERT INTO store VALUES ('meter', '{"kwh": 7}')""")
    db.close()
    store = SqliteStore(path)
    assert store.load_records()["meter"].revision == 0
    store.save_many({"meter": {"kwh": 8}, "lamp": {"on": True}})
    store.save("meter", {"kwh": 9})
    store.close()
    with sqlite3.connect(path) as db:
        rows = db.execute("SELECT key, data, revision FROM store ORDER BY key").fetchall()
    db.close()
    assert rows == [("lamp", '{"on":true}', 1), ("meter", '{"kwh":9}', 2)]
    reopened = SqliteStore(path)
    assert {key: r.revision for key, r in reopened.load_records().items()} == {
        "lamp": 1,
        "meter": 2,
    }
    reopened.close()


def test_the_memory_store_counts_revisions_and_skips_unchanged_saves():
    store = MemoryStore({"lamp": {"on": True}})
    store.save("lamp", {"on": True})  # identical: no write, no new revision
    store.save("lamp", {"on": False})
    assert store.load_records()["lamp"].revision == 2
