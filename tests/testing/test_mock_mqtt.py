"""MockMqttClient: cosalette's recording double, and a Transport that passes the conformance kit."""

from __future__ import annotations

import json
from collections.abc import Sequence

import pytest
import trio

import triolette
from tests.testing.test_transport_conformance import MemoryObserver
from triolette.core.errors import ConnectError, PublishError
from triolette.core.messages import Message
from triolette.testing import MemoryBroker, MockMqttClient, check_transport
from triolette.testing.transport_conformance import TRANSPORT_CHECKS, Observed


class MockRig:
    """The conformance kit's broker: MockMqttClients on one MemoryBroker, seen by another client."""

    def __init__(self) -> None:
        self.broker = MemoryBroker()

    def transport(self) -> MockMqttClient:
        return MockMqttClient(self.broker)

    def unresolvable(self) -> None:
        return None  # no host names in memory

    def stall(self) -> None:
        return None  # the in-memory broker never hangs

    async def observe(self, filters: Sequence[str]) -> Observed:
        return await MemoryObserver(self.broker).start(filters)

    async def inject(self, topic: str, payload: bytes) -> None:
        await trio.lowlevel.checkpoint()
        self.broker.inject(topic, payload)

    async def crash(self, will: Message) -> None:
        client = self.transport()
        await client.connect(will, lambda message: None)
        client.drop()

    async def broker_down(self) -> None:
        await trio.lowlevel.checkpoint()
        self.broker.online = False

    async def broker_up(self) -> None:
        await trio.lowlevel.checkpoint()
        self.broker.online = True


async def test_the_mock_passes_the_transport_kit():
    passed = await check_transport(MockRig())
    not_applicable = {"unresolvable host is permanent", "qos1 is confirmed only after a stall ends"}
    assert passed == [name for name in TRANSPORT_CHECKS if name not in not_applicable]


def test_it_is_importable_from_the_top_level_too():
    from triolette import MockMqttClient as top_level

    assert top_level is MockMqttClient
    assert triolette.MockMqttClient is MockMqttClient
    with pytest.raises(AttributeError, match="no attribute 'MockMqtt'"):
        _ = triolette.MockMqtt


# -- cosalette's surface, without a trio run --------------------------------------------------


def run_without_trio(coroutine: object) -> None:
    """Drive a coroutine that never suspends (cosalette's publish/subscribe) to its end."""
    with pytest.raises(StopIteration):
        coroutine.send(None)  # type: ignore[attr-defined]


def test_direct_publishes_are_recorded_and_dicts_sent_as_json():
    mqtt = MockMqttClient()
    run_without_trio(mqtt.publish("app/a/state", {"on": True}, retain=True))
    run_without_trio(mqtt.publish("app/a/event", "ping", qos=0))
    run_without_trio(mqtt.publish("app/a/event", b"\xff\x00"))

    assert mqtt.published == [
        ("app/a/state", '{"on": true}', True, 1),
        ("app/a/event", "ping", False, 0),
        ("app/a/event", b"\xff\x00", False, 1),
    ]
    assert mqtt.get_messages_for("app/a/event") == [("ping", False, 0), (b"\xff\x00", False, 1)]
    assert mqtt.publish_count == 3


def test_raise_on_publish_raises_on_every_direct_publish_until_reset():
    mqtt = MockMqttClient()
    mqtt.raise_on_publish = OSError("broker gone")
    for _ in range(2):
        with pytest.raises(OSError, match="broker gone"):
            mqtt.publish("app/a/state", "x").send(None)
    run_without_trio(mqtt.subscribe("app/a/set"))
    assert (mqtt.published, mqtt.subscriptions, mqtt.subscribe_count) == ([], ["app/a/set"], 1)

    mqtt.reset()
    run_without_trio(mqtt.publish("app/a/state", "x"))
    assert mqtt.publish_count == 1
    assert mqtt.subscriptions == []


def test_a_payload_of_another_type_is_refused_by_name():
    with pytest.raises(TypeError, match="str, bytes or a dict, not int"):
        MockMqttClient().publish("app/a/state", 5).send(None)  # type: ignore[call-overload]


