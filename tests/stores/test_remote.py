"""PostgresStore and RedisStore against the real servers on loopback: the contract they share.

Each test has a database (PostgreSQL) or key prefix (Redis) of its own, from the plugin's
``postgres_url`` and ``redis_url`` fixtures.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterator
from typing import Any

import pytest

from tests.stores.remote import REMOTE_BACKENDS, client_name_for, open_remote
from triolette import StateNotJSONError, StoreOpenError, StoreWriteError
from triolette.core.jsonstate import encode_state
from triolette.stores._remote import take_query
from triolette.testing import check_store


@pytest.fixture(params=REMOTE_BACKENDS)
def backend(request: pytest.FixtureRequest) -> str:
    return str(request.param)


@pytest.fixture
def url(backend: str, request: pytest.FixtureRequest) -> str:
    return str(request.getfixturevalue(f"{backend}_url"))


@pytest.fixture
def open_store() -> Iterator[Callable[..., Any]]:
    """``open_remote``, with every store it made closed at the end of the test."""
    stores: list[Any] = []

    def make(backend: str, url: str, **options: Any) -> Any:
        stores.append(open_remote(backend, url, **options))
        return stores[-1]

    yield make
    for store in stores:
        store.close()


def test_conforms(backend, url, open_store):
    passed = check_store(lambda: open_store(backend, url), strict_json=True)
    assert "survives reopen" in passed
    assert "encoded methods agree" in passed
    assert "rejects non json" in passed


def test_texts_round_trip_byte_for_byte(backend, url, open_store):
    store = open_store(backend, url)
    text = encode_state("a", {"z": 1, "a": [2.5, "ü", {"y": None, "b": True}], "m": 10**30})
    store.save_encoded({"a": text})
    store.close()
    assert open_store(backend, url).load_all_encoded() == {"a": text}


def test_each_write_bumps_the_revision_and_stamps_the_server_time(backend, url, open_store):
    store = open_store(backend, url)
    store.save_many({"a": {"n": 1}, "b": {"n": 1}})
    first = store.load_records()
    store.save("a", {"n": 2})
    second = store.load_records()
    assert (first["a"].revision, first["b"].revision) == (1, 1)
    assert (second["a"].revision, second["b"].revision) == (2, 1)
    assert second["a"].written_at >= first["a"].written_at
    assert second["b"].written_at == first["b"].written_at
    assert second["a"].written_at.tzinfo is not None


def test_a_rejected_state_sends_nothing(backend, url, open_store):
    store = open_store(backend, url)
    with pytest.raises(StateNotJSONError):
        store.save_many({"good": {"a": 1}, "bad": {"b": {1, 2}}})
    assert store.load_all() == {}


def test_the_durability_of_the_server_is_logged_once_at_open(backend, url, open_store, caplog):
    caplog.set_level(logging.INFO, logger="triolette.stores")
    store = open_store(backend, url)
    store.save("a", {"n": 1})
    store.close()
    store.save("a", {"n": 2})  # reconnects: no second line
    lines = [r.getMessage() for r in caplog.records if r.name == "triolette.stores"]
    assert len(lines) == 1, lines
    # What the setting costs is checked per setting elsewhere; the servers here may differ.
    settings = ("synchronous_commit=", "fsync=") if backend == "postgres" else ("appendonly=",)
    assert all(setting in lines[0] for setting in settings), lines[0]
    assert store.durability in lines[0]


def _with_password(url: str, password: str) -> str:
    scheme, rest = url.split("://", 1)
    user = "postgres" if scheme.startswith("postgres") else ""
    return f"{scheme}://{user}:{password}@{rest.split('@')[-1]}"


def _unreachable(url: str) -> str:
    scheme, rest = url.split("://", 1)
    host_and_path = rest.split("@")[-1]
    path = host_and_path[host_and_path.index("/") :]
    return f"{scheme}://user:hunter2@127.0.0.1:1{path}"


def test_a_server_not_there_at_open_is_a_store_open_error_without_the_password(
    backend, url, open_store
):
    store = open_store(backend, _unreachable(url), connect_timeout=2)
    with pytest.raises(StoreOpenError) as caught:
        store.load_all()
    assert "hunter2" not in str(caught.value)
    assert "user@127.0.0.1:1/" in str(caught.value)
    assert "hunter2" not in repr(store)


def test_a_killed_connection_is_an_outage_and_the_next_call_reconnects(backend, url, open_store):
    store = open_store(backend, url)
    store.save("a", {"n": 1})
    _kill_connections(backend, url)
    with pytest.raises(StoreWriteError) as caught:
        store.save("a", {"n": 2})
    assert isinstance(caught.value, OSError)
    store.save("a", {"n": 3})
    assert store.load("a") == {"n": 3}
    _kill_connections(backend, url)
    with pytest.raises(ConnectionError):
        store.load("a")
    assert store.load_all() == {"a": {"n": 3}}


def _kill_connections(backend: str, url: str) -> None:
    """End the connections of this test's stores from the server side: PostgreSQL's in the
    test's own database, Redis's named after the test's own prefix (see ``open_remote``)."""
    if backend == "postgres":
        import psycopg

        with psycopg.connect(url, autocommit=True) as admin:
            admin.execute(
                "SELECT pg_terminate_backend(pid) FROM pg_stat_activity "
                "WHERE application_name = 'triolette' AND datname = current_database()"
            )
        return
    import redis

    plain, _ = take_query(url, "prefix")
    with redis.Redis.from_url(plain, decode_responses=True) as admin:
        for client in admin.client_list():
            if client["name"] == client_name_for(url):
                admin.client_kill_filter(_id=client["id"])


