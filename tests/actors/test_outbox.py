"""A hung broker and a full outbox, with the in-memory broker on virtual time.

:class:`StallingTransport` is a memory transport whose broker can hang like a SIGSTOPped
mosquitto: QoS 1 messages are taken and not acknowledged until the stall ends, and a new
connection gets no CONNACK. What was taken is acknowledged after the next connection, as
``PahoTransport`` resends it.
"""

from __future__ import annotations

import logging
from collections.abc import Callable

import pytest
import trio
import trio.testing

from triolette import App, DeviceContext, DeviceStore, SaveOnChange, SaveOnPublish
from triolette.actors.mqtt import MqttActor
from triolette.actors.outbox import Drops
from triolette.actors.transport import Confirmed
from triolette.core.backoff import Backoff
from triolette.core.errors import ConnectError
from triolette.core.messages import Message
from triolette.core.topics import Topics
from triolette.testing import MemoryBroker, MemoryTransport

from .backends import RecordingStore

BOUND = 5.0


class StallingTransport(MemoryTransport):
    """A memory transport whose broker hangs while :attr:`stalled` is true."""

    def __init__(self, broker: MemoryBroker) -> None:
        super().__init__(broker)
        self.stalled = False
        self.taken: list[tuple[Message, Confirmed]] = []

    async def connect(self, will: Message, on_message: Callable[[Message], None]) -> bool:
        if self.stalled:
            await trio.sleep(1)
            raise ConnectError("memory broker", "no CONNACK within 1 s")
        kept = await super().connect(will, on_message)
        taken, self.taken = self.taken, []
        for message, confirmed in taken:  # resent after the CONNACK, and acknowledged
            self.broker._accept(message)
            confirmed(None)
        return kept

    async def publish(self, message: Message, confirmed: Confirmed) -> None:
        if self.stalled and message.qos and self.connected:
            await trio.lowlevel.checkpoint()
            self.taken.append((message, confirmed))
            return
        await super().publish(message, confirmed)


def mqtt_records(caplog: pytest.LogCaptureFixture, text: str) -> list[str]:
    return [
        r.getMessage()
        for r in caplog.records
        if r.name == "triolette.mqtt" and text in r.getMessage()
    ]


def stalling_app(**options: object) -> tuple[App, StallingTransport, RecordingStore]:
    broker = MemoryBroker()
    transport = StallingTransport(broker)
    backend = RecordingStore()
    app = App(
        "app",
        store=backend,
        transport=transport,
        publish_timeout=BOUND,
        log_statistics_every=None,
        heartbeat_every=None,
        reconnect_backoff=Backoff(initial=0.5, maximum=0.5, jitter=0),
        **options,  # type: ignore[arg-type]
    )
    return app, transport, backend


def add_counter(app: App, name: str, **options: object) -> None:
    async def count(store: DeviceStore) -> dict[str, object]:
        store["count"] = store.get("count", 0) + 1
        return {"count": store["count"]}

    app.telemetry(name, interval=1, **options)(count)  # type: ignore[arg-type]


def saved_counts(backend: RecordingStore, key: str) -> list[int]:
    return [call.states[key]["count"] for call in backend.writes if key in call.states]


async def test_a_hung_broker_delays_no_cycle_warns_once_and_then_gets_the_latest_state(
    autojump_clock: trio.abc.Clock, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, logger="triolette.mqtt")
    app, transport, backend = stalling_app()
    add_counter(app, "changed", persist=SaveOnChange())
    add_counter(app, "confirmed", persist=SaveOnPublish())
    async with trio.open_nursery() as nursery:
        await nursery.start(app.serve)
        await trio.sleep(10.5)  # cycles 1 to 11 (virtual time)
        transport.stalled = True
        await trio.sleep(30)  # cycles 12 to 41 while the broker hangs
        stats = app.statistics()
        assert stats.mqtt is not None
        assert not stats.mqtt.connected
        confirmed_in_stall = saved_counts(backend, "confirmed")
        transport.stalled = False
        await trio.sleep(10)
        app.shutdown()

    stats = app.statistics()
    assert stats.cycles == {"changed": 51, "confirmed": 51}  # every tick, none late
    assert stats.skipped_ticks == {}
    assert saved_counts(backend, "changed") == list(range(1, 52))  # one save per cycle
    # SaveOnPublish saved only what the broker confirmed: nothing while it hung.
    assert max(confirmed_in_stall) <= 12
    assert saved_counts(backend, "confirmed")[-1] == 51
    assert len(mqtt_records(caplog, "has confirmed none")) == 1
    assert len(mqtt_records(caplog, "confirms messages again")) == 1
    assert transport.connects >= 2  # treated as lost: reconnected, retained state sent again
    mqtt = stats.mqtt
    assert mqtt is not None
    assert (mqtt.stalls, mqtt.unconfirmed) == (1, 0)
    assert transport.broker.retained["app/changed/state"].payload == b'{"count":51}'


