"""Helpers shared by the PostgreSQL and Redis store tests: open a store by backend name."""

from __future__ import annotations

from typing import Any

REMOTE_BACKENDS = ("postgres", "redis")


def client_name_for(url: str) -> str:
    """The Redis client name of the stores ``open_remote`` makes on ``url``: the test's
    own, so a test kills its stores' connections and no one else's on a shared server."""
    from triolette.stores._remote import take_query

    _, prefix = take_query(url, "prefix")
    return "triolette-" + "".join(c for c in prefix or "" if c.isalnum() or c == "-")


def open_remote(backend: str, url: str, **options: Any) -> Any:
    """A new ``PostgresStore`` or ``RedisStore`` on ``url`` (imported here: optional extras)."""
    if backend == "postgres":
        from triolette.stores.postgres import PostgresStore

        return PostgresStore(url, **options)
    from triolette.stores.redis import RedisStore

    return RedisStore(url, client_name=client_name_for(url), **options)
