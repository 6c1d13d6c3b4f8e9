"""Reconnect pacing and retained commands in the MQTT actor, on virtual time."""

from __future__ import annotations

import logging
import random
from collections.abc import Callable

import pytest
import trio
import trio.testing

from triolette.actors.mqtt import MqttActor
from triolette.core.backoff import RECONNECT, Backoff
from triolette.core.messages import Message
from triolette.core.topics import Topics
from triolette.testing import MemoryBroker, MemoryTransport


def test_an_outage_is_retried_every_half_second_for_its_first_30_seconds() -> None:
    rng = random.Random(1)
    for lasted in (0.0, 1.0, 10.0, 29.9):
        assert 0.4 <= RECONNECT.outage_delay(lasted, rng) <= 0.6


def test_past_30_seconds_the_wait_is_a_tenth_of_the_outage_capped() -> None:
    exact = Backoff(initial=0.5, maximum=30.0, jitter=0.0)
    rng = random.Random(1)
    assert exact.outage_delay(30.0, rng) == pytest.approx(3.0)
    assert exact.outage_delay(120.0, rng) == pytest.approx(12.0)
    assert exact.outage_delay(3600.0, rng) == pytest.approx(30.0)
    assert Backoff(initial=5.0, jitter=0.0).outage_delay(40.0, rng) == pytest.approx(5.0)


class CountingTransport(MemoryTransport):
    """Notes the (virtual) time of each connection attempt."""

    def __init__(self, broker: MemoryBroker) -> None:
        super().__init__(broker)
        self.attempts: list[float] = []

    async def connect(self, will: Message, on_message: Callable[[Message], None]) -> bool:
        self.attempts.append(trio.current_time())
        return await super().connect(will, on_message)


async def test_each_of_many_outages_ends_within_a_second_of_the_brokers_return(
    autojump_clock: trio.abc.Clock,
) -> None:
    broker = MemoryBroker()
    actor = MqttActor(CountingTransport(broker), Topics("app"))
    returns: list[float] = []
    async with trio.open_nursery() as nursery:
        await nursery.start(actor.run)
        await actor.wait_connected()
        for _ in range(5):
            await trio.sleep(8)  # stable for longer than reset_after
            broker.online = False
            await trio.sleep(5)
            broker.online = True
            back = trio.current_time()
            await actor.wait_connected()
            returns.append(trio.current_time() - back)
        actor.close()
    assert max(returns) <= 0.6, returns


async def test_a_connection_lost_at_once_does_not_start_the_fast_retries_again(
    autojump_clock: trio.abc.Clock,
) -> None:
    """A broker that accepts and drops every connection is one long outage: retries slow down."""
    broker = MemoryBroker()
    transport = CountingTransport(broker)
    actor = MqttActor(transport, Topics("app"))
    async with trio.open_nursery() as nursery:
        await nursery.start(actor.run)
        while trio.current_time() < 100:
            await actor.wait_connected()
            transport.drop()
            await trio.testing.wait_all_tasks_blocked()  # the actor saw the loss
        actor.close()
        broker.online = False
    gaps = [b - a for a, b in zip(transport.attempts, transport.attempts[1:], strict=False)]
    assert max(gaps[:10]) <= 0.6
    assert min(gaps[-3:]) >= 0.1 * 60


async def test_a_retained_command_is_ignored_with_one_line_unless_the_device_opts_in(
    caplog: pytest.LogCaptureFixture,
) -> None:
    transport = MemoryTransport(MemoryBroker())
    actor = MqttActor(transport, Topics("app"), retained_commands=["gate"])
    got: dict[str, list[str]] = {"valve": [], "gate": []}

    def keeper(seen: list[str]) -> Callable[[Message], bool]:
        def deliver(message: Message) -> bool:
            seen.append(message.text)
            return True

        return deliver

    for device, seen in got.items():
        actor.route(device, keeper(seen))
    caplog.set_level(logging.WARNING, "triolette.mqtt")
    async with trio.open_nursery() as nursery:
        await nursery.start(actor.run)
        await actor.wait_connected()
        for device in ("valve", "gate"):
            transport.deliver(Message(f"app/{device}/set", "stale", retain=True))
            transport.deliver(Message(f"app/{device}/set", "stale", retain=True))
            transport.deliver(Message(f"app/{device}/set", "live"))
        actor.close()
    assert got == {"valve": ["live"], "gate": ["stale", "stale", "live"]}
    lines = [r.getMessage() for r in caplog.records if "retained command" in r.getMessage()]
    assert len(lines) == 1
    assert "app/valve/set" in lines[0]
    assert "retained_commands=['valve']" in lines[0]
