"""The lease keeper and the app around it, on the in-memory lease double, in virtual time.

The timing rule under test (lease ``L``): renew every ``L/3``; a failing renewal is retried
until ``L - L/6`` after the last one that succeeded, and then the lease is lost; a standby
claims within ``L/3`` of the holder's lease ending.
"""

from __future__ import annotations

import contextlib
import math
from collections.abc import AsyncIterator

import pytest
import trio

from tests.stores.lease_double import LeaseBoard, LeasedMemoryStore, MemoryLease
from triolette import App, DeviceStore, LeaseHeldError, LeaseLostError
from triolette.actors.transport import LogTransport
from triolette.core.errors import StoreFencedError
from triolette.runtime.lease_keeper import LeaseKeeper
from triolette.stores.lease import LeaseOwner

L = 3.0
KEYS = ["d0", "d1"]


def _keeper(store: LeasedMemoryStore, lost: list[tuple[float, LeaseLostError]], **kw: object):
    return LeaseKeeper(
        store,
        seconds=L,
        on_lost=lambda error: lost.append((trio.current_time(), error)),
        owner=LeaseOwner("here", 1),
        **kw,  # type: ignore[arg-type]
    )


def _other(board: LeaseBoard) -> MemoryLease:
    """Another bridge's lease: long enough that it ends only when a test expires it."""
    return MemoryLease(board, LeaseOwner("there", 2), 1000 * L)


async def test_the_keeper_claims_fences_renews_every_third_and_releases(autojump_clock):
    board = LeaseBoard(autojump_clock.current_time)
    store = LeasedMemoryStore(board)
    lost: list[tuple[float, LeaseLostError]] = []
    keeper = _keeper(store, lost)
    async with trio.open_nursery() as nursery:
        assert await nursery.start(keeper.run, KEYS) is True
        assert keeper.epoch == store.epoch == 1  # the store's writes carry the epoch
        await trio.sleep(10.5)
        assert board.renewals == 10  # at 1, 2, ... 10 s
        nursery.cancel_scope.cancel()
    assert not lost
    assert board.grants == {}  # released on the way out: a standby need not wait


async def test_renewals_that_keep_failing_lose_the_lease_at_the_keepers_deadline(autojump_clock):
    board = LeaseBoard(autojump_clock.current_time)
    lost: list[tuple[float, LeaseLostError]] = []
    keeper = _keeper(LeasedMemoryStore(board), lost)
    async with trio.open_nursery() as nursery:
        await nursery.start(keeper.run, KEYS)
        await trio.sleep(2.5)  # renewed at 1 and 2
        board.failure = ConnectionError("the server is gone")
        await trio.sleep(10)
        nursery.cancel_scope.cancel()
    [(when, error)] = lost
    assert when == pytest.approx(2 + L - L / 6)  # before the server's lease (2 + L) ends
    assert "not renewed within 2.5 s (the server is gone)" in str(error)


async def test_a_renewal_refused_after_a_takeover_loses_the_lease_at_once(autojump_clock):
    board = LeaseBoard(autojump_clock.current_time)
    lost: list[tuple[float, LeaseLostError]] = []
    keeper = _keeper(LeasedMemoryStore(board), lost)
    async with trio.open_nursery() as nursery:
        await nursery.start(keeper.run, KEYS)
        await trio.sleep(1.5)
        board.expire(["d0", "d1"])
        _other(board).claim(["d1"])
        await trio.sleep(10)
        nursery.cancel_scope.cancel()
    [(when, error)] = lost
    assert when == pytest.approx(2.0)
    assert "'d1' is no longer ours" in str(error)
    assert board.grants["d1"].owner.host == "there"  # nothing released that is not ours


async def test_a_pause_past_the_deadline_is_a_lost_lease_without_asking_the_server(
    autojump_clock,
):
    board = LeaseBoard(autojump_clock.current_time)
    lost: list[tuple[float, LeaseLostError]] = []
    keeper = _keeper(LeasedMemoryStore(board), lost)
    async with trio.open_nursery() as nursery:
        await nursery.start(keeper.run, KEYS)
        await trio.sleep(0.5)
        autojump_clock.jump(L)  # as if the process had been stopped (SIGSTOP) for L seconds
        await trio.sleep(0.1)
        nursery.cancel_scope.cancel()
    assert board.renewals == 0
    [(_, error)] = lost
    assert "not renewed within" in str(error)


async def test_a_second_keeper_is_refused_naming_the_holder(autojump_clock):
    board = LeaseBoard(autojump_clock.current_time)
    _other(board).claim(["d1"])
    keeper = _keeper(LeasedMemoryStore(board), [])
    with pytest.raises(LeaseHeldError, match="process 2 on there since"):
        await keeper.run(KEYS)


