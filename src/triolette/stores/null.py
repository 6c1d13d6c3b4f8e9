"""NullStore: the backend that keeps nothing."""

from __future__ import annotations

from collections.abc import Iterable, Mapping


class NullStore:
    """Every operation is a no-op: ``load`` finds nothing, saves are dropped."""

    def load(self, key: str) -> dict[str, object] | None:
        return None

    def save(self, key: str, data: dict[str, object]) -> None:
        pass

    def save_many(self, states: Mapping[str, dict[str, object]]) -> None:
        pass

    def load_all(self) -> dict[str, dict[str, object]]:
        return {}

    def close(self) -> None:
        pass

    def declare_versions(self, versions: Mapping[str, int]) -> None:
        pass

    def load_versions(self, keys: Iterable[str]) -> dict[str, int]:
        return dict.fromkeys(keys, 0)

    def __repr__(self) -> str:
        return "NullStore()"
