"""MemoryStore and NullStore: the test doubles behave like the real backends."""

from __future__ import annotations

import datetime
from typing import Any

import pytest

from triolette import MemoryStore, NullStore, StateNotJSONError


def test_memory_store_is_seeded_by_a_copy_checked_like_a_save():
    seed: dict[str, dict[str, Any]] = {"sensor": {"count": 99, "history": [1, 2]}}
    store = MemoryStore(seed)
    seed["sensor"]["history"].append(3)
    assert store.load("sensor") == {"count": 99, "history": [1, 2]}
    with pytest.raises(StateNotJSONError, match=r'meter: \["at"\] is a datetime'):
        MemoryStore({"meter": {"at": datetime.datetime(2026, 1, 1)}})


def test_memory_store_keeps_its_data_across_close():
    store = MemoryStore()
    store.save("sensor", {"n": 1})
    store.close()
    assert store.load("sensor") == {"n": 1}
    assert repr(store) == "MemoryStore(keys=['sensor'])"  # never the values: reprs get logged


def test_memory_store_rejects_bad_keys():
    for key in ["", "\ud800", 7]:
        with pytest.raises(TypeError, match="non-empty Unicode strings"):
            MemoryStore().save(key, {})  # type: ignore[arg-type]


def test_null_store_keeps_nothing_and_never_fails():
    store = NullStore()
    store.save("sensor", {"n": 1})
    store.save_many({"a": {}, "b": {}})
    assert store.load("sensor") is None
    assert store.load_all() == {}
    store.close()
    assert repr(store) == "NullStore()"
