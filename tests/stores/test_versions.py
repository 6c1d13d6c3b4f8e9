"""State versions: every backend keeps each state's version beside it, and an app brings an
older stored state to its device's ``state_version`` through the migrations before the
handler sees it, refusing a newer one and leaving it untouched.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.stores.remote import open_remote
from triolette import (
    DeviceStore,
    JsonFileStore,
    MemoryStore,
    NullStore,
    SqliteStore,
    StateMigrationError,
    StateVersionError,
)
from triolette.stores.jsonfile import REVISIONS_KEY, VERSIONS_KEY
from triolette.testing import AppHarness

BACKENDS = ("json", "sqlite", "memory", "postgres", "redis")

V0: dict[str, Any] = {"watts": 1500}
"""A meter's state as version 0 wrote it: watts, no unit."""
V3: dict[str, Any] = {"power": {"kilowatts": 1.5}, "reads": 0}
"""The same state in version 3's layout."""


def _v0_to_v1(state: dict[str, Any]) -> dict[str, Any]:
    return {"kilowatts": state["watts"] / 1000}


def _v1_to_v2(state: dict[str, Any]) -> dict[str, Any]:
    return {"power": {"kilowatts": state["kilowatts"]}}


def _v2_to_v3(state: dict[str, Any]) -> dict[str, Any]:
    return {**state, "reads": 0}


class Meter:
    """A telemetry device at ``state_version=3`` that records what its handler saw and
    counts its reads in the store; ``calls`` counts each migration step run."""

    def __init__(self, migrate: dict[int, Callable[..., Any]] | None = None) -> None:
        self.seen: list[dict[str, Any]] = []
        self.calls: list[int] = []
        steps = migrate or {0: _v0_to_v1, 1: _v1_to_v2, 2: _v2_to_v3}
        self.migrate = {step: self._counted(step, fn) for step, fn in steps.items()}

    def _counted(self, step: int, fn: Callable[..., Any]) -> Callable[..., Any]:
        def run(state: dict[str, Any]) -> Any:
            self.calls.append(step)
            return fn(state)

        return run

    def harness(self, store: Any, *, model: type | None = None, **options: Any) -> AppHarness:
        harness = AppHarness.create(store=store, name="bridge", **options)

        @harness.app.telemetry(
            "meter", interval=60, state_version=3, migrate=self.migrate, state_model=model
        )
        async def meter(store: DeviceStore) -> dict[str, Any]:
            self.seen.append(store.to_dict())
            store["reads"] = store.get("reads", 0) + 1
            return {"reads": store["reads"]}

        return harness


@pytest.fixture(params=BACKENDS)
def place(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Callable[[], Any]]:
    """Opens stores on one place of the backend: a new store object each call (a memory store
    is one object, as nothing else would survive)."""
    backend = str(request.param)
    memory = MemoryStore()
    url = str(request.getfixturevalue(f"{backend}_url")) if backend in ("postgres", "redis") else ""
    opened: list[Any] = []

    def make() -> Any:
        if backend == "json":
            store: Any = JsonFileStore(tmp_path / "state.json")
        elif backend == "sqlite":
            store = SqliteStore(tmp_path / "state.db")
        elif backend == "memory":
            return memory
        else:
            store = open_remote(backend, url)
        opened.append(store)
        return store

    yield make
    for store in opened:
        store.close()


def _seed(store: Any, state: dict[str, Any], version: int = 0) -> None:
    if version:
        store.declare_versions({"meter": version})
    store.save("meter", state)
    store.close()


def _record(store: Any) -> tuple[str, int | None, int]:
    record = store.load_records()["meter"]
    store.close()
    return record.text, record.revision, record.version


# -- migrations, on every backend ------------------------------------------------------------


async def test_a_version_0_state_runs_through_three_migrations_before_the_handler(place):
    _seed(place(), V0)
    meter = Meter()
    await meter.harness(place()).run()
    assert meter.calls == [0, 1, 2]
    assert meter.seen == [V3]  # the handler saw the migrated state, never version 0's
    text, _, version = _record(place())
    assert (json.loads(text), version) == ({**V3, "reads": 1}, 3)

    again = Meter()
    await again.harness(place()).run()  # stored at version 3 now: nothing to migrate
    assert again.calls == []
    assert again.seen == [{**V3, "reads": 1}]
    assert _record(place())[2] == 3


async def test_migration_starts_from_the_stored_version(place):
    _seed(place(), {"kilowatts": 2.0}, version=1)
    meter = Meter()
    await meter.harness(place()).run()
    assert meter.calls == [1, 2]
    assert meter.seen == [{"power": {"kilowatts": 2.0}, "reads": 0}]


async def test_a_newer_stored_state_is_refused_and_left_untouched(place):
    _seed(place(), {"layout": "from a newer release"}, version=5)
    before = _record(place())
    meter = Meter()
    with pytest.RaisesGroup(StateVersionError, allow_unwrapped=True, flatten_subgroups=True) as e:
        await meter.harness(place()).run()
    error = _only(e.value, StateVersionError)
    assert not isinstance(error, StateMigrationError)
    assert (error.device, error.stored, error.code_version) == ("meter", 5, 3)
    assert "meter: the stored state has version 5" in str(error)
    assert "up to 3" in str(error)
    assert meter.seen == []
    assert meter.calls == []
    assert _record(place()) == before


