"""MemoryStore: the in-memory backend for tests and dry runs."""

from __future__ import annotations

from collections.abc import Mapping

from triolette.stores._encoded import EncodedStore


class MemoryStore(EncodedStore):
    """Keeps state in memory, with the same strict-JSON rule and copy isolation as the file stores.

    ``initial`` pre-seeds it (copied, and checked like a save). Nothing survives the process.
    """

    def __init__(self, initial: Mapping[str, dict[str, object]] | None = None) -> None:
        super().__init__()
        self._memory: dict[str, str] = {}
        if initial:
            self.save_many(initial)

    def _open(self) -> dict[str, str]:
        return self._memory

    def __repr__(self) -> str:
        """The keys held, never the values: a repr ends up in logs."""
        return f"MemoryStore(keys={sorted(self._memory)!r})"
