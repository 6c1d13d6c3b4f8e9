"""MockMqttClient: a recording MQTT double that is also a triolette ``Transport``.

It keeps the surface of cosalette's ``MockMqttClient`` (``published``, ``subscriptions``,
``raise_on_publish``, ``get_messages_for``, ``deliver``...), so a ported test suite keeps its
assertions, and it is a real :class:`~triolette.Transport`: an App serves on it, through a
:class:`~triolette.testing.MemoryBroker` connection, and it passes the transport conformance
kit (``check_transport``), so what a test sees on it holds on the wire.
"""

from __future__ import annotations

import inspect
import json
from collections.abc import Awaitable, Callable, Mapping, Sequence
from typing import Any, overload

import trio
import trio.testing

from triolette.actors.transport import Confirmed
from triolette.core.errors import PublishError
from triolette.core.messages import Message

from .broker import MemoryBroker, MemoryTransport, topic_matches
from .guest import in_trio

Payload = str | bytes
"""A recorded payload: text when it is UTF-8, else the bytes."""
MessageCallback = Callable[[str, str], Awaitable[None] | None]


class MockMqttClient:
    """Records what is published through it; delivers inbound messages on request.

    As a transport (what an App uses) it is one connection to :attr:`broker` (a new
    :class:`MemoryBroker` unless given), with that broker's rules: retained messages, wills,
    clean sessions, outages (``broker.online = False``). Every publish the broker accepted is
    recorded in :attr:`published` as ``(topic, payload, retain, qos)``; every subscribed
    filter in :attr:`subscriptions` (a history: it survives reconnects, :meth:`reset`
    clears it). While :attr:`raise_on_publish` holds an exception, publishes fail: a direct
    ``await publish(topic, payload)`` raises it, and an App's publishes are refused (their
    confirmation carries a ``PublishError`` naming it), as a broker refusing them would.
    """

    def __init__(self, broker: MemoryBroker | None = None) -> None:
        self.broker = broker if broker is not None else MemoryBroker()
        self.published: list[tuple[str, Payload, bool, int]] = []
        self.subscriptions: list[str] = []
        self.raise_on_publish: BaseException | None = None
        self.settle: Callable[[], Awaitable[None]] = trio.testing.wait_all_tasks_blocked
        """What :meth:`deliver` awaits after delivering (the harness sets its ``settle``)."""
        self.ready: Callable[[], Awaitable[None]] | None = None
        """What :meth:`deliver` awaits first (the harness: until its app is connected)."""
        self.bridge: Callable[..., Awaitable[Any]] | None = None
        """Runs ``deliver`` in the app's trio run when called from asyncio (the harness)."""
        self._link = MemoryTransport(self.broker)
        self._callbacks: list[MessageCallback] = []

    def __repr__(self) -> str:
        return f"<MockMqttClient: {len(self.published)} published>"

    # -- the Transport side (what an App drives) --------------------------------------------------

    @property
    def connected(self) -> bool:
        return self._link.connected

    async def connect(self, will: Message, on_message: Callable[[Message], None]) -> bool:
        """Connect to :attr:`broker` (``ConnectError`` while it is down); sessions are clean."""
        return await self._link.connect(will, on_message)

    async def serve(self) -> None:
        """Return when the connection is lost."""
        await self._link.serve()

    async def disconnect(self) -> None:
        """The clean goodbye: the will is discarded."""
        await self._link.disconnect()

    def drop(self) -> None:
        """End the connection uncleanly (the broker publishes the will)."""
        self._link.drop()

    @overload
    async def publish(self, message: Message, confirmed: Confirmed) -> None: ...

    @overload
    async def publish(
        self,
        topic: str,
        payload: Payload | Mapping[str, Any],
        *,
        retain: bool = False,
        qos: int = 1,
    ) -> None: ...

    async def publish(self, *args: Any, **kwargs: Any) -> None:
        """``publish(message, confirmed)`` as a transport; ``publish(topic, payload, *,
        retain=False, qos=1)`` as cosalette's double (records it; a dict is sent as JSON).

        The second form only records (no subscriber gets it) and needs no trio run.
        """
        if (args and isinstance(args[0], Message)) or "message" in kwargs:
            await self._publish_message(*args, **kwargs)
        else:
            self._record(*args, **kwargs)

    async def _publish_message(self, message: Message, confirmed: Confirmed) -> None:
        refusal = self.raise_on_publish
        if refusal is not None and self.connected:
            await trio.lowlevel.checkpoint()
            confirmed(PublishError(message.topic, f"refused by the test: {refusal!r}"))
            return

        def record(error: PublishError | None) -> None:
            if error is None:
                entry = (message.topic, _text(message.payload), message.retain, message.qos)
                self.published.append(entry)
            confirmed(error)

        await self._link.publish(message, record)

    def _record(
        self,
        topic: str,
        payload: Payload | Mapping[str, Any],
        *,
        retain: bool = False,
        qos: int = 1,
    ) -> None:
        if self.raise_on_publish is not None:
            raise self.raise_on_publish
        self.published.append((topic, _text(_encode(payload)), retain, qos))

    @overload
    async def subscribe(self, topics: Sequence[str]) -> None: ...

    @overload
    async def subscribe(self, topics: str, qos: int = 1) -> None: ...

    async def subscribe(self, topics: str | Sequence[str], qos: int = 1) -> None:
        """Subscribe to filters (a transport's list, or cosalette's one topic) and record them.

        One topic while not connected is only recorded (cosalette's form, no trio run
        needed); a list needs the connection (``ConnectError`` without one).
        """
        if isinstance(topics, str):
            self.subscriptions.append(topics)
            if self.connected:
                await self._link.subscribe([topics])
            return
        await self._link.subscribe(topics)
        self.subscriptions.extend(topics)

    # -- cosalette's side (what a test drives) ----------------------------------------------------

    def on_message(self, callback: MessageCallback) -> None:
        """Have :meth:`deliver` also call ``callback(topic, payload_text)`` (awaited if async)."""
        self._callbacks.append(callback)

    async def deliver(self, topic: str, payload: Payload | Mapping[str, Any]) -> None:
        """Deliver an inbound message as the broker would, and wait until the app handled it.

        A dict is sent as JSON. First every :meth:`on_message` callback is called (and
        awaited). Then, once a connection of this client subscribed to a filter matching
        ``topic``, the broker delivers the message to it. Before that it waits: under
        ``AppHarness`` until the app is serving and connected, else until every task is
        blocked (an app starting up subscribes). After it, it returns once :attr:`settle`
        returned: by default when every trio task is blocked again (the MQTT actor routed
        the message, the device actor took it from its mailbox and its handler ran up to its
        next wait, a command handler to its end with its state publish confirmed); under
        ``AppHarness`` also once everything saved so far is durable. ``LookupError`` when
        nothing takes the message. From asyncio code beside the harness's run, the
        delivery runs in that run.
        """
        if not in_trio():
            if self.bridge is None:
                raise RuntimeError("deliver() from asyncio code needs AppHarness running the app")
            await self.bridge(self.deliver, topic, payload)
            return
        data = _encode(payload)
        for callback in list(self._callbacks):
            result = callback(topic, data.decode("utf-8", errors="replace"))
            if inspect.isawaitable(result):
                await result
        if self.ready is not None:
            await self.ready()
        elif not self._subscribed(topic):
            await trio.testing.wait_all_tasks_blocked()  # an app starting up subscribes
        if self._subscribed(topic):
            self.broker.inject(topic, data)
            await self.settle()
        elif not self._callbacks:
            raise LookupError(f"no subscription of this client matches {topic!r}")

    def get_messages_for(self, topic: str) -> list[tuple[Payload, bool, int]]:
        """``(payload, retain, qos)`` of every recorded publish to ``topic``, oldest first."""
        return [(p, retain, qos) for t, p, retain, qos in self.published if t == topic]

    @property
    def publish_count(self) -> int:
        return len(self.published)

    @property
    def subscribe_count(self) -> int:
        return len(self.subscriptions)

    def reset(self) -> None:
        """Forget what was recorded and stop failing publishes (the connection stays)."""
        self.published.clear()
        self.subscriptions.clear()
        self.raise_on_publish = None

    def _subscribed(self, topic: str) -> bool:
        return self.connected and any(topic_matches(f, topic) for f in self._link.subscriptions)


def _encode(payload: Payload | Mapping[str, Any]) -> bytes:
    if isinstance(payload, Mapping):
        return json.dumps(payload).encode()
    if isinstance(payload, str):
        return payload.encode()
    if isinstance(payload, bytes):
        return payload
    raise TypeError(f"an MQTT payload is str, bytes or a dict, not {type(payload).__name__}")


def _text(payload: bytes) -> Payload:
    try:
        return payload.decode("utf-8")
    except UnicodeDecodeError:
        return payload
