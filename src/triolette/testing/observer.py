"""An independent MQTT subscriber for tests: records what a real broker delivers.

The :class:`Observer` runs its own paho-mqtt client thread (MQTT 3.1.1, clean session), so it
sees the broker from the outside, the way another program would. It reconnects within about
0.1 s after a broker restart and subscribes again on every connect. Tests wait on it with
bounded waits: :meth:`~Observer.wait_for` from plain code, ``await`` :meth:`~Observer.until`
from trio.
"""

from __future__ import annotations

import functools
import json
import threading
import time
import uuid
from collections.abc import Callable, Sequence
from types import TracebackType
from typing import Any

import paho.mqtt.client as mqtt
import trio
from paho.mqtt.enums import CallbackAPIVersion, MQTTErrorCode
from paho.mqtt.properties import Properties
from paho.mqtt.reasoncodes import ReasonCode

from triolette.core.messages import Message

Predicate = Callable[[list[Message]], bool]

_RECONNECT_MIN = 0.02
_RECONNECT_MAX = 0.1
_SHOWN = 20


class Observer:
    """A subscriber to ``topics`` (``#`` by default) on the broker at ``host``:``port``.

    Every received message is kept as a :class:`~triolette.core.messages.Message`, in arrival
    order, with the retain flag as delivered (set for retained messages sent on subscribe,
    cleared for live ones). Safe to read from any thread while the client thread records.
    """

    def __init__(
        self,
        host: str,
        port: int,
        topics: Sequence[str] = ("#",),
        *,
        client_id: str | None = None,
        qos: int = 1,
        keepalive: int = 5,
    ) -> None:
        if isinstance(topics, str):
            raise TypeError("topics must be a sequence of topic filters, not one string")
        self.host = host
        self.port = port
        self.topics = tuple(topics)
        self.client_id = client_id or f"triolette-observer-{uuid.uuid4().hex[:12]}"
        self._qos = qos
        self._keepalive = keepalive
        self._condition = threading.Condition()
        self._messages: list[Message] = []
        self._connected = False
        self._subscribed = False
        self._connects = 0
        self._pending_mid: int | None = None
        self._error: str | None = None
        self._started = False
        self._closed = False
        client = mqtt.Client(
            CallbackAPIVersion.VERSION2,
            client_id=self.client_id,
            clean_session=True,
            protocol=mqtt.MQTTv311,
        )
        # paho types the delays as int, but sleeps for floats just as well.
        client.reconnect_delay_set(_RECONNECT_MIN, _RECONNECT_MAX)  # type: ignore[arg-type]
        client.on_connect = self._on_connect
        client.on_disconnect = self._on_disconnect
        client.on_subscribe = self._on_subscribe
        client.on_message = self._on_message
        self._client = client

    # -- state -----------------------------------------------------------------------------

    @property
    def messages(self) -> list[Message]:
        """A copy of every message received so far, oldest first."""
        with self._condition:
            return list(self._messages)

    @property
    def connected(self) -> bool:
        """Whether the broker accepted the current connection (CONNACK received)."""
        with self._condition:
            return self._connected

    @property
    def subscribed(self) -> bool:
        """Whether the current connection's subscription is confirmed (SUBACK received)."""
        with self._condition:
            return self._subscribed

    @property
    def connects(self) -> int:
        """How many connections the broker has accepted so far (1 after :meth:`start`)."""
        with self._condition:
            return self._connects

    def on(self, topic: str) -> list[Message]:
        """Every received message of ``topic``, oldest first."""
        return [message for message in self.messages if message.topic == topic]

    def payloads(self, topic: str) -> list[Any]:
        """The JSON-decoded payloads of ``topic``, oldest first (text if it is not JSON)."""
        return [_decode(message.payload) for message in self.on(topic)]

    def clear(self) -> None:
        """Forget every message received so far."""
        with self._condition:
            self._messages.clear()

    # -- lifecycle -------------------------------------------------------------------------

    def start(self, timeout: float = 5.0) -> Observer:
        """Connect, start the client thread and wait until the subscription is confirmed.

        Raises OSError when the TCP connection is refused, RuntimeError when called twice or
        after :meth:`close`, and AssertionError when CONNACK or SUBACK take over ``timeout``.
        """
        if self._closed or self._started:
            raise RuntimeError("an Observer can be started only once")
        self._started = True
        self._client.connect(self.host, self.port, keepalive=self._keepalive)
        self._client.loop_start()
        self.wait_connected(timeout)
        return self

    def close(self) -> None:
        """Disconnect and stop the client thread; wakes any waiter. Safe to call twice."""
        with self._condition:
            if self._closed:
                return
            self._closed = True
            self._condition.notify_all()
        client = self._client
        if self._started:
            client.disconnect()
            client.loop_stop()
        # The callbacks are this observer's bound methods: a reference cycle. Broken here, the
        # client is freed by refcounting, which closes paho's wake-up sockets in order; left to
        # the cyclic GC, a socket may be finalised first (a ResourceWarning).
        client.on_connect = client.on_disconnect = None
        client.on_subscribe = client.on_message = None

    def __enter__(self) -> Observer:
        if not self._started:
            self.start()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self.close()

    def __repr__(self) -> str:
        return (
            f"<Observer {self.client_id} {self.host}:{self.port} {list(self.topics)} "
            f"connected={self.connected} connects={self.connects} "
            f"messages={len(self.messages)}>"
        )

    # -- waiting ---------------------------------------------------------------------------

    def wait_for(self, predicate: Predicate, timeout: float = 10.0) -> list[Message]:
        """Block until ``predicate(messages)`` is true; return the messages it accepted.

        The predicate gets a copy of everything received so far, each time a message
        arrives. Raises AssertionError, listing what did arrive, after ``timeout`` seconds
        or when the observer is closed meanwhile.
        """
        deadline = time.monotonic() + timeout
        with self._condition:
            while True:
                snapshot = list(self._messages)
                if predicate(snapshot):
                    return snapshot
                remaining = deadline - time.monotonic()
                if remaining <= 0 or self._closed:
                    why = "observer closed" if self._closed else f"timed out after {timeout} s"
                    raise AssertionError(
                        f"{why} waiting for {_describe(predicate)}; {self._summary(snapshot)}"
                    )
                self._condition.wait(remaining)

    # The timeout is wall-clock time in the waiting thread, not a trio deadline: it holds even
    # under trio's autojump clock, which would otherwise expire at once while a thread waits.
    async def until(
        self,
        predicate: Predicate,
        timeout: float = 10.0,  # noqa: ASYNC109
    ) -> list[Message]:
        """:meth:`wait_for` from trio without blocking the event loop; cancellable.

        Raises AssertionError like :meth:`wait_for`.
        """
        wait = functools.partial(self.wait_for, predicate, timeout)
        return await trio.to_thread.run_sync(wait, abandon_on_cancel=True)

    def wait_connected(self, timeout: float = 5.0, *, connects: int = 1) -> None:
        """Block until connected and subscribed, on the ``connects``-th connection or a later one.

        After a broker restart, ``connects=observer.connects + 1`` waits for the resubscribed
        reconnect. Raises AssertionError after ``timeout`` seconds, or at once when the broker
        refused the connection or the subscription.
        """
        deadline = time.monotonic() + timeout
        with self._condition:
            while not (self._subscribed and self._connects >= connects):
                remaining = deadline - time.monotonic()
                if self._error is not None or self._closed or remaining <= 0:
                    why = self._error or ("observer closed" if self._closed else "timed out")
                    raise AssertionError(
                        f"observer {self.client_id} not subscribed on connection #{connects} "
                        f"to {self.host}:{self.port} within {timeout} s: {why} "
                        f"(connected={self._connected}, connects={self._connects})"
                    )
                self._condition.wait(remaining)

    async def until_connected(
        self,
        timeout: float = 5.0,  # noqa: ASYNC109
        *,
        connects: int = 1,
    ) -> None:
        """:meth:`wait_connected` from trio without blocking the event loop; cancellable."""
        wait = functools.partial(self.wait_connected, timeout, connects=connects)
        await trio.to_thread.run_sync(wait, abandon_on_cancel=True)

    # -- paho callbacks (client thread) ----------------------------------------------------

    def _on_connect(
        self,
        client: mqtt.Client,
        userdata: Any,
        flags: mqtt.ConnectFlags,
        reason_code: ReasonCode,
        properties: Properties | None,
    ) -> None:
        with self._condition:
            if reason_code.is_failure:
                self._error = f"connection refused: {reason_code}"
                self._condition.notify_all()
                return
            self._error = None
            self._connected = True
            self._subscribed = False
            self._connects += 1
            self._condition.notify_all()
        # Clean session: the broker forgot the subscription, so subscribe on every connect.
        # The SUBACK is handled later on this same thread, so recording the mid after is safe.
        result, mid = client.subscribe([(topic, self._qos) for topic in self.topics])
        if result == MQTTErrorCode.MQTT_ERR_SUCCESS:
            with self._condition:
                self._pending_mid = mid

    def _on_disconnect(
        self,
        client: mqtt.Client,
        userdata: Any,
        flags: mqtt.DisconnectFlags,
        reason_code: ReasonCode,
        properties: Properties | None,
    ) -> None:
        with self._condition:
            self._connected = False
            self._subscribed = False
            self._pending_mid = None
            self._condition.notify_all()

    def _on_subscribe(
        self,
        client: mqtt.Client,
        userdata: Any,
        mid: int,
        reason_codes: list[ReasonCode],
        properties: Properties | None,
    ) -> None:
        with self._condition:
            if mid != self._pending_mid:
                return
            refused = [
                topic
                for topic, code in zip(self.topics, reason_codes, strict=False)
                if code.is_failure
            ]
            if refused:
                self._error = f"subscription refused for {refused}"
            else:
                self._subscribed = True
            self._condition.notify_all()

    def _on_message(self, client: mqtt.Client, userdata: Any, message: mqtt.MQTTMessage) -> None:
        received = Message(
            message.topic, bytes(message.payload), qos=message.qos, retain=bool(message.retain)
        )
        with self._condition:
            self._messages.append(received)
            self._condition.notify_all()

    def _summary(self, messages: list[Message]) -> str:
        state = f"connected={self._connected}, connects={self._connects}"
        if not messages:
            return f"received nothing on {list(self.topics)} ({state})"
        shown = messages[-_SHOWN:]
        skipped = (
            f" (first {len(messages) - len(shown)} not shown)" if len(shown) < len(messages) else ""
        )
        lines = "\n".join(f"  {_format(message)}" for message in shown)
        return f"received {len(messages)} message(s) ({state}){skipped}:\n{lines}"