async def test_a_standby_waits_and_claims_within_a_third_of_the_lease_after_it_ends(
    autojump_clock,
):
    board = LeaseBoard(autojump_clock.current_time)
    _other(board).claim(["d0", "d1"])
    keeper = _keeper(LeasedMemoryStore(board), [], standby=True)
    started: list[tuple[float, bool]] = []

    async def start(nursery: trio.Nursery) -> None:
        started.append((trio.current_time(), await nursery.start(keeper.run, KEYS)))

    async with trio.open_nursery() as nursery:
        nursery.start_soon(start, nursery)
        await trio.sleep(20)
        assert not started
        assert keeper.epoch is None
        board.expire(["d0", "d1"])  # the holder died, its lease ran out
        ended = trio.current_time()
        await trio.sleep(L)
        nursery.cancel_scope.cancel()
    [(when, granted)] = started
    assert granted is True
    assert keeper.epoch == 2
    assert when - ended <= L / 3


async def test_a_standby_told_to_stop_reports_started_without_a_lease(autojump_clock):
    board = LeaseBoard(autojump_clock.current_time)
    _other(board).claim(["d0"])
    keeper = _keeper(LeasedMemoryStore(board), [], standby=True)
    async with trio.open_nursery() as nursery:
        nursery.start_soon(_stop_later, keeper)
        assert await nursery.start(keeper.run, KEYS) is False
    assert keeper.epoch is None


async def _stop_later(keeper: LeaseKeeper) -> None:
    await trio.sleep(5)
    keeper.stop_waiting()


# -- the app around the keeper ----------------------------------------------------------------


def _counting_app(store: LeasedMemoryStore, **options: object) -> App:
    app = App(
        "leased",
        store=store,
        transport=LogTransport(),
        heartbeat_every=None,
        log_statistics_every=None,
        **{"lease_seconds": L, **options},  # type: ignore[arg-type]
    )

    @app.telemetry("d0", interval=0.1)
    async def count(store: DeviceStore) -> None:
        store["count"] = store.get("count", 0) + 1
        store.save()

    return app


async def test_an_app_that_loses_its_lease_stops_its_devices_and_writes_nothing_more(
    autojump_clock,
):
    board = LeaseBoard(autojump_clock.current_time)
    store = LeasedMemoryStore(board)
    app = _counting_app(store)
    with pytest.RaisesGroup(LeaseLostError):
        async with trio.open_nursery() as nursery:
            await nursery.start(app.serve)
            await trio.sleep(1.5)
            assert "d0" in board.data
            board.expire(["d0"])
            _other(board).claim(["d0"])  # another bridge took over
            taken_over = dict(board.data)
            await trio.sleep(30)
            pytest.fail("the app kept serving without its lease")
    assert board.data == taken_over  # not one write after the takeover


async def test_a_write_the_store_fences_stops_the_app_at_once(autojump_clock):
    board = LeaseBoard(autojump_clock.current_time)
    store = LeasedMemoryStore(board)
    app = _counting_app(store, lease_seconds=600.0)  # no renewal comes before the write
    with pytest.RaisesGroup(StoreFencedError):
        async with trio.open_nursery() as nursery:
            await nursery.start(app.serve)
            await trio.sleep(1)
            board.expire(["d0"])
            _other(board).claim(["d0"])
            taken_over = dict(board.data)
            await trio.sleep(30)
    assert store.refused == 1  # the first refused write stopped it: no retries
    assert board.data == taken_over


async def test_a_standby_app_asked_to_stop_before_its_turn_ends_cleanly(autojump_clock):
    board = LeaseBoard(autojump_clock.current_time)
    _other(board).claim(["d0", "triolette/undelivered"])
    entered: list[str] = []

    @contextlib.asynccontextmanager
    async def lifespan(context: object) -> AsyncIterator[None]:
        entered.append("lifespan")
        yield

    app = _counting_app(LeasedMemoryStore(board), standby=True, lifespan=lifespan)
    async with trio.open_nursery() as nursery:
        nursery.start_soon(app.serve)  # it reports started only once it took over
        await trio.sleep(10)
        app.shutdown()
    assert board.data == {}  # it never ran a device...
    assert app.statistics().cycles == {"d0": 0}
    assert entered == []  # ...nor entered the app's lifespan


def test_lease_seconds_must_be_positive():
    with pytest.raises(ValueError, match="lease_seconds must be a positive number"):
        App("x", lease_seconds=0)
    with pytest.raises(ValueError, match="lease_seconds"):
        App("x", lease_seconds=math.inf)
