"""Throw-away places on real PostgreSQL and Redis servers, for tests (no pytest needed here).

:func:`postgres_database` creates a database of its own and drops it afterwards;
:func:`redis_prefix` gives a key prefix of its own and deletes its keys afterwards. Both call
``unavailable(reason)`` (which must not return) when the client library is missing or the
server does not answer.
"""

from __future__ import annotations

import contextlib
import secrets
import urllib.parse
from collections.abc import Callable, Iterator
from typing import NoReturn

Unavailable = Callable[[str], NoReturn]


def _with_path(url: str, path: str) -> str:
    return urllib.parse.urlunsplit(urllib.parse.urlsplit(url)._replace(path=path))


@contextlib.contextmanager
def postgres_database(server: str, unavailable: Unavailable) -> Iterator[str]:
    """A URL to a new database on the server of ``server`` (a URL to any database there)."""
    try:
        import psycopg
    except ImportError:
        unavailable("psycopg is not installed (pip install 'triolette[postgres]')")
    name = f"triolette_test_{secrets.token_hex(6)}"
    try:
        admin = psycopg.connect(server, autocommit=True, connect_timeout=3)
    except psycopg.Error as error:
        unavailable(f"no PostgreSQL server answers at {server}: {error}")
    try:
        admin.execute(f'CREATE DATABASE "{name}"')
        try:
            yield _with_path(server, f"/{name}")
        finally:
            admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
    finally:
        admin.close()


@contextlib.contextmanager
def redis_prefix(server: str, unavailable: Unavailable) -> Iterator[str]:
    """``server`` with a ``prefix=`` query parameter of its own (random hex, so no globbing)."""
    try:
        import redis
    except ImportError:
        unavailable("redis-py is not installed (pip install 'triolette[redis]')")
    prefix = f"triolette-test-{secrets.token_hex(6)}:"
    client = redis.Redis.from_url(server, socket_timeout=5, socket_connect_timeout=3)
    try:
        try:
            client.ping()
        except redis.RedisError as error:
            unavailable(f"no Redis server answers at {server}: {error}")
        separator = "&" if urllib.parse.urlsplit(server).query else "?"
        try:
            yield f"{server}{separator}prefix={urllib.parse.quote(prefix)}"
        finally:
            keys = list(client.scan_iter(match=f"{prefix}*", count=1000))
            if keys:
                client.delete(*keys)
    finally:
        client.close()