async def test_a_failing_migration_names_device_and_step_and_keeps_the_stored_state(place):
    _seed(place(), V0)
    before = _record(place())

    def broken(state: dict[str, Any]) -> dict[str, Any]:
        raise KeyError("kilowatts")

    meter = Meter({0: _v0_to_v1, 1: broken, 2: _v2_to_v3})
    with pytest.RaisesGroup(StateMigrationError, allow_unwrapped=True, flatten_subgroups=True) as e:
        await meter.harness(place()).run()
    error = _only(e.value, StateMigrationError)
    assert (error.device, error.step, error.stored, error.code_version) == ("meter", 1, 0, 3)
    assert str(error).startswith("meter: migrating its stored state from version 1 to 2 failed")
    assert "KeyError: 'kilowatts'" in str(error)
    assert meter.seen == []
    assert _record(place()) == before


def _only(error: BaseException, kind: type[BaseException]) -> Any:
    """The one ``kind`` error, whether raised alone or inside a group."""
    if isinstance(error, BaseExceptionGroup):
        found = error.subgroup(kind)
        assert found is not None, error
        assert len(found.exceptions) == 1, error
        return _only(found.exceptions[0], kind)
    assert isinstance(error, kind)
    return error


# -- what each migration may return ------------------------------------------------------------


@pytest.mark.parametrize(
    ("returned", "problem"),
    [([1, 2], "migrate[0] returned list, not a dict"), (None, "returned NoneType, not a dict")],
)
async def test_a_migration_that_returns_no_dict_stops_the_app(returned, problem):
    store = MemoryStore({"meter": V0})
    meter = Meter({0: lambda state: returned, 1: _v1_to_v2, 2: _v2_to_v3})
    with pytest.RaisesGroup(StateMigrationError, allow_unwrapped=True, flatten_subgroups=True) as e:
        await meter.harness(store).run()
    assert problem in str(_only(e.value, StateMigrationError))
    assert store.load_records()["meter"].version == 0
    assert store.load("meter") == V0


async def test_a_migration_that_returns_no_json_stops_the_app():
    store = MemoryStore({"meter": V0})
    meter = Meter({0: _v0_to_v1, 1: _v1_to_v2, 2: lambda state: {**state, "when": object()}})
    with pytest.RaisesGroup(StateMigrationError, allow_unwrapped=True, flatten_subgroups=True) as e:
        await meter.harness(store).run()
    error = str(_only(e.value, StateMigrationError))
    assert error.startswith("meter: migrating its stored state from version 2 to 3 failed")
    assert '["when"]' in error
    assert store.load("meter") == V0


async def test_a_missing_migration_is_named():
    store = MemoryStore()
    _seed(store, {"kilowatts": 2.0}, version=1)
    harness = AppHarness.create(store=store, name="bridge")

    @harness.app.telemetry("meter", interval=60, state_version=2)  # no migrate=
    async def meter(store: DeviceStore) -> None:
        raise AssertionError("the handler must not run")

    with pytest.RaisesGroup(StateMigrationError, allow_unwrapped=True, flatten_subgroups=True) as e:
        await harness.run()
    assert "no migration from version 1" in str(_only(e.value, StateMigrationError))


async def test_a_state_model_checks_the_migrated_state():
    from pydantic import BaseModel

    class Power(BaseModel):
        kilowatts: float

    class Reading(BaseModel):
        power: Power
        reads: int

    fitting = Meter()
    await fitting.harness(MemoryStore({"meter": V0}), model=Reading).run()
    assert fitting.seen == [V3]

    lots: dict[str, Any] = {"watts": "lots"}
    store = MemoryStore({"meter": lots})
    unfit = Meter({0: lambda state: {"kilowatts": state["watts"]}, 1: _v1_to_v2, 2: _v2_to_v3})
    with pytest.RaisesGroup(StateMigrationError, allow_unwrapped=True, flatten_subgroups=True) as e:
        await unfit.harness(store, model=Reading).run()
    error = _only(e.value, StateMigrationError)
    assert str(error).startswith("meter: the migrated state does not fit its state model")
    assert "kilowatts" in str(error)
    assert unfit.seen == []
    assert store.load("meter") == {"watts": "lots"}


# -- equal texts, and other devices -------------------------------------------------------------


