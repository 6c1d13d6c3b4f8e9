"""The ``Store`` protocol every backend satisfies, and the optional batch methods."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Protocol


class Store(Protocol):
    """A key-value backend for device state: synchronous on purpose, so backends stay simple.

    The runtime calls a store from one worker thread at a time, never from the trio loop.
    ``load`` returns a fresh dict the caller may mutate, or ``None`` for an unknown key.
    """

    def load(self, key: str) -> dict[str, object] | None: ...

    def save(self, key: str, data: dict[str, object]) -> None: ...


class BatchStore(Store, Protocol):
    """A store that also offers the batch methods the persistence actor prefers when present.

    ``save_many`` writes every entry or none of them, in one durable step (one file replace,
    one transaction). ``load_all`` returns every stored key at once. ``close`` releases files,
    connections and locks; the built-in stores reopen on the next call.
    """

    def save_many(self, states: Mapping[str, dict[str, object]]) -> None: ...

    def load_all(self) -> dict[str, dict[str, object]]: ...

    def close(self) -> None: ...
