"""The in-memory broker double behaves like a real MQTT broker where the runtime relies on it.

Where the double and the MQTT specification could differ, the test expects what a real broker
does (the normative statement is quoted by its MQTT 3.1.1 number).
"""

from __future__ import annotations

import pytest

from triolette import ConnectError, Message, PublishError
from triolette.testing import MemoryBroker, MemoryTransport
from triolette.testing.broker import topic_matches

WILL = Message("app/status", "offline", retain=True)


async def connect(
    broker: MemoryBroker, *filters: str, will: Message = WILL
) -> tuple[MemoryTransport, list[Message]]:
    """A connected client subscribed to ``filters``, and the list of what it receives."""
    client = broker.client()
    received: list[Message] = []
    await client.connect(will, received.append)
    for topic_filter in filters:
        await client.subscribe([topic_filter])
    return client, received


async def publish(client: MemoryTransport, message: Message) -> None:
    """Publish and wait for the confirmation; raise its error like a refused publish does."""
    outcome: list[PublishError | None] = []
    await client.publish(message, outcome.append)
    assert len(outcome) == 1, "a memory publish is confirmed at once"
    if outcome[0] is not None:
        raise outcome[0]


def texts(messages: list[Message]) -> list[tuple[str, str]]:
    return [(message.topic, message.text) for message in messages]


# -- retained messages -----------------------------------------------------------------------


async def test_a_retained_message_replaces_the_previous_one_of_its_topic():
    broker = MemoryBroker()
    publisher, _ = await connect(broker)
    await publish(publisher, Message("app/d/state", '{"n":1}', retain=True))
    await publish(publisher, Message("app/d/state", '{"n":2}', retain=True))
    await publish(publisher, Message("app/d/state", '{"n":3}', retain=False))  # not retained

    _, received = await connect(broker, "app/d/state")

    assert texts(received) == [("app/d/state", '{"n":2}')]
    assert broker.retained["app/d/state"].text == '{"n":2}'
    assert [message.text for message in broker.on("app/d/state")] == [
        '{"n":1}',
        '{"n":2}',
        '{"n":3}',
    ]


async def test_an_empty_retained_payload_clears_the_topic_and_still_reaches_subscribers():
    broker = MemoryBroker()
    publisher, _ = await connect(broker)
    _, live = await connect(broker, "app/d/state")
    await publish(publisher, Message("app/d/state", '{"n":1}', retain=True))
    await publish(publisher, Message("app/d/state", b"", retain=True))

    _, late = await connect(broker, "app/#")

    assert "app/d/state" not in broker.retained
    assert late == []
    assert texts(live) == [("app/d/state", '{"n":1}'), ("app/d/state", "")]


async def test_a_late_subscriber_gets_the_matching_retained_messages_flagged_retained():
    broker = MemoryBroker()
    publisher, _ = await connect(broker)
    await publish(publisher, Message("app/a/availability", "online", retain=True))
    await publish(publisher, Message("app/b/availability", "offline", retain=True))
    await publish(publisher, Message("app/a/state", "{}", retain=True))
    await publish(publisher, Message("app/a/error", "{}", retain=False))

    _, received = await connect(broker, "app/+/availability")

    assert sorted(texts(received)) == [
        ("app/a/availability", "online"),
        ("app/b/availability", "offline"),
    ]
    assert all(message.retain for message in received)


async def test_a_message_forwarded_to_an_existing_subscription_is_not_flagged_retained():
    """MQTT-3.3.1-9: the server MUST set RETAIN to 0 when it forwards a PUBLISH to a client
    because it matches an established subscription, however the message was published."""
    broker = MemoryBroker()
    publisher, _ = await connect(broker)
    _, received = await connect(broker, "app/d/state")

    await publish(publisher, Message("app/d/state", "{}", retain=True))

    assert texts(received) == [("app/d/state", "{}")]
    assert received[0].retain is False
    assert broker.retained["app/d/state"].retain is True


