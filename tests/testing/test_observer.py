"""The observer sees a real broker from the outside: what arrives, with which flags, and when."""

from __future__ import annotations

import re
import threading

import pytest
import trio

from triolette.core.messages import Message
from triolette.testing.mosquitto import Mosquitto
from triolette.testing.observer import Observer, publish_once


def send(broker: Mosquitto, topic: str, payload: str, *, retain: bool = False) -> None:
    publish_once(broker.host, broker.port, topic, payload, retain=retain)


def test_retained_messages_arrive_flagged_and_live_ones_unflagged(mosquitto, mqtt_observer_factory):
    send(mosquitto, "home/lamp/state", '{"on": false}', retain=True)
    observer = mqtt_observer_factory(mosquitto, ["home/#"])

    send(mosquitto, "home/lamp/state", '{"on": true}', retain=True)
    send(mosquitto, "home/lamp/event", "clicked")
    received = observer.wait_for(lambda messages: len(messages) >= 3, timeout=5)

    assert received == [
        Message("home/lamp/state", '{"on": false}', qos=1, retain=True),
        Message("home/lamp/state", '{"on": true}', qos=1, retain=False),
        Message("home/lamp/event", "clicked", qos=1, retain=False),
    ]
    assert observer.payloads("home/lamp/state") == [{"on": False}, {"on": True}]
    assert observer.payloads("home/lamp/event") == ["clicked"]


def test_only_the_subscribed_filters_are_recorded_and_clear_forgets(
    mosquitto, mqtt_observer_factory
):
    observer = mqtt_observer_factory(mosquitto, ["a/+", "c"])
    for topic in ("b/1", "a/1", "a/1/deep", "c"):
        send(mosquitto, topic, topic)
    send(mosquitto, "c", "fence")
    observer.wait_for(lambda messages: Message("c", "fence") in messages, timeout=5)

    assert [message.topic for message in observer.messages] == ["a/1", "c", "c"]
    assert observer.on("a/1") == [Message("a/1", "a/1")]
    observer.clear()
    assert observer.messages == []


async def test_until_returns_as_soon_as_the_message_arrives(mosquitto, mqtt_observer_factory):
    observer = mqtt_observer_factory(mosquitto, ["sensor/#"])

    async def publish_meanwhile() -> None:
        await trio.to_thread.run_sync(send, mosquitto, "sensor/t", "21.5")

    async with trio.open_nursery() as nursery:
        nursery.start_soon(publish_meanwhile)
        received = await observer.until(lambda messages: bool(messages), timeout=5)
    assert received == [Message("sensor/t", "21.5")]


async def test_until_times_out_with_an_error_naming_what_arrived(mosquitto, mqtt_observer_factory):
    observer = mqtt_observer_factory(mosquitto)
    await trio.to_thread.run_sync(send, mosquitto, "sensor/one", "1")
    await observer.until(lambda messages: len(messages) == 1, timeout=5)

    def two_messages(messages: list[Message]) -> bool:
        return len(messages) >= 2

    with pytest.raises(AssertionError) as failure:
        await observer.until(two_messages, timeout=0.2)
    text = str(failure.value)
    assert "timed out after 0.2 s waiting for" in text
    assert "two_messages" in text
    assert re.search(r"received 1 message.*\n\s+sensor/one b'1' qos=1", text), text


async def test_until_can_be_cancelled_without_waiting_out_its_timeout(
    mosquitto, mqtt_observer_factory
):
    observer = mqtt_observer_factory(mosquitto)
    started = trio.current_time()
    with trio.move_on_after(0.05) as scope:
        await observer.until(lambda messages: False, timeout=30)
    assert scope.cancelled_caught
    assert trio.current_time() - started < 5


async def test_the_observer_reconnects_and_subscribes_again_after_a_broker_restart(
    mosquitto, mqtt_observer_factory
):
    observer = mqtt_observer_factory(mosquitto, ["app/#"])
    assert (observer.connected, observer.connects) == (True, 1)

    mosquitto.kill()
    mosquitto.restart()  # no persistence: the new broker knows no subscription
    await observer.until_connected(timeout=5, connects=2)
    await trio.to_thread.run_sync(send, mosquitto, "app/status", "online")

    received = await observer.until(lambda messages: bool(messages), timeout=5)
    assert received == [Message("app/status", "online")]
    assert observer.connects == 2


def test_start_is_bounded_when_the_broker_hangs(mosquitto):
    mosquitto.pause()
    observer = Observer(mosquitto.host, mosquitto.port)
    try:
        with pytest.raises(AssertionError) as failure:
            observer.start(timeout=0.2)
    finally:
        observer.close()
    assert "not subscribed on connection #1" in str(failure.value)
    assert "connected=False, connects=0" in str(failure.value)


def test_close_wakes_a_waiting_thread(mosquitto, mqtt_observer_factory):
    observer = mqtt_observer_factory(mosquitto)
    outcome: list[BaseException] = []
    waiting = threading.Event()

    def wait() -> None:
        waiting.set()
        try:
            observer.wait_for(lambda messages: False, timeout=30)
        except AssertionError as error:
            outcome.append(error)

    waiter = threading.Thread(target=wait)
    waiter.start()
    assert waiting.wait(5)
    observer.close()
    waiter.join(timeout=5)
    assert not waiter.is_alive()
    assert "observer closed" in str(outcome[0])