async def test_a_publish_waiting_for_a_hung_broker_returns_false_once_it_counts_as_lost(
    autojump_clock: trio.abc.Clock,
) -> None:
    app, transport, _ = stalling_app()
    returned: list[tuple[bool, float]] = []
    done = trio.Event()

    @app.device("events")
    async def events(ctx: DeviceContext) -> None:
        transport.stalled = True
        started = trio.current_time()
        returned.append((await ctx.publish("event", "1"), trio.current_time() - started))
        started = trio.current_time()
        returned.append((await ctx.publish("event", "2"), trio.current_time() - started))
        done.set()

    async with trio.open_nursery() as nursery:
        await nursery.start(app.serve)
        await done.wait()
        app.shutdown()
    assert returned[0][0] is False
    assert BOUND <= returned[0][1] <= BOUND + 1
    # The broker counts as lost within a watch period (0.25 s) of the bound: then at once.
    assert returned[1][0] is False
    assert returned[1][1] <= 0.25


# -- overflow ---------------------------------------------------------------------------------


def test_drop_episodes_are_one_per_device_with_count_and_bound(
    caplog: pytest.LogCaptureFixture,
) -> None:
    drops = Drops("app", 3)
    for _ in range(4):
        drops.dropped(Message("app/x/event", "1"))
    drops.dropped(Message("app/status", "1", qos=0))
    reports = drops.close()
    assert [(r.device, r.dropped) for r in reports] == [("x", 4), (None, 1)]
    logged = mqtt_records(caplog, "outbox full")
    assert len(logged) == 2
    assert logged[0].startswith("outbox full (3 QoS 1 messages): dropped 4 of device x since ")
    assert "(3 QoS 0 messages): dropped 1 of the app" in logged[1]
    assert not drops
    assert drops.close() == []


async def overflow(actor: MqttActor, broker: MemoryBroker, count: int) -> list[bool]:
    """Publish ``count`` QoS 1 events of device x while the broker is away."""
    broker.online = False
    await trio.testing.wait_all_tasks_blocked()
    topic = "app/x/event"
    return [await actor.publish(Message(topic, str(n))) for n in range(count)]


async def test_an_overflow_warns_once_and_is_reported_on_the_error_topic_once_back(
    autojump_clock: trio.abc.Clock, caplog: pytest.LogCaptureFixture
) -> None:
    broker = MemoryBroker()
    actor = MqttActor(
        broker.client(),
        Topics("app"),
        outbox_size=4,
        reconnect=Backoff(initial=0.5, maximum=0.5, jitter=0),
    )
    async with trio.open_nursery() as nursery:
        await nursery.start(actor.run)
        await overflow(actor, broker, 10)
        assert mqtt_records(caplog, "outbox full") == []  # the episode is not over yet
        broker.online = True
        with trio.fail_after(5):
            await actor.wait_connected()
        await trio.testing.wait_all_tasks_blocked()
        await overflow(actor, broker, 7)  # a second episode
        broker.online = True
        await actor.wait_connected()
        await trio.testing.wait_all_tasks_blocked()
        actor.close()

    assert [int(m.payload) for m in broker.on("app/x/event")] == [0, 1, 2, 3, 0, 1, 2, 3]
    logged = mqtt_records(caplog, "outbox full")
    assert len(logged) == 2
    assert "(4 QoS 1 messages): dropped 6 of device x since" in logged[0]
    assert "dropped 3 of device x" in logged[1]
    errors = broker.payloads("app/x/error")
    assert [(e["type"], e["device"]) for e in errors] == [("OutboxFullError", "x")] * 2
    assert "dropped 6 of device x" in errors[0]["message"]
    assert len(broker.payloads("app/error")) == 2
    assert actor.statistics().failed == 9