# -- topic filters ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("topic_filter", "topic", "expected"),
    [
        ("a/b", "a/b", True),
        ("a/b", "a/c", False),
        ("a/b", "a/b/c", False),
        ("a/b", "a", False),
        ("a/b", "A/b", False),
        ("a/b", "a/b/", False),
        ("a/b/", "a/b/", True),
        ("a/+", "a/b", True),
        ("a/+", "a/b/c", False),
        ("a/+", "a", False),
        ("+", "a", True),
        ("+", "a/b", False),
        ("+/b", "a/b", True),
        ("+/+", "/a", True),
        ("a/+/c", "a//c", True),
        ("a/#", "a", True),
        ("a/#", "a/b", True),
        ("a/#", "a/b/c", True),
        ("a/#", "ab", False),
        ("a/#", "b/a", False),
        ("a/b/#", "a", False),
        ("+/#", "a", True),
        ("#", "a", True),
        ("#", "a/b/c", True),
        ("#", "/", True),
        ("$SYS/#", "$SYS/broker/uptime", True),
        ("$SYS/+/uptime", "$SYS/broker/uptime", True),
    ],
)
def test_topic_filters_match_as_mqtt_defines(topic_filter: str, topic: str, expected: bool):
    assert topic_matches(topic_filter, topic) is expected


@pytest.mark.parametrize("topic_filter", ["#", "+/broker/uptime", "+/#"])
def test_a_leading_wildcard_does_not_match_a_dollar_topic(topic_filter: str):
    """MQTT-4.7.2-1: the server MUST NOT match topic filters starting with a wildcard
    character (# or +) with topic names beginning with a $ character."""
    assert topic_matches(topic_filter, "$SYS/broker/uptime") is False


async def test_subscribers_get_only_the_topics_their_filters_match():
    broker = MemoryBroker()
    publisher, _ = await connect(broker)
    _, states = await connect(broker, "app/+/state")
    _, everything = await connect(broker, "#")
    _, sensor = await connect(broker, "app/sensor/#")

    for topic in ("app/sensor/state", "app/sensor/availability", "app/pump/state", "app/status"):
        await publish(publisher, Message(topic, "x"))

    assert [message.topic for message in states] == ["app/sensor/state", "app/pump/state"]
    assert [message.topic for message in sensor] == [
        "app/sensor/state",
        "app/sensor/availability",
    ]
    assert len(everything) == 4


# -- the will --------------------------------------------------------------------------------


async def test_the_will_is_published_when_the_connection_drops():
    broker = MemoryBroker()
    client, _ = await connect(broker)
    await publish(client, Message("app/status", "online", retain=True))
    _, watcher = await connect(broker, "app/status")

    client.drop()

    assert texts(watcher) == [("app/status", "online"), ("app/status", "offline")]
    assert broker.retained["app/status"].text == "offline"
    assert not client.connected
    with pytest.raises(PublishError):
        await publish(client, Message("app/status", "online", retain=True))


async def test_a_clean_disconnect_does_not_publish_the_will():
    broker = MemoryBroker()
    client, _ = await connect(broker)
    await publish(client, Message("app/status", "online", retain=True))
    _, watcher = await connect(broker, "app/status")

    await client.disconnect()

    assert texts(watcher) == [("app/status", "online")]
    assert broker.retained["app/status"].text == "online"
    assert not client.connected


async def test_a_clean_disconnect_discards_the_will_for_good():
    """MQTT-3.14.4-3: on DISCONNECT the server MUST discard the will without publishing it,
    so nothing that happens to the closed connection afterwards can publish it."""
    broker = MemoryBroker()
    client, _ = await connect(broker)
    _, watcher = await connect(broker, "app/status")

    await client.disconnect()
    client.drop()

    assert watcher == []
    assert broker.on("app/status") == []


async def test_a_clean_session_loses_its_subscriptions_when_it_disconnects():
    """MQTT-3.1.2-6: with CleanSession set (paho's default), the session and its
    subscriptions end with the connection; after a reconnect the client must subscribe again."""
    broker = MemoryBroker()
    client, received = await connect(broker, "app/d/set")
    await client.disconnect()
    await client.connect(WILL, received.append)

    assert broker.inject("app/d/set", "on") == 0
    assert received == []


