"""A stop during a backoff wait, on a real mosquitto: the queued QoS 1 messages still arrive.

The broker is killed, QoS 1 events are queued while the actor waits to reconnect (a 60 s
backoff), the broker comes back, and the actor is closed in the middle of its wait: one more
connection delivers them before the goodbye.
"""

from __future__ import annotations

import uuid
from pathlib import Path

import trio

from triolette import App, Backoff, JsonFileStore, PahoTransport
from triolette.actors.mqtt import MqttActor
from triolette.core.messages import Message
from triolette.core.topics import Topics
from triolette.testing.mosquitto import Mosquitto
from triolette.testing.plugin import ObserverFactory

EVENTS = 30


class LossWatched(PahoTransport):
    """A PahoTransport that says when its connection's ``serve`` ended (the broker went away)."""

    def __init__(self, *args: object, **kwargs: object) -> None:
        super().__init__(*args, **kwargs)  # type: ignore[arg-type]
        self.lost = trio.Event()

    async def serve(self) -> None:
        try:
            await super().serve()
        finally:
            self.lost.set()


async def test_a_stop_during_a_backoff_wait_delivers_the_queued_qos1_messages(
    mosquitto: Mosquitto, mqtt_observer_factory: ObserverFactory
) -> None:
    prefix = f"stop-{uuid.uuid4().hex[:8]}"
    transport = LossWatched(
        mosquitto.host, mosquitto.port, client_id=prefix, keepalive=1, connect_timeout=1
    )
    actor = MqttActor(
        transport, Topics(prefix), reconnect=Backoff(initial=60, maximum=60, jitter=0)
    )
    async with trio.open_nursery() as nursery:
        await nursery.start(actor.run)
        assert actor.connected
        await trio.to_thread.run_sync(mosquitto.kill)
        with trio.fail_after(10):
            await transport.lost.wait()
        for number in range(EVENTS):
            await actor.enqueue(Message(f"{prefix}/dev/event", str(number), qos=1, retain=False))
        await trio.to_thread.run_sync(mosquitto.restart)
        observer = mqtt_observer_factory(mosquitto, [f"{prefix}/#"], start=False)
        await trio.to_thread.run_sync(observer.start)
        with trio.fail_after(20):  # far less than the backoff
            actor.close()
            await actor.stopped.wait()

    def all_events(messages: list[Message]) -> bool:
        return sum(m.topic == f"{prefix}/dev/event" for m in messages) >= EVENTS

    await trio.to_thread.run_sync(lambda: observer.wait_for(all_events, timeout=10))
    assert observer.payloads(f"{prefix}/dev/event") == list(range(EVENTS))
    assert observer.payloads(f"{prefix}/status")[-1] == "offline"


async def test_qos1_messages_a_stop_could_not_deliver_are_sent_by_the_next_start(
    mosquitto: Mosquitto, mqtt_observer_factory: ObserverFactory, tmp_path: Path
) -> None:
    prefix = f"carry-{uuid.uuid4().hex[:8]}"

    def app() -> tuple[App, LossWatched]:
        transport = LossWatched(
            mosquitto.host, mosquitto.port, client_id=prefix, keepalive=1, connect_timeout=1
        )
        built = App(
            prefix,
            "1.0.0",
            store=JsonFileStore(tmp_path / "state.json"),
            transport=transport,
            reconnect_backoff=Backoff(initial=60, maximum=60, jitter=0),
            log_statistics_every=None,
            shutdown_timeout=5,
        )

        @built.device("dev")
        async def dev() -> None:
            await trio.sleep_forever()  # keeps the app serving until the shutdown

        return built, transport

    first, transport = app()
    async with trio.open_nursery() as nursery:
        await nursery.start(first.serve)
        await first.wait_until_connected()
        await trio.to_thread.run_sync(mosquitto.kill)
        with trio.fail_after(10):
            await transport.lost.wait()
        mqtt = first.running.mqtt  # type: ignore[union-attr]
        for number in range(EVENTS):
            await mqtt.enqueue(Message(f"{prefix}/dev/event", str(number), qos=1, retain=False))
        first.shutdown()  # the broker is still away: the one more attempt fails
    await trio.to_thread.run_sync(mosquitto.restart)
    observer = mqtt_observer_factory(mosquitto, [f"{prefix}/#"], start=False)
    await trio.to_thread.run_sync(observer.start)

    second, _ = app()
    async with trio.open_nursery() as nursery:
        await nursery.start(second.serve)
        await second.wait_until_connected()

        def all_events(messages: list[Message]) -> bool:
            return sum(m.topic == f"{prefix}/dev/event" for m in messages) >= EVENTS

        await trio.to_thread.run_sync(lambda: observer.wait_for(all_events, timeout=10))
        second.shutdown()
    assert observer.payloads(f"{prefix}/dev/event") == list(range(EVENTS))
