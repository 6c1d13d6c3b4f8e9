"""A stop while the broker is away: one more attempt delivers what is queued, or says what not.

The MQTT actor runs over a :class:`MemoryBroker` with a long backoff, so the stop always comes
during a backoff wait; the autojump clock makes that wait free.
"""

from __future__ import annotations

import logging
from typing import Any

import pytest
import trio
import trio.testing

from triolette import App, DeviceContext, MemoryStore
from triolette.actors.mqtt import MqttActor
from triolette.core.backoff import Backoff
from triolette.core.messages import Message
from triolette.core.topics import Topics
from triolette.testing import MemoryBroker

EVENTS = 20


async def stop_during_backoff(broker: MemoryBroker, *, back_before_stop: bool) -> MqttActor:
    """Connect, lose the broker, queue ``EVENTS`` QoS 1 events, then stop in the backoff wait."""
    actor = MqttActor(
        broker.client(), Topics("app"), reconnect=Backoff(initial=600, maximum=600, jitter=0)
    )
    async with trio.open_nursery() as nursery:
        await nursery.start(actor.run)
        broker.online = False
        await trio.testing.wait_all_tasks_blocked()
        assert not actor.connected
        for number in range(EVENTS):
            await actor.enqueue(Message("app/dev/event", str(number), qos=1, retain=False))
        await actor.enqueue(Message("app/dev/state", "last", qos=1, retain=True))
        broker.online = back_before_stop
        with trio.fail_after(60):  # far less than the 600 s backoff
            actor.close()
            await actor.stopped.wait()
        assert trio.current_time() < 600
    return actor


async def test_a_stop_during_a_backoff_wait_connects_once_more_and_delivers_the_queue(
    autojump_clock: trio.abc.Clock, caplog: pytest.LogCaptureFixture
) -> None:
    broker = MemoryBroker()
    await stop_during_backoff(broker, back_before_stop=True)
    assert broker.payloads("app/dev/event") == list(range(EVENTS))
    assert broker.payloads("app/dev/state") == ["last"]
    assert broker.payloads("app/status")[-1] == "offline"  # the goodbye
    assert "not delivered" not in caplog.text


async def test_a_stop_with_the_broker_still_away_says_how_many_were_not_delivered(
    autojump_clock: trio.abc.Clock, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, "triolette.mqtt")
    broker = MemoryBroker()
    await stop_during_backoff(broker, back_before_stop=False)
    assert broker.on("app/dev/event") == []
    warnings = [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING]
    assert any("one more attempt to deliver what is queued failed" in w for w in warnings)
    assert f"stopped with {EVENTS + 1} QoS 1 messages not delivered to the broker" in warnings


async def test_a_stop_with_nothing_queued_does_not_connect_again(
    autojump_clock: trio.abc.Clock,
) -> None:
    broker = MemoryBroker()
    transport = broker.client()
    actor = MqttActor(
        transport, Topics("app"), reconnect=Backoff(initial=600, maximum=600, jitter=0)
    )
    async with trio.open_nursery() as nursery:
        await nursery.start(actor.run)
        broker.online = False
        await trio.testing.wait_all_tasks_blocked()
        broker.online = True
        actor.close()
    assert transport.connects == 1


async def test_messages_not_delivered_at_a_stop_are_kept_and_sent_by_the_next_start(
    autojump_clock: trio.abc.Clock, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, "triolette")
    broker, store = MemoryBroker(), MemoryStore()

    def app() -> App:
        built = App(
            "app",
            store=store,
            transport=broker.client(),
            reconnect_backoff=Backoff(initial=600, maximum=600, jitter=0),
            heartbeat_every=None,
            log_statistics_every=None,
        )

        @built.device("dev")
        async def dev(ctx: DeviceContext) -> None:
            await trio.sleep_forever()

        return built

    first = app()
    async with trio.open_nursery() as nursery:
        await nursery.start(first.serve)
        broker.online = False
        await trio.testing.wait_all_tasks_blocked()
        mqtt = first.running.mqtt  # type: ignore[union-attr]
        for number in range(EVENTS):
            await mqtt.enqueue(Message("app/dev/event", str(number), qos=1, retain=False))
        first.shutdown()
    assert broker.on("app/dev/event") == []
    assert f"kept {EVENTS} undelivered QoS 1 messages in the store" in caplog.text
    kept: Any = store.load("triolette/undelivered")
    assert [entry["text"] for entry in kept["messages"]] == [str(n) for n in range(EVENTS)]

    broker.online = True
    second = app()
    async with trio.open_nursery() as nursery:
        await nursery.start(second.serve)
        await second.wait_until_connected()
        second.shutdown()
    assert broker.payloads("app/dev/event") == list(range(EVENTS))
    assert f"sending {EVENTS} QoS 1 messages carried over from the last stop" in caplog.text
    assert store.load("triolette/undelivered") == {"messages": []}