# -- as a transport ---------------------------------------------------------------------------


async def connected(mqtt: MockMqttClient, inbound: list[Message] | None = None) -> None:
    await mqtt.connect(
        Message("app/status", b"offline", retain=True),
        (inbound if inbound is not None else []).append,
    )


async def test_what_an_app_publishes_is_recorded_once_the_broker_took_it():
    mqtt = MockMqttClient()
    outcomes: list[PublishError | None] = []
    await connected(mqtt)
    await mqtt.publish(Message("app/a/state", b'{"t": 1}', retain=True), outcomes.append)
    mqtt.broker.fail_next()
    await mqtt.publish(Message("app/a/state", b'{"t": 2}', retain=True), outcomes.append)

    assert mqtt.get_messages_for("app/a/state") == [('{"t": 1}', True, 1)]
    assert outcomes[0] is None
    assert isinstance(outcomes[1], PublishError)


async def test_raise_on_publish_refuses_the_apps_publishes_through_the_confirmation():
    mqtt = MockMqttClient()
    outcomes: list[PublishError | None] = []
    await connected(mqtt)
    mqtt.raise_on_publish = OSError("disk full")
    await mqtt.publish(Message("app/a/state", b"{}"), outcomes.append)

    assert mqtt.published == []
    assert mqtt.broker.messages == []
    assert len(outcomes) == 1
    assert isinstance(outcomes[0], PublishError)
    assert "OSError('disk full')" in str(outcomes[0])


async def test_subscriptions_are_a_history_that_outlives_the_connection():
    mqtt = MockMqttClient()
    await connected(mqtt)
    await mqtt.subscribe(["app/+/set"])
    await mqtt.subscribe("app/extra/set")  # cosalette's form, live while connected
    await mqtt.disconnect()

    assert mqtt.subscriptions == ["app/+/set", "app/extra/set"]
    with pytest.raises(ConnectError):
        await mqtt.subscribe(["app/+/set"])


async def test_deliver_reaches_the_connection_and_the_callbacks():
    mqtt = MockMqttClient()
    inbound: list[Message] = []
    seen: list[tuple[str, str]] = []

    async def callback(topic: str, payload: str) -> None:
        await trio.lowlevel.checkpoint()
        seen.append((topic, payload))

    mqtt.on_message(callback)
    mqtt.on_message(lambda topic, payload: seen.append((topic, payload.upper())))
    await connected(mqtt, inbound)
    await mqtt.subscribe(["app/+/set"])
    await mqtt.deliver("app/valve/set", {"open": True})

    assert [(m.topic, json.loads(m.payload)) for m in inbound] == [
        ("app/valve/set", {"open": True})
    ]
    assert seen == [("app/valve/set", '{"open": true}'), ("app/valve/set", '{"OPEN": TRUE}')]


async def test_deliver_to_a_topic_nobody_takes_is_a_lookup_error():
    mqtt = MockMqttClient()
    await connected(mqtt)
    await mqtt.subscribe(["app/+/set"])
    with pytest.raises(LookupError, match="no subscription of this client matches 'app/x/get'"):
        await mqtt.deliver("app/x/get", "1")


async def test_deliver_waits_for_an_app_that_is_still_subscribing():
    mqtt = MockMqttClient()
    inbound: list[Message] = []

    async def slow_start() -> None:
        await connected(mqtt, inbound)
        for _ in range(5):
            await trio.lowlevel.checkpoint()
        await mqtt.subscribe(["app/+/set"])

    async with trio.open_nursery() as nursery:
        nursery.start_soon(slow_start)
        await mqtt.deliver("app/valve/set", "open")
    assert [m.payload for m in inbound] == [b"open"]


def test_deliver_from_asyncio_without_a_harness_says_what_is_missing():
    import asyncio

    with pytest.raises(RuntimeError, match="needs AppHarness running the app"):
        asyncio.run(MockMqttClient().deliver("app/a/set", "1"))
