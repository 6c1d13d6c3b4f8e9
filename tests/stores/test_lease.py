"""The lease contract, run against PostgreSQL, Redis and the in-memory double alike.

A claim takes every key or none and grants a new, larger epoch; another claimant is refused
with the holder named until the lease expires or is released; a renewal after a takeover is
refused; and a store fenced with an old epoch cannot write (nothing of its batch lands).
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator, Sequence
from typing import Any

import attrs
import pytest

from tests.stores.lease_double import LeaseBoard, LeasedMemoryStore
from tests.stores.remote import open_remote
from triolette.core.errors import LeaseHeldError, LeaseLostError, StoreFencedError
from triolette.stores._remote import take_query
from triolette.stores.lease import LeasedStore, LeaseOwner

SECONDS = 30.0  # long: a lease only ends when a test expires it


@attrs.define
class Shared:
    """Two stores on one shared backend, and a way to make leases expire at once."""

    open_store: Callable[[], Any]
    expire: Callable[[Sequence[str]], None]
    leases: list[Any] = attrs.Factory(list)

    def lease(self, owner: LeaseOwner, store: Any = None) -> Any:
        """A lease of ``owner`` through ``store`` (a new one by default), closed after the test."""
        self.leases.append((store or self.open_store()).open_lease(owner, SECONDS))
        return self.leases[-1]


@pytest.fixture(params=["memory", "postgres", "redis"])
def shared(request: pytest.FixtureRequest) -> Iterator[Shared]:
    kind = request.param
    stores: list[Any] = []
    if kind == "memory":
        board = LeaseBoard(time.monotonic)

        def make() -> Any:
            stores.append(LeasedMemoryStore(board))
            return stores[-1]

        yield Shared(make, board.expire)
        return
    url = str(request.getfixturevalue(f"{kind}_url"))

    def make_remote() -> Any:
        stores.append(open_remote(kind, url))
        return stores[-1]

    result = Shared(make_remote, _expirer(kind, url))
    yield result
    for thing in [*result.leases, *stores]:
        thing.close()


def _expirer(kind: str, url: str) -> Callable[[Sequence[str]], None]:
    """End the leases of ``keys`` now, as the server's clock passing their expiry would."""
    if kind == "postgres":
        import psycopg

        def expire_rows(keys: Sequence[str]) -> None:
            with psycopg.connect(url, autocommit=True) as db:
                db.execute(
                    "UPDATE triolette_store_lease SET expires = now() - interval '1 second' "
                    "WHERE device = ANY(%s)",
                    (list(keys),),
                )

        return expire_rows
    import redis

    plain, prefix = take_query(url, "prefix")

    def expire_keys(keys: Sequence[str]) -> None:
        with redis.Redis.from_url(plain) as db:
            db.delete(*(f"{prefix}lease:{key}" for key in keys))

    return expire_keys


def test_the_stores_are_leased_stores(shared):
    assert isinstance(shared.open_store(), LeasedStore)


def test_a_claim_is_refused_naming_the_holder_until_the_lease_expires(shared):
    holder = LeaseOwner("host-a", 4242)
    first = shared.lease(holder)
    epoch = first.claim(["d0", "d1"])
    second = shared.lease(LeaseOwner("host-b", 7))
    with pytest.raises(LeaseHeldError) as refused:
        second.claim(["d1", "d2"])
    error = refused.value
    assert (error.device, error.host, error.pid) == ("d1", "host-a", 4242)
    assert "held by another bridge: process 4242 on host-a since 20" in str(error)
    shared.expire(["d0", "d1"])
    assert second.claim(["d1", "d2"]) > epoch
    with pytest.raises(LeaseLostError):
        first.renew()


def test_a_refused_claim_takes_no_key(shared):
    first = shared.lease(LeaseOwner("a", 1))
    first.claim(["d1"])
    second = shared.lease(LeaseOwner("b", 2))
    with pytest.raises(LeaseHeldError):
        second.claim(["d0", "d1"])
    third = shared.lease(LeaseOwner("c", 3))
    third.claim(["d0"])  # d0 was not taken by the refused claim


def test_renewal_keeps_the_lease_and_release_hands_it_over_at_once(shared):
    first = shared.lease(LeaseOwner("a", 1))
    epoch = first.claim(["d0"])
    first.renew()
    first.renew()
    second = shared.lease(LeaseOwner("b", 2))
    with pytest.raises(LeaseHeldError):
        second.claim(["d0"])
    first.release()
    assert second.claim(["d0"]) > epoch


def test_a_store_fenced_with_an_old_epoch_writes_nothing(shared):
    old_store, new_store = shared.open_store(), shared.open_store()
    old_lease = shared.lease(LeaseOwner("a", 1), old_store)
    old_store.fence(old_lease.claim(["d0", "d1"]))
    old_store.load_all()
    old_store.save_many({"d0": {"n": 1}, "d1": {"n": 1}})

    shared.expire(["d0", "d1"])  # the old holder paused past its lease...
    new_lease = shared.lease(LeaseOwner("b", 2), new_store)
    new_store.fence(new_lease.claim(["d0", "d1"]))  # ...and another took over
    assert new_store.load_all() == {"d0": {"n": 1}, "d1": {"n": 1}}

    with pytest.raises(StoreFencedError) as refused:
        old_store.save_many({"d0": {"n": 2}, "d1": {"n": 2}})
    assert refused.value.epoch == old_lease.epoch
    assert "another bridge holds a newer lease" in str(refused.value)
    new_store.save_many({"d0": {"n": 5}})
    reader = shared.open_store()
    assert reader.load_all() == {"d0": {"n": 5}, "d1": {"n": 1}}


def test_a_store_without_a_lease_writes_unfenced(shared):
    store = shared.open_store()
    store.save("d0", {"n": 1})
    assert shared.open_store().load("d0") == {"n": 1}