async def test_a_migration_that_changes_nothing_writes_nothing_until_the_state_changes():
    store = MemoryStore({"meter": V3})  # version 0 by its record, already in version 3's layout
    same = Meter({step: (lambda state: state) for step in range(3)})
    await same.harness(store).run()
    assert same.calls == [0, 1, 2]
    record = store.load_records()["meter"]
    assert (json.loads(record.text), record.version) == ({**V3, "reads": 1}, 3)

    unchanged = MemoryStore({"meter": V3})
    harness = AppHarness.create(store=unchanged, name="bridge")

    @harness.app.telemetry("meter", interval=60, state_version=3, migrate=same.migrate)
    async def meter(store: DeviceStore) -> None:
        store.mark_dirty()  # a save of the same content does no I/O...

    await harness.run()
    assert unchanged.load_records()["meter"].version == 0  # ...so the migration runs again
    assert same.calls == [0, 1, 2, 0, 1, 2]  # next start, to the same result


async def test_devices_without_a_version_are_left_at_version_0_and_keep_newer_records():
    store = MemoryStore({"lamp": {"on": True}})
    harness = AppHarness.create(store=store, name="bridge")

    @harness.app.telemetry("lamp", interval=60)
    async def lamp(store: DeviceStore) -> None:
        store["on"] = False

    await harness.run()
    assert store.load_records()["lamp"].version == 0

    store.declare_versions({"lamp": 1})
    store.save("lamp", {"on": True})
    with pytest.RaisesGroup(StateVersionError, allow_unwrapped=True, flatten_subgroups=True):
        await AppHarness(harness.app.copy_with(store=store)).run()  # state_version=0 < 1


# -- the file formats ------------------------------------------------------------------------


async def test_a_cosalette_json_file_loads_as_version_0_and_migrates(tmp_path):
    path = tmp_path / "state.json"
    path.write_text(json.dumps({"meter": V0, "lamp": {"on": True}}))  # cosalette's format
    assert _record(JsonFileStore(path))[2] == 0
    meter = Meter()
    await meter.harness(JsonFileStore(path)).run()
    assert meter.seen == [V3]
    document = json.loads(path.read_text())
    assert document[VERSIONS_KEY] == {"meter": 3}  # lamp is at 0: not listed
    # What a cosalette reader does, {device: state}[device], still finds every state.
    assert document["meter"] == {**V3, "reads": 1}
    assert document["lamp"] == {"on": True}
    assert list(document)[-2:] == [REVISIONS_KEY, VERSIONS_KEY]


def test_the_json_file_refuses_to_store_a_device_named_like_its_versions_entry(tmp_path):
    store = JsonFileStore(tmp_path / "state.json")
    with pytest.raises(OSError, match="record of revisions and versions"):
        store.save(VERSIONS_KEY, {"meter": 1})
    store.close()


def test_a_cosalette_sqlite_table_gains_the_version_column_at_version_0(tmp_path):
    import sqlite3

    path = tmp_path / "state.db"
    db = sqlite3.connect(path)
    db.execute("CREATE TABLE store (key TEXT PRIMARY KEY, data TEXT NOT NULL)")
    db.execute("INSERT INTO store VALUES ('meter', ?)", (json.dumps(V0),))
    db.commit()
    db.close()
    store = SqliteStore(path)
    assert store.load_records()["meter"].version == 0
    store.declare_versions({"meter": 3})
    store.save("meter", V3)
    store.close()
    db = sqlite3.connect(path)
    assert db.execute("SELECT key, data, version FROM store").fetchall() == [
        ("meter", json.dumps(V3, separators=(",", ":")), 3)
    ]
    db.close()


def test_a_postgres_table_made_before_versions_gains_the_column(postgres_url):
    import psycopg

    with psycopg.connect(postgres_url, autocommit=True) as conn:
        conn.execute(
            "CREATE TABLE triolette_store (key text PRIMARY KEY, data text NOT NULL, "
            "revision bigint NOT NULL DEFAULT 1, written_at timestamptz NOT NULL DEFAULT now())"
        )
        insert = "INSERT INTO triolette_store (key, data) VALUES ('meter', %s)"
        conn.execute(insert, [json.dumps(V0)])
    store = open_remote("postgres", postgres_url)
    assert store.load_records()["meter"].version == 0
    assert store.load_versions(["meter", "absent"]) == {"meter": 0, "absent": 0}
    store.close()


def test_an_undeclared_writer_keeps_the_stored_version(place):
    _seed(place(), V3, version=3)
    store = place()
    store.save("meter", {**V3, "reads": 9})  # a tool that declares nothing
    store.close()
    assert _record(place())[2] == 3


def test_the_null_store_has_every_key_at_version_0():
    store = NullStore()
    store.declare_versions({"meter": 3})
    assert store.load_versions(["meter"]) == {"meter": 0}


def test_a_declared_version_is_recorded_by_a_save_of_the_same_state(place):
    _seed(place(), V3)
    store = place()
    store.declare_versions({"meter": 3})
    store.save("meter", V3)  # the text is stored already: written for its version alone
    store.close()
    assert _record(place())[2] == 3


async def test_each_migration_is_logged_with_both_versions(caplog):
    caplog.set_level("INFO", logger="triolette.persistence")
    await Meter().harness(MemoryStore({"meter": V0})).run()
    assert (
        "meter: migrated the stored state from version 0 to 3; it is written with that "
        "version at the device's next save"
    ) in caplog.text
