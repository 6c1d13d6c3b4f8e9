"""The MQTT actor's connection handling, against the in-memory broker on virtual time."""

from __future__ import annotations

import logging
from collections.abc import Sequence

import pytest
import trio

from triolette import App
from triolette.actors.mqtt import MqttActor
from triolette.actors.transport import LogTransport
from triolette.core.backoff import Backoff
from triolette.core.errors import ConnectError
from triolette.core.messages import Message
from triolette.core.topics import Topics
from triolette.testing import MemoryBroker, MemoryTransport


class NoSubackOnce(MemoryTransport):
    """The first subscribe fails like PahoTransport's does when no SUBACK comes."""

    def __init__(self, broker: MemoryBroker) -> None:
        super().__init__(broker)
        self.failures = 1

    async def subscribe(self, topics: Sequence[str]) -> None:
        if self.failures:
            self.failures -= 1
            await trio.lowlevel.checkpoint()
            raise ConnectError("memory broker", "no SUBACK: the broker stopped answering")
        await super().subscribe(topics)


async def test_a_subscription_the_broker_never_acknowledges_means_reconnect_not_crash(
    autojump_clock: trio.abc.Clock,
) -> None:
    broker = MemoryBroker()
    transport = NoSubackOnce(broker)
    actor = MqttActor(
        transport, Topics("app"), reconnect=Backoff(initial=0.1, maximum=0.1, jitter=0)
    )
    actor.route("dev", lambda message: True)
    async with trio.open_nursery() as nursery:
        await nursery.start(actor.run)
        with trio.fail_after(10):
            await actor.wait_connected()
        actor.close()
    assert transport.connects == 2


class SlowConnect(MemoryTransport):
    """A broker that accepts TCP but takes long to answer (PahoTransport: up to 2x5 s)."""

    async def connect(self, will: Message, on_message: object) -> bool:
        await trio.sleep(30)
        return await super().connect(will, on_message)  # type: ignore[arg-type]


async def test_a_shutdown_during_a_slow_first_connect_is_not_a_runtime_error(
    autojump_clock: trio.abc.Clock,
) -> None:
    app = App("app", transport=SlowConnect(MemoryBroker()), shutdown_timeout=1.0)

    @app.telemetry("meter", interval=1)
    async def meter() -> dict[str, int]:
        return {"x": 1}

    async def stop_soon() -> None:
        await trio.sleep(0.5)
        app.shutdown()

    async with trio.open_nursery() as nursery:
        nursery.start_soon(stop_soon)
        await app.serve()  # a clean stop (nothing to flush) is expected


# -- a dry run ------------------------------------------------------------------------------------


def logged(caplog: pytest.LogCaptureFixture) -> list[tuple[str, str, str]]:
    return [(r.name, r.levelname, r.getMessage()) for r in caplog.records]


async def test_a_dry_run_logs_each_publish_once_and_claims_no_broker(
    autojump_clock: trio.abc.Clock, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG, logger="triolette")
    actor = MqttActor(LogTransport(), Topics("app"))
    async with trio.open_nursery() as nursery:
        await nursery.start(actor.run)
        assert await actor.publish(Message("app/meter/state", b'{"x":1}', retain=True))
        assert await actor.publish(Message("app/meter/event", b"tick"))
        actor.close()
    lines = logged(caplog)
    assert [line for line in lines if "app/meter/" in line[2]] == [
        ("triolette.mqtt", "INFO", 'publish app/meter/state {"x":1} (retained)'),
        ("triolette.mqtt", "INFO", "publish app/meter/event tick"),
    ]
    assert ("triolette.mqtt", "INFO", "dry run, no broker: publishes are logged, not sent") in lines
    assert not [line for line in lines if "connected" in line[2]]


async def test_with_a_broker_the_connection_is_logged_and_publishes_only_at_debug(
    autojump_clock: trio.abc.Clock, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG, logger="triolette")
    actor = MqttActor(MemoryTransport(MemoryBroker()), Topics("app"))
    async with trio.open_nursery() as nursery:
        await nursery.start(actor.run)
        assert await actor.publish(Message("app/meter/event", b"tick"))
        actor.close()
    lines = logged(caplog)
    assert ("triolette.mqtt", "INFO", "connected to the MQTT broker") in lines
    assert [line for line in lines if "app/meter/" in line[2]] == [
        ("triolette.published", "DEBUG", "publish app/meter/event tick"),
    ]


async def test_an_app_without_a_transport_logs_each_state_once(
    autojump_clock: trio.abc.Clock, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG, logger="triolette")
    app = App("app")
    cycles = 0

    @app.telemetry("meter", interval=1)
    async def meter() -> dict[str, int]:
        nonlocal cycles
        cycles += 1
        if cycles == 2:
            app.shutdown()
        return {"n": cycles}

    await app.serve()
    states = [line for line in logged(caplog) if "app/meter/state" in line[2]]
    assert states == [
        ("triolette.mqtt", "INFO", 'publish app/meter/state {"n":1} (retained)'),
        ("triolette.mqtt", "INFO", 'publish app/meter/state {"n":2} (retained)'),
    ]


async def test_a_transport_given_after_construction_is_no_dry_run(
    autojump_clock: trio.abc.Clock, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG, logger="triolette")
    actor = MqttActor(LogTransport(), Topics("app"))
    actor.transport = MemoryTransport(MemoryBroker())  # as the app does for an embedded broker
    async with trio.open_nursery() as nursery:
        await nursery.start(actor.run)
        assert await actor.publish(Message("app/meter/event", b"tick"))
        actor.close()
    lines = logged(caplog)
    assert ("triolette.mqtt", "INFO", "connected to the MQTT broker") in lines
    assert ("triolette.published", "DEBUG", "publish app/meter/event tick") in lines


async def test_the_outbox_peak_counts_the_retained_table_and_both_queues() -> None:
    actor = MqttActor(MemoryTransport(MemoryBroker()), Topics("app"), outbox_size=8)

    def retained(n: int) -> Message:
        return Message(f"app/d{n}/state", b"{}", retain=True)

    for n in range(50):
        assert actor.publish_nowait(retained(n))
    assert actor.statistics().outbox_peak == 50
    for n in range(9):  # the ninth does not fit the QoS 1 queue
        actor.publish_nowait(Message(f"app/d{n}/event", b"e"))
    assert actor.statistics().outbox_peak == 58
    actor.publish_nowait(retained(0))  # replaces the table's entry: no deeper
    assert actor.statistics().outbox_peak == 58
    for n in range(50, 53):
        actor.publish_nowait(retained(n))
    assert actor.statistics().outbox_depth == 61
    assert actor.statistics().outbox_peak == 61
