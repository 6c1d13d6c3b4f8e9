"""DeviceStore: the seed's dict interface, dirty tracking, load guard and save semantics."""

from __future__ import annotations

import copy
import datetime
import shutil
import tempfile
from pathlib import Path
from typing import Any

import pytest
from hypothesis import settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, initialize, invariant, rule

from triolette import (
    DeviceStore,
    JsonFileStore,
    MemoryStore,
    SqliteStore,
    StateNotJSONError,
    StoreNotLoadedError,
    StoreWriteError,
)


def loaded(backend: Any, key: str = "sensor", **options: Any) -> DeviceStore:
    store = DeviceStore(backend, key, **options)
    store.load()
    return store


def test_the_seed_example_works():
    backend = MemoryStore()
    store = loaded(backend)
    store["count"] = store.get("count", 0) + 1
    store.setdefault("offset", 0.0)
    assert store.to_dict() == {"count": 1, "offset": 0.0}
    assert store.dirty
    store.save()
    assert not store.dirty
    store.mark_dirty()
    assert store.dirty
    assert backend.load("sensor") == {"count": 1, "offset": 0.0}


def test_a_pre_seeded_backend_is_seen_on_load():
    backend = MemoryStore()
    backend.save("sensor", {"count": 99})
    store = loaded(backend)
    assert store["count"] == 99
    assert not store.dirty


@pytest.mark.parametrize(
    "use",
    [
        lambda s: s["x"],
        lambda s: s.__setitem__("x", 1),
        lambda s: s.get("x"),
        lambda s: len(s),
        lambda s: "x" in s,
        lambda s: list(s.items()),
        lambda s: s.to_dict(),
        lambda s: s.save(),
        lambda s: s.mark_dirty(),
        lambda s: s.pop("x", None),
    ],
)
def test_use_before_load_is_an_error_naming_the_device(use):
    store = DeviceStore(MemoryStore(), "boiler")
    with pytest.raises(StoreNotLoadedError, match="boiler: the DeviceStore was used before"):
        use(store)
    assert not store.loaded


def test_the_full_mutable_mapping_surface_tracks_dirtiness():
    store = loaded(MemoryStore({"sensor": {"a": 1, "b": 2, "c": 3}}))
    assert sorted(store.keys()) == ["a", "b", "c"]
    assert sorted(store.values()) == [1, 2, 3]
    assert dict(store.items()) == {"a": 1, "b": 2, "c": 3}
    assert store == {"a": 1, "b": 2, "c": 3}
    assert not store.dirty
    store.setdefault("a", 100)
    store.update({})
    assert not store.dirty, "no-op mapping calls leave the store clean"
    assert store.pop("a") == 1
    assert store.dirty
    store.save()
    assert store.popitem() in {("b", 2), ("c", 3)}
    store.save()
    store.update({"d": 4}, e=5)
    store.clear()
    assert len(store) == 0
    assert store.dirty
    store.save()
    assert store.to_dict() == {}


def test_changes_inside_nested_values_count_as_dirty():
    store = loaded(MemoryStore({"sensor": {"calib": {"offset": 0.0}}}))
    store["calib"]["offset"] = 0.25
    assert store.dirty, "an in-place change of a nested value is detected"
    store.save()
    assert not store.dirty
    store["calib"]["offset"] = 0.25
    assert not store.dirty


def test_saves_and_loads_copy_so_later_mutations_do_not_leak():
    backend = MemoryStore()
    store = loaded(backend)
    store["readings"] = [1, 2]
    store.save()
    store["readings"].append(3)
    assert backend.load("sensor") == {"readings": [1, 2]}
    snapshot = store.to_dict()
    snapshot["readings"].append(4)
    assert store["readings"] == [1, 2, 3]


class CountingBackend(MemoryStore):
    def __init__(self) -> None:
        super().__init__()
        self.saves = 0

    def save(self, key: str, data: dict[str, object]) -> None:
        self.saves += 1
        super().save(key, data)


def test_saving_unchanged_content_does_not_reach_the_backend():
    backend = CountingBackend()
    store = loaded(backend)
    store.save()
    assert backend.saves == 0, "an empty, never-saved state needs no write"
    store["n"] = 1
    store.save()
    store["n"] = 1
    store.mark_dirty()
    store.save()
    assert backend.saves == 1
    assert not store.dirty


def test_a_non_json_value_is_refused_at_save_naming_device_and_path():
    backend = MemoryStore({"sensor": {"count": 1}})
    store = loaded(backend)
    store["calib"] = {"when": datetime.datetime(2026, 11, 27)}
    with pytest.raises(StateNotJSONError) as caught:
        store.save()
    assert str(caught.value) == 'sensor: ["calib"]["when"] is a datetime'
    assert store.dirty, "the refused change is still pending"
    assert backend.load("sensor") == {"count": 1}, "nothing stored was touched"
    other = loaded(backend, "other")
    other["n"] = 2
    other.save()
    assert backend.load("other") == {"n": 2}, "another device's save is not poisoned"


class FailingBackend(MemoryStore):
    fail = True

    def save(self, key: str, data: dict[str, object]) -> None:
        if self.fail:
            raise StoreWriteError(Path("state.json"), [key], OSError(28, "No space left"))
        super().save(key, data)


def test_a_backend_error_reaches_the_caller_and_keeps_the_store_dirty():
    backend = FailingBackend()
    store = loaded(backend)
    store["n"] = 1
    with pytest.raises(StoreWriteError, match="could not save sensor"):
        store.save()
    assert store.dirty
    assert store.seconds_since_save() is None
    backend.fail = False
    store.save()
    assert backend.load("sensor") == {"n": 1}


