"""The server stores' URL helpers: never a password, options taken out of the query."""

from __future__ import annotations

import pytest

from triolette.stores._remote import safe_url, take_query


@pytest.mark.parametrize(
    ("url", "shown"),
    [
        (
            "postgresql://bridge:hunter2@db.example:5433/state",
            "postgresql://bridge@db.example:5433/state",
        ),
        ("postgresql://bridge:hun%40ter2@db.example/state", "postgresql://bridge@db.example/state"),
        ("redis://:hunter2@[::1]:6380/2", "redis://[::1]:6380/2"),
        ("rediss://cache.example/0?password=hunter2", "rediss://cache.example/0"),
        ("postgresql:///state?host=/run/postgresql", "postgresql:///state"),
    ],
)
def test_safe_url_drops_the_password_and_the_query(url, shown):
    assert safe_url(url) == shown
    assert "hunter2" not in safe_url(url)


def test_take_query_takes_one_parameter_and_keeps_the_others():
    url, table = take_query(
        "postgresql://h/db?sslmode=require&table=t1&application_name=x", "table"
    )
    assert table == "t1"
    assert url == "postgresql://h/db?sslmode=require&application_name=x"
    assert take_query("redis://h/0", "prefix") == ("redis://h/0", None)
    assert take_query("redis://h/0?prefix=a%3Ab%3A", "prefix") == ("redis://h/0", "a:b:")
