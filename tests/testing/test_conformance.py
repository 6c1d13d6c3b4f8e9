"""The conformance kit passes on every built-in backend and fails on broken ones."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from triolette import JsonFileStore, MemoryStore, NullStore, SqliteStore
from triolette.testing import check_store


def test_memory_store_conforms():
    store = MemoryStore()
    passed = check_store(lambda: store, strict_json=True)
    assert "survives reopen" in passed
    assert "rejects non json" in passed


def test_json_file_store_conforms(tmp_path: Path):
    passed = check_store(lambda: JsonFileStore(tmp_path / "state.json"), strict_json=True)
    assert "survives reopen" in passed


def test_sqlite_store_conforms(tmp_path: Path):
    passed = check_store(lambda: SqliteStore(tmp_path / "state.db"), strict_json=True)
    assert "save many and load all" in passed
    assert "encoded methods agree" in passed


def test_null_store_conforms():
    passed = check_store(NullStore, remembers=False)
    assert passed == ["is a store", "unknown key is none", "forgets"]


class DictFileStore:
    """A user's minimal backend, as the docs show it: one JSON file per key."""

    def __init__(self, folder: Path) -> None:
        self.folder = folder

    def load(self, key: str) -> dict[str, Any] | None:
        path = self.folder / f"{key}.json"
        return json.loads(path.read_text()) if path.exists() else None

    def save(self, key: str, data: dict[str, Any]) -> None:
        (self.folder / f"{key}.json").write_text(json.dumps(data))


def test_a_user_backend_without_batch_methods_conforms(tmp_path: Path):
    passed = check_store(lambda: DictFileStore(tmp_path))
    assert "save many and load all" not in passed
    assert "survives reopen" in passed


class SharesReferences:
    """Broken: keeps the caller's dict, so later mutations leak into the store."""

    def __init__(self) -> None:
        self.data: dict[str, Any] = {}

    def load(self, key: str) -> dict[str, Any] | None:
        return self.data.get(key)

    def save(self, key: str, data: dict[str, Any]) -> None:
        self.data[key] = data


class Merges(SharesReferences):
    """Broken: merges into the previous state instead of replacing it."""

    def save(self, key: str, data: dict[str, Any]) -> None:
        self.data[key] = json.loads(json.dumps({**self.data.get(key, {}), **data}))

    def load(self, key: str) -> dict[str, Any] | None:
        found = self.data.get(key)
        return None if found is None else json.loads(json.dumps(found))


class LosesTypes(Merges):
    """Broken: stores floats for every number."""

    def save(self, key: str, data: dict[str, Any]) -> None:
        self.data[key] = json.loads(json.dumps(data), parse_int=float)


class AcceptsTuples(MemoryStore):
    """Broken for strict_json: silently turns tuples into lists."""

    def save(self, key: str, data: dict[str, object]) -> None:
        super().save(key, json.loads(json.dumps(data)))


SHARED_ACCEPTS_TUPLES = AcceptsTuples()


class ForgetsEncodedTexts(MemoryStore):
    """Broken: its encoded read path does not see what was saved."""

    def load_all_encoded(self) -> dict[str, str]:
        return {}


class NoSave:
    """Broken: not a store at all."""

    def load(self, key: str) -> None:
        return None


@pytest.mark.parametrize(
    ("backend", "check", "options"),
    [
        (SharesReferences, "copies in and out", {}),
        (Merges, "overwrite replaces", {}),
        (LosesTypes, "round trip", {}),
        (lambda: SHARED_ACCEPTS_TUPLES, "rejects non json", {"strict_json": True}),
        (ForgetsEncodedTexts, "encoded methods agree", {"survives_reopen": False}),
        (NoSave, "is a store", {}),
        (MemoryStore, "survives reopen", {}),  # a new, empty store on every open
        (MemoryStore, "forgets", {"remembers": False}),
    ],
)
def test_the_kit_catches_broken_backends(backend, check, options):
    with pytest.raises(AssertionError, match=f"store check '{check}' failed"):
        check_store(backend, **options)
