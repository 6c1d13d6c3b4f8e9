"""Async generator device handlers: each ``yield`` is a work boundary."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import pytest
import trio
import trio.testing

from triolette import (
    App,
    DeviceContext,
    DeviceStore,
    MemoryStore,
    RegistrationError,
    SaveOnChange,
)
from triolette.actors.loops import HandlerActor
from triolette.testing import AppHarness


class CountingPolicy:
    """A save policy that says no and counts how often it was asked."""

    def __init__(self) -> None:
        self.asked = 0

    def should_save(self, store: Any, published: bool) -> bool:
        self.asked += 1
        return False


async def test_each_yield_asks_the_save_policy_and_a_change_is_saved_there(autojump_clock):
    backend = MemoryStore()
    harness = AppHarness.create(store=backend)
    saved_at_yield: list[object] = []
    go_on = trio.Event()

    @harness.app.device("meter", persist=SaveOnChange())
    async def meter(store: DeviceStore) -> AsyncIterator[None]:
        for reading in (1, 2, 3):
            store["reading"] = reading
            yield  # a boundary: the policy is asked, the change saved
            await harness.settle()
            saved_at_yield.append(backend.load("meter"))
        go_on.set()
        await trio.sleep_forever()

    async with harness.serving():
        await go_on.wait()
    assert saved_at_yield == [{"reading": 1}, {"reading": 2}, {"reading": 3}]


async def test_a_yield_without_a_store_change_still_asks_the_policy(autojump_clock):
    policy = CountingPolicy()
    harness = AppHarness.create(store=MemoryStore())

    @harness.app.device("ticker", persist=policy)
    async def ticker(store: DeviceStore) -> AsyncIterator[None]:
        for _ in range(4):
            await trio.sleep(1)
            yield

    await harness.run()
    assert policy.asked == 4


async def test_a_yield_counts_as_a_heartbeat(autojump_clock):
    harness = AppHarness.create()
    yields = 0

    @harness.app.device("steady", heartbeat=5)
    async def steady() -> AsyncIterator[None]:
        nonlocal yields
        for _ in range(10):  # 30 s in all, never 5 s without a yield
            await trio.sleep(3)
            yields += 1
            yield

    @harness.app.device("stuck", heartbeat=5, restart="temporary")
    async def stuck() -> AsyncIterator[None]:
        yield
        await trio.sleep(10)
        yield

    await harness.run()
    assert yields == 10
    stats = harness.app.statistics()
    assert stats.crashes == {"steady": 0, "stuck": 1}
    assert [e["type"] for e in harness.errors("stuck")] == ["HeartbeatMissedError"]
    assert "stuck" in stats.failed


async def test_a_generator_handler_is_closed_when_the_app_stops(autojump_clock):
    harness = AppHarness.create()
    closed = trio.Event()
    started = trio.Event()

    @harness.app.device("pump")
    async def pump(ctx: DeviceContext) -> AsyncIterator[None]:
        try:
            started.set()
            while True:
                await trio.sleep(1)
                yield
        finally:
            closed.set()

    async with harness.serving():
        await started.wait()
        assert not closed.is_set()
    assert closed.is_set()


async def test_a_generator_handler_that_raises_is_restarted(autojump_clock):
    harness = AppHarness.create()
    runs = 0

    @harness.app.device("flaky")
    async def flaky() -> AsyncIterator[None]:
        nonlocal runs
        runs += 1
        yield
        if runs < 3:
            raise OSError("lost the device")

    await harness.run()
    assert runs == 3
    assert harness.app.statistics().restarts == {"flaky": 2}


def test_a_generator_telemetry_or_command_handler_is_refused_with_the_reason():
    app = App("bridge")

    async def reading() -> AsyncIterator[dict[str, object]]:
        yield {"celsius": 20}

    with pytest.raises(RegistrationError, match=r"sensor: handler .* is an async generator; only"):
        app.telemetry("sensor", interval=5)(reading)
    with pytest.raises(
        RegistrationError, match=r"valve: handler .* only @app.device and @app.stream handlers"
    ):
        app.command("valve")(reading)


def test_a_generator_handler_cannot_be_asyncio_code():
    app = App("bridge")

    async def pump() -> AsyncIterator[None]:
        yield

    with pytest.raises(RegistrationError, match="pump: an async generator handler cannot run"):
        app.device("pump", asyncio=True)(pump)


async def test_each_yield_reaches_the_boundary_hook_after_the_policy(autojump_clock, monkeypatch):
    policy = CountingPolicy()
    harness = AppHarness.create(store=MemoryStore())
    asked_at_boundary: list[int] = []

    async def reached_boundary(actor: HandlerActor, ctx: DeviceContext) -> None:
        assert ctx.name == "ticker"
        asked_at_boundary.append(policy.asked)

    monkeypatch.setattr(HandlerActor, "reached_boundary", reached_boundary)

    @harness.app.device("ticker", persist=policy)
    async def ticker(store: DeviceStore) -> AsyncIterator[None]:
        for _ in range(3):
            yield

    await harness.run()
    assert asked_at_boundary == [1, 2, 3]


async def test_an_error_at_the_boundary_hook_ends_the_handler(autojump_clock, monkeypatch):
    harness = AppHarness.create()
    closed: list[bool] = []

    async def reached_boundary(actor: HandlerActor, ctx: DeviceContext) -> None:
        raise LookupError("reactor failed")

    monkeypatch.setattr(HandlerActor, "reached_boundary", reached_boundary)

    @harness.app.device("ticker", restart="temporary")
    async def ticker() -> AsyncIterator[None]:
        try:
            yield
            yield
        finally:
            closed.append(True)

    await harness.run()
    assert closed == [True]
    assert harness.app.statistics().crashes == {"ticker": 1}
    assert [e["type"] for e in harness.errors("ticker")] == ["LookupError"]