def _format(message: Message) -> str:
    payload = message.payload if len(message.payload) <= 80 else message.payload[:77] + b"..."
    flags = f"qos={message.qos}" + (" retain" if message.retain else "")
    return f"{message.topic} {payload!r} {flags}"


def _describe(predicate: Predicate) -> str:
    name: str = getattr(predicate, "__qualname__", None) or repr(predicate)
    return name


def _decode(payload: bytes) -> Any:
    try:
        return json.loads(payload)
    except ValueError:
        return payload.decode("utf-8", errors="replace")


def publish_once(
    host: str,
    port: int,
    topic: str,
    payload: str | bytes,
    *,
    qos: int = 1,
    retain: bool = False,
    timeout: float = 5.0,
) -> None:
    """Publish one message from a client of its own, as a controller elsewhere would.

    Blocking: returns once the broker acknowledged it (QoS 1) or it was written (QoS 0).
    Raises AssertionError naming what did not come (the CONNACK, the acknowledgement) within
    ``timeout``. From a trio test, run it with ``trio.to_thread.run_sync``.
    """
    connected = threading.Event()
    client = mqtt.Client(CallbackAPIVersion.VERSION2, protocol=mqtt.MQTTv311)
    client.on_connect = lambda *_: connected.set()
    client.connect(host, port, keepalive=5)
    client.loop_start()
    try:
        assert connected.wait(timeout), f"the publisher got no CONNACK from {host}:{port}"
        info = client.publish(topic, payload, qos=qos, retain=retain)
        info.wait_for_publish(timeout=timeout)
        assert info.is_published(), f"no acknowledgement for {topic}"
    finally:
        client.disconnect()
        client.loop_stop()
        client.on_connect = None  # no cycle left for the garbage collector (see Observer.close)
