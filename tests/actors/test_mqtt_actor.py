"""The MQTT actor's connection handling, against the in-memory broker on virtual time."""

from __future__ import annotations

from collections.abc import Sequence

import trio

from triolette import App
from triolette.actors.mqtt import MqttActor
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
