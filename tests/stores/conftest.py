"""Fixtures shared by the store tests."""

from __future__ import annotations

import sqlite3
from typing import Any

import pytest


class StoreConnections:
    """The SQLite connections opened from now on, seen through ``sqlite3.connect`` (a public
    seam): tests inspect a store's connection, or make its next ``COMMIT`` fail like a dying
    card would, without reaching into the store.

    Connections opened with ``uri=True`` (the tests' own read-only readers) are not recorded.
    """

    def __init__(self, monkeypatch: pytest.MonkeyPatch) -> None:
        self.opened: list[sqlite3.Connection] = []
        self._faults: list[sqlite3.Error] = []
        faults = self._faults

        class Connection(sqlite3.Connection):
            def execute(self, sql: str, *args: Any) -> sqlite3.Cursor:
                if faults and sql.strip().upper() == "COMMIT":
                    raise faults.pop()
                return super().execute(sql, *args)

        real_connect = sqlite3.connect

        def connect(*args: Any, **kwargs: Any) -> sqlite3.Connection:
            if kwargs.get("uri"):
                reader: sqlite3.Connection = real_connect(*args, **kwargs)
                return reader
            db: sqlite3.Connection = real_connect(*args, factory=Connection, **kwargs)
            self.opened.append(db)
            return db

        monkeypatch.setattr(sqlite3, "connect", connect)

    @property
    def last(self) -> sqlite3.Connection:
        """The connection opened last (the store's current one, in a test with one store)."""
        return self.opened[-1]

    def fail_next_commit(self) -> None:
        """Make the next ``COMMIT`` on any recorded connection fail with a disk I/O error."""
        self._faults.append(sqlite3.OperationalError("disk I/O error"))


@pytest.fixture
def store_connections(monkeypatch: pytest.MonkeyPatch) -> StoreConnections:
    return StoreConnections(monkeypatch)
