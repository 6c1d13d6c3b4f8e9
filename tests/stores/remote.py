"""Helpers shared by the PostgreSQL and Redis store tests: open a store by backend name."""

from __future__ import annotations

from typing import Any

REMOTE_BACKENDS = ("postgres", "redis")


def open_remote(backend: str, url: str, **options: Any) -> Any:
    """A new ``PostgresStore`` or ``RedisStore`` on ``url`` (imported here: optional extras)."""
    if backend == "postgres":
        from triolette.stores.postgres import PostgresStore

        return PostgresStore(url, **options)
    from triolette.stores.redis import RedisStore

    return RedisStore(url, **options)
