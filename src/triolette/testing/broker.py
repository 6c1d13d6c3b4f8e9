"""An in-memory MQTT broker double: records every message, keeps retained ones, confirms publishes.

It follows the broker rules a bridge relies on: retained messages replace the previous one of
their topic (an empty retained payload clears it) and reach late subscribers with the retain
flag, while live subscribers get the flag cleared; filters match with ``+`` and ``#`` but never
match ``$`` topics through a leading wildcard; a client's will is published when its connection
dies without a clean disconnect and discarded by a clean one; sessions are clean (subscriptions
end with the connection); a publish to a wildcard topic, or while the broker is down, fails.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Sequence
from typing import Any

import attrs
import trio

from triolette.actors.transport import Confirmed
from triolette.core.errors import ConnectError, PublishError
from triolette.core.messages import Message


def topic_matches(topic_filter: str, topic: str) -> bool:
    """Whether ``topic`` matches the MQTT subscription ``topic_filter``."""
    filter_levels = topic_filter.split("/")
    levels = topic.split("/")
    if topic.startswith("$") and filter_levels[0] in ("+", "#"):
        return False
    for index, pattern in enumerate(filter_levels):
        if pattern == "#":
            return True
        if index >= len(levels) or pattern not in ("+", levels[index]):
            return False
    return len(levels) == len(filter_levels)


class MemoryBroker:
    """A broker in memory for tests. ``messages`` lists every message it accepted, in order.

    Set :attr:`online` to false for an outage: every connection drops (no will: the broker
    itself is gone) and connecting fails until it is true again. Call :meth:`fail_next` to
    refuse only the next few publishes.
    """

    def __init__(self) -> None:
        self.messages: list[Message] = []
        self.retained: dict[str, Message] = {}
        self._online = True
        self._refuse = 0
        self._clients: list[MemoryTransport] = []

    @property
    def online(self) -> bool:
        return self._online

    @online.setter
    def online(self, value: bool) -> None:
        self._online = value
        if not value:
            for client in list(self._clients):
                client._lose()

    def client(self) -> MemoryTransport:
        """A new client connection, not yet connected."""
        return MemoryTransport(self)

    def fail_next(self, count: int = 1) -> None:
        """Refuse the next ``count`` publishes (they are not confirmed and not delivered)."""
        self._refuse += count

    def on(self, topic: str) -> list[Message]:
        """Every accepted message of ``topic``, oldest first."""
        return [message for message in self.messages if message.topic == topic]

    def payloads(self, topic: str) -> list[Any]:
        """The JSON-decoded payloads of ``topic``, oldest first (text if it is not JSON)."""
        return [_decode(message.payload) for message in self.on(topic)]

    def inject(self, topic: str, payload: str | bytes) -> int:
        """Deliver an inbound message to every matching subscriber; return how many got it.

        Nothing is delivered while the broker is down.
        """
        if not self.online:
            return 0
        return self._fan_out(Message(topic, payload, qos=1, retain=False))

    def _accept(self, message: Message, *, will: bool = False) -> None:
        if not message.topic:
            raise PublishError(message.topic, "a topic name cannot be empty")
        if "+" in message.topic or "#" in message.topic:
            raise PublishError(message.topic, "a topic name cannot hold a wildcard")
        if not self.online:
            raise PublishError(message.topic, "broker is unreachable")
        if self._refuse and not will:
            self._refuse -= 1
            raise PublishError(message.topic, "refused by the broker")
        self.messages.append(message)
        if message.retain:
            if message.payload:
                self.retained[message.topic] = message
            else:
                self.retained.pop(message.topic, None)
        self._fan_out(attrs.evolve(message, retain=False))

    def _fan_out(self, message: Message) -> int:
        receivers = [
            client
            for client in self._clients
            if any(topic_matches(f, message.topic) for f in client.subscriptions)
        ]
        for client in receivers:
            client.deliver(message)
        return len(receivers)


class MemoryTransport:
    """A client connection to a :class:`MemoryBroker`; satisfies the runtime's transport."""

    def __init__(self, broker: MemoryBroker) -> None:
        self.broker = broker
        self.subscriptions: list[str] = []
        self.connects = 0
        self._will: Message | None = None
        self._on_message: Callable[[Message], None] | None = None
        self._lost = trio.Event()
        self._lost.set()

    @property
    def connected(self) -> bool:
        return not self._lost.is_set()

    async def connect(self, will: Message, on_message: Callable[[Message], None]) -> bool:
        await trio.lowlevel.checkpoint()
        if not self.broker.online:
            raise ConnectError("memory broker", "connection refused (the broker is down)")
        self._will = will
        self._on_message = on_message
        self._lost = trio.Event()
        self.connects += 1
        self.broker._clients.append(self)
        return False  # sessions are clean

    async def serve(self) -> None:
        await self._lost.wait()

    async def publish(self, message: Message, confirmed: Confirmed) -> None:
        await trio.lowlevel.checkpoint()
        if not self.connected:
            raise PublishError(message.topic, "not connected")
        try:
            self.broker._accept(message)
        except PublishError as error:
            confirmed(error)
        else:
            confirmed(None)

    async def subscribe(self, topics: Sequence[str]) -> None:
        await trio.lowlevel.checkpoint()
        if not self.connected:
            raise ConnectError("memory broker", "cannot subscribe: not connected")
        for topic in topics:
            self.subscriptions.append(topic)
            for retained in list(self.broker.retained.values()):
                if topic_matches(topic, retained.topic):
                    self.deliver(retained)

    async def disconnect(self) -> None:
        await trio.lowlevel.checkpoint()
        self._will = None  # a clean disconnect discards the will
        self._lose()

    def drop(self) -> None:
        """End the connection uncleanly: the broker publishes the will (once)."""
        will, self._will = self._will, None
        was_connected = self.connected
        self._lose()
        if will is not None and was_connected and self.broker.online:
            self.broker._accept(will, will=True)

    def deliver(self, message: Message) -> None:
        if self._on_message is not None:
            self._on_message(message)

    def _lose(self) -> None:
        self.subscriptions = []  # clean session: subscriptions end with the connection
        if self.connected:
            self._lost.set()
            self.broker._clients.remove(self)


def _decode(payload: bytes) -> Any:
    try:
        return json.loads(payload)
    except ValueError:
        return payload.decode("utf-8", errors="replace")