# -- refused publishes -----------------------------------------------------------------------


async def test_an_outage_drops_every_connection_and_refuses_publishes_and_connects():
    broker = MemoryBroker()
    publisher, _ = await connect(broker)
    subscriber, received = await connect(broker, "app/#")
    await publish(publisher, Message("app/d/state", '{"n":1}', retain=True))

    broker.online = False  # the broker is gone: no will, since nobody is left to send it
    assert not publisher.connected
    assert not subscriber.connected
    with pytest.raises(PublishError, match="app/d/state"):
        await publish(publisher, Message("app/d/state", '{"n":2}', retain=True))
    with pytest.raises(ConnectError, match="down"):
        await broker.client().connect(WILL, received.append)
    broker.online = True
    await publisher.connect(WILL, received.append)
    await subscriber.connect(WILL, received.append)
    await subscriber.subscribe(["app/#"])  # the retained n=1 arrives again, flagged
    await publish(publisher, Message("app/d/state", '{"n":3}', retain=True))

    assert [message.text for message in broker.on("app/d/state")] == ['{"n":1}', '{"n":3}']
    assert [(m.text, m.retain) for m in received] == [
        ('{"n":1}', False),
        ('{"n":1}', True),
        ('{"n":3}', False),
    ]
    assert broker.retained["app/d/state"].text == '{"n":3}'
    assert broker.on("app/status") == []


async def test_fail_next_refuses_exactly_that_many_publishes():
    broker = MemoryBroker()
    publisher, _ = await connect(broker)
    _, received = await connect(broker, "app/#")
    await publish(publisher, Message("app/d/state", "0", retain=True))

    broker.fail_next(2)
    broker.fail_next()  # counts add up
    for n in (1, 2, 3):
        with pytest.raises(PublishError, match="refused"):
            await publish(publisher, Message("app/d/state", str(n), retain=True))
    await publish(publisher, Message("app/d/state", "4", retain=True))

    assert [message.text for message in broker.messages] == ["0", "4"]
    assert [message.text for message in received] == ["0", "4"]
    assert broker.retained["app/d/state"].text == "4"


async def test_a_publish_to_a_topic_with_a_wildcard_is_refused():
    """MQTT-3.3.2-2: the topic name of a PUBLISH MUST NOT contain wildcard characters; a real
    broker treats it as a protocol violation and nothing is delivered."""
    broker = MemoryBroker()
    publisher, _ = await connect(broker)
    _, received = await connect(broker, "#")

    for topic in ("app/+/state", "app/#"):
        with pytest.raises(PublishError):
            await publish(publisher, Message(topic, "x"))

    assert broker.messages == []
    assert received == []


# -- inbound messages ------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("topic", "reached"),
    [
        ("app/pump/set", ["pump", "commands", "all"]),
        ("app/valve/set", ["commands", "all"]),
        ("app/pump/state", ["all"]),
        ("other/pump/set", []),
    ],
)
async def test_inject_reaches_only_the_matching_subscribers(topic: str, reached: list[str]):
    broker = MemoryBroker()
    inboxes: dict[str, list[Message]] = {}
    for name, topic_filter in [("pump", "app/pump/set"), ("commands", "app/+/set")]:
        _, inboxes[name] = await connect(broker, topic_filter)
    _, inboxes["all"] = await connect(broker, "app/#")
    gone, inboxes["gone"] = await connect(broker, "#")
    await gone.disconnect()

    assert broker.inject(topic, '{"on":true}') == len(reached)

    assert {name for name, inbox in inboxes.items() if inbox} == set(reached)
    assert all(texts(inboxes[name]) == [(topic, '{"on":true}')] for name in reached)
    # An injected message comes from elsewhere: it is not something the app published.
    assert broker.messages == []
    assert broker.retained == {}