def test_seconds_since_save_follows_the_clock_of_real_writes():
    now = [100.0]
    store = loaded(MemoryStore(), clock=lambda: now[0])
    assert store.seconds_since_save() is None
    store["n"] = 1
    store.save()
    now[0] = 130.0
    assert store.seconds_since_save() == 30.0
    store.save()  # unchanged: no write, so the clock does not restart
    assert store.seconds_since_save() == 30.0


def test_repr_shows_key_loading_and_dirtiness_but_never_a_value():
    store = DeviceStore(MemoryStore({"sensor": {"token": "s3cr3t"}}), "sensor")
    assert repr(store) == "DeviceStore('sensor', not loaded, dirty=False)"
    store.load()
    assert repr(store) == "DeviceStore('sensor', loaded, dirty=False)"
    store["api_key"] = "hunter2"
    assert repr(store) == "DeviceStore('sensor', loaded, dirty=True)"
    assert "s3cr3t" not in str(store)
    assert "hunter2" not in f"{store!s} {store!r}"


@pytest.mark.parametrize("key", ["", None, 3, "\ud800"])
def test_a_device_store_needs_a_non_empty_string_key(key):
    with pytest.raises(TypeError, match="non-empty Unicode strings"):
        DeviceStore(MemoryStore(), key)


# -- model-based: DeviceStore + backend against a plain dict ----------------------------------

json_leaf = (
    st.none()
    | st.booleans()
    | st.integers()
    | st.floats(allow_nan=False, allow_infinity=False)
    | st.text()
)
json_value = st.recursive(
    json_leaf,
    lambda inner: (
        st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=4), inner, max_size=3)
    ),
    max_leaves=8,
)
names = st.sampled_from(["count", "offset", "calib", "last", "ü"])
devices = st.sampled_from(["sensor", "meter"])


class DeviceStoreMachine(RuleBasedStateMachine):
    """Random mutations, saves and reloads; a reload must equal the model as of the last save."""

    backend_kind = "memory"

    @initialize()
    def open(self) -> None:
        self.folder = Path(tempfile.mkdtemp(prefix="triolette-model-"))
        self.memory = MemoryStore()
        self.backend = self.open_backend()
        self.model: dict[str, dict[str, Any]] = {"sensor": {}, "meter": {}}
        self.saved: dict[str, dict[str, Any]] = {"sensor": {}, "meter": {}}
        self.stores = {name: loaded(self.backend, name) for name in self.model}

    def open_backend(self) -> Any:
        if self.backend_kind == "json":
            return JsonFileStore(self.folder / "state.json")
        if self.backend_kind == "sqlite":
            return SqliteStore(self.folder / "state.db")
        return self.memory

    @rule(device=devices, name=names, value=json_value)
    def assign(self, device: str, name: str, value: Any) -> None:
        self.stores[device][name] = value
        self.model[device][name] = copy.deepcopy(value)

    @rule(device=devices, name=names)
    def delete(self, device: str, name: str) -> None:
        self.stores[device].pop(name, None)
        self.model[device].pop(name, None)

    @rule(device=devices, value=json_leaf)
    def mutate_nested(self, device: str, value: Any) -> None:
        store = self.stores[device]
        inner = store.setdefault("calib", {})
        self.model[device].setdefault("calib", {})
        if isinstance(inner, dict):
            inner["nested"] = value
            self.model[device]["calib"]["nested"] = copy.deepcopy(value)

    @rule(device=devices)
    def clear(self, device: str) -> None:
        self.stores[device].clear()
        self.model[device].clear()

    @rule(device=devices)
    def save(self, device: str) -> None:
        self.stores[device].save()
        self.saved[device] = _copy(self.model[device])
        assert not self.stores[device].dirty

    @rule()
    def restart(self) -> None:
        """Drop every DeviceStore (unsaved changes are lost) and reopen the backend."""
        self.backend.close()
        self.backend = self.open_backend()
        self.stores = {name: loaded(self.backend, name) for name in self.model}
        self.model = {name: _copy(state) for name, state in self.saved.items()}

    @invariant()
    def matches_the_model(self) -> None:
        if not hasattr(self, "stores"):
            return
        for name, store in self.stores.items():
            assert store.to_dict() == self.model[name]
            if self.model[name] != self.saved[name]:
                assert store.dirty

    def teardown(self) -> None:
        if hasattr(self, "backend"):
            self.backend.close()
            shutil.rmtree(self.folder, ignore_errors=True)


def _copy(state: dict[str, Any]) -> dict[str, Any]:
    return copy.deepcopy(state)


class JsonDeviceStoreMachine(DeviceStoreMachine):
    backend_kind = "json"


class SqliteDeviceStoreMachine(DeviceStoreMachine):
    backend_kind = "sqlite"


model_settings = settings(max_examples=40, stateful_step_count=25, deadline=None)
TestDeviceStoreOverMemory = DeviceStoreMachine.TestCase
TestDeviceStoreOverJsonFile = JsonDeviceStoreMachine.TestCase
TestDeviceStoreOverSqlite = SqliteDeviceStoreMachine.TestCase
TestDeviceStoreOverMemory.settings = model_settings
TestDeviceStoreOverJsonFile.settings = model_settings
TestDeviceStoreOverSqlite.settings = model_settings