async def test_a_blocking_publish_waits_for_room_and_proceeds_when_there_is_some(
    autojump_clock: trio.abc.Clock, caplog: pytest.LogCaptureFixture
) -> None:
    broker = MemoryBroker()
    app = App(
        "app",
        transport=broker.client(),
        outbox_size=4,
        log_statistics_every=None,
        heartbeat_every=None,
        reconnect_backoff=Backoff(initial=0.5, maximum=0.5, jitter=0),
    )
    sent: list[int] = []
    done = trio.Event()

    @app.device("x")
    async def stream(ctx: DeviceContext) -> None:
        for n in range(10):
            await ctx.publish("event", str(n), block=True)
            sent.append(n)
        done.set()

    async with trio.open_nursery() as nursery:
        await nursery.start(app.serve)
        broker.online = False
        await trio.testing.wait_all_tasks_blocked()
        assert len(sent) < 10  # it waits for room
        waiting_at = len(sent)
        await trio.sleep(60)
        assert len(sent) == waiting_at  # however long the outage lasts
        broker.online = True
        with trio.fail_after(10):
            await done.wait()
        app.shutdown()
    assert [int(m.payload) for m in broker.on("app/x/event")] == list(range(10))
    assert mqtt_records(caplog, "outbox full") == []


async def test_a_shutdown_cancels_a_blocked_publish_and_the_final_flush_still_runs(
    autojump_clock: trio.abc.Clock,
) -> None:
    broker = MemoryBroker()
    backend = RecordingStore()
    app = App(
        "app",
        store=backend,
        transport=broker.client(),
        outbox_size=2,
        log_statistics_every=None,
        heartbeat_every=None,
    )
    blocked = trio.Event()

    @app.device("x")
    async def stream(ctx: DeviceContext, store: DeviceStore) -> None:
        broker.online = False
        n = 0
        while True:
            n += 1
            store["n"] = n
            if n > 2:
                blocked.set()
            await ctx.publish("event", str(n), block=True)

    async with trio.open_nursery() as nursery:
        await nursery.start(app.serve)
        await blocked.wait()
        await trio.testing.wait_all_tasks_blocked()
        app.shutdown()
    assert backend.stored("x") == {"n": 3}  # the final snapshot of the blocked device


async def test_a_slow_broker_that_confirms_steadily_is_not_taken_for_a_hung_one(
    autojump_clock: trio.abc.Clock, caplog: pytest.LogCaptureFixture
) -> None:
    class Slow(MemoryTransport):
        """Five in flight; the broker acknowledges one every 2 s, in order."""

        def __init__(self, broker: MemoryBroker) -> None:
            super().__init__(broker)
            self.window = trio.Semaphore(5)
            self.inbox, self.work = trio.open_memory_channel[tuple[Message, Confirmed]](5)
            self.acknowledged = 0
            self.all_acknowledged = trio.Event()

        async def publish(self, message: Message, confirmed: Confirmed) -> None:
            if not message.qos:
                await super().publish(message, confirmed)
                return
            await self.window.acquire()
            self.inbox.send_nowait((message, confirmed))

        async def process(self) -> None:
            async for message, confirmed in self.work:
                await trio.sleep(2)
                await MemoryTransport.publish(self, message, confirmed)
                self.window.release()
                if message.topic == "app/x/event":
                    self.acknowledged += 1
                    if self.acknowledged == 10:
                        self.all_acknowledged.set()

    broker = MemoryBroker()
    transport = Slow(broker)
    actor = MqttActor(transport, Topics("app"), publish_timeout=BOUND)
    async with trio.open_nursery() as nursery:
        nursery.start_soon(transport.process)
        await nursery.start(actor.run)
        for number in range(10):  # the fifth in flight waits 10 s: twice the bound
            await actor.enqueue(Message("app/x/event", str(number)))
        with trio.fail_after(60):
            await transport.all_acknowledged.wait()
        actor.close()
        await actor.stopped.wait()
        nursery.cancel_scope.cancel()
    assert mqtt_records(caplog, "has confirmed none") == []
    assert actor.statistics().connects == 1