def test_one_round_trip_per_batch(backend, url, open_store, monkeypatch):
    """A batch of 200 keys is one statement (PostgreSQL, autocommit) or one command (Redis)."""
    store = open_store(backend, url)
    store.load_all()  # connected, table made, durability read
    calls: list[Any] = []
    connection = store._connection()
    name = "execute" if backend == "postgres" else "execute_command"
    real = getattr(connection, name)

    def spy(*args: Any, **kwargs: Any) -> Any:
        calls.append(args)
        return real(*args, **kwargs)

    monkeypatch.setattr(connection, name, spy)
    store.save_many({f"dev-{i}": {"i": i, "pad": "x" * 50} for i in range(200)})
    assert len(calls) == 1
    store.save_encoded({f"dev-{i}": encode_state("d", {"i": -i}) for i in range(200)})
    assert len(calls) == 2
    assert len(store.load_all()) == 200
    assert len(calls) == 3  # reading everything is one call too


def test_redis_refuses_a_whole_batch_when_a_key_belongs_to_another_program(redis_url, open_store):
    import redis

    store = open_store("redis", redis_url)
    store.save("mine", {"n": 1})
    plain, prefix = take_query(redis_url, "prefix")
    with redis.Redis.from_url(plain) as other:
        other.set(f"{prefix}state:theirs", "a plain string")
    with pytest.raises(StoreWriteError) as caught:
        store.save_many({"mine": {"n": 2}, "theirs": {"n": 1}})
    assert "holds a string" in str(caught.value)
    assert store.load_all() == {"mine": {"n": 1}}


def test_postgres_names_what_synchronous_commit_off_can_cost(postgres_url, open_store, caplog):
    import psycopg

    with psycopg.connect(postgres_url, autocommit=True) as admin:
        admin.execute(
            "ALTER DATABASE " + postgres_url.rsplit("/", 1)[1] + " SET synchronous_commit = off"
        )
    caplog.set_level(logging.INFO, logger="triolette.stores")
    store = open_store("postgres", postgres_url)
    store.load_all()
    assert store.durability.startswith("synchronous_commit=off fsync=on: ")
    assert "can lose the batches of its last moment" in store.durability
    assert store.durability in caplog.text
