"""The service fixtures' helpers: a server that does not answer skips, or fails when required."""

from __future__ import annotations

from typing import NoReturn

import pytest

from triolette.testing.plugin import REQUIRE_SERVICES, missing_service
from triolette.testing.services import postgres_database, redis_prefix


class Unavailable(Exception):
    pass


def unavailable(reason: str) -> NoReturn:
    raise Unavailable(reason)


@pytest.mark.parametrize(
    ("helper", "server", "words"),
    [
        (postgres_database, "postgresql://postgres@127.0.0.1:1/test", "no PostgreSQL server"),
        (redis_prefix, "redis://127.0.0.1:1/0", "no Redis server"),
    ],
)
def test_a_server_that_does_not_answer_is_reported_with_its_address(helper, server, words):
    with pytest.raises(Unavailable) as caught, helper(server, unavailable):
        pass
    assert words in str(caught.value)
    assert "127.0.0.1:1" in str(caught.value)


def test_missing_service_skips_or_fails_when_services_are_required(monkeypatch):
    monkeypatch.delenv(REQUIRE_SERVICES, raising=False)
    with pytest.raises(pytest.skip.Exception, match="no server"):
        missing_service("no server")
    monkeypatch.setenv(REQUIRE_SERVICES, "1")
    with pytest.raises(pytest.fail.Exception, match="no server"):
        missing_service("no server")


def test_each_redis_prefix_is_new_and_its_keys_are_gone_afterwards(redis_url):
    import redis

    from triolette.stores._remote import take_query

    plain, prefix = take_query(redis_url, "prefix")
    with redis_prefix(plain, unavailable) as inner:
        _, inner_prefix = take_query(inner, "prefix")
        assert inner_prefix != prefix
        with redis.Redis.from_url(plain) as client:
            client.set(f"{inner_prefix}x", "1")
    with redis.Redis.from_url(plain) as client:
        assert client.exists(f"{inner_prefix}x") == 0
