"""The MQTT actor: the one owner of the broker connection (a :class:`Transport`).

Devices hand it messages through a bounded outbox and, for state, wait for the broker's
confirmation, so ``SaveOnPublish`` sees real acknowledgements. Inbound command messages are
routed to the addressed device's own bounded mailbox.
"""

from __future__ import annotations

import contextlib
import logging
from collections.abc import Callable
from typing import Protocol

import attrs
import trio

from triolette.core.errors import PublishError
from triolette.core.messages import Message
from triolette.core.topics import OFFLINE, ONLINE, Topics, error_body

logger = logging.getLogger("triolette.mqtt")


class Transport(Protocol):
    """One connection to a broker. Only the MQTT actor calls it, from one task at a time.

    ``connect`` registers the will (sent by the broker if the connection dies) and the callback
    that receives inbound messages (called synchronously, it must not block). ``publish``
    returns once the broker confirmed the message (QoS 1) or it was written (QoS 0), and raises
    :class:`~triolette.PublishError` otherwise. ``disconnect`` is the clean goodbye: the will is
    not sent.
    """

    async def connect(self, will: Message, on_message: Callable[[Message], None]) -> None: ...

    async def publish(self, message: Message) -> None: ...

    async def subscribe(self, topic: str) -> None: ...

    async def disconnect(self) -> None: ...


class LogTransport:
    """A transport with no broker: every publish is logged and counts as confirmed (dry runs)."""

    async def connect(self, will: Message, on_message: Callable[[Message], None]) -> None:
        logger.info("no broker configured: publishes are only logged")

    async def publish(self, message: Message) -> None:
        await trio.lowlevel.checkpoint()
        logger.info("publish %s %s%s", message.topic, message.text, " (retained)" * message.retain)

    async def subscribe(self, topic: str) -> None:
        await trio.lowlevel.checkpoint()

    async def disconnect(self) -> None:
        await trio.lowlevel.checkpoint()


@attrs.define
class _Outgoing:
    message: Message | None  # None: only a wake-up to publish queued announcements
    done: trio.Event | None
    error: Exception | None = None


@attrs.frozen
class MqttStatistics:
    """Counters of the MQTT actor."""

    outbox_depth: int
    outbox_peak: int
    published: int
    failed: int
    commands_dropped: int


@attrs.define
class _Counters:
    published: int = 0
    failed: int = 0
    commands_dropped: int = 0


class MqttActor:
    """Owns ``transport``. Start with ``await nursery.start(actor.run)``; end with :meth:`close`.

    Like the persistence actor it is shielded from outside cancellation, so devices can still
    publish ``offline`` while they stop; :meth:`abandon` stops it at the shutdown deadline.
    """

    def __init__(
        self,
        transport: Transport,
        topics: Topics,
        *,
        outbox_size: int = 256,
        publish_timeout: float = 10.0,
    ) -> None:
        self.transport = transport
        self.topics = topics
        self._send, self._receive = trio.open_memory_channel[_Outgoing](outbox_size)
        self._publish_timeout = publish_timeout
        self._routes: dict[str, Callable[[Message], bool]] = {}
        self._counters = _Counters()
        self._scope = trio.CancelScope(shield=True)
        self.stopped = trio.Event()
        self._announcements: dict[str, str] = {}

    def route(self, device: str, deliver: Callable[[Message], bool]) -> None:
        """Send inbound ``{p}/{device}/set`` messages to ``deliver`` (false: mailbox full)."""
        self._routes[device] = deliver

    async def run(self, *, task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED) -> None:
        """Connect, publish ``online``, then publish the outbox in order until it is closed.

        A connection error propagates before ``started``. At the end ``offline`` is published
        and the transport disconnected cleanly.
        """
        status = self.topics.status
        try:
            with self._scope:
                await self.transport.connect(Message(status, OFFLINE, retain=True), self._inbound)
                for device in self._routes:
                    await self.transport.subscribe(self.topics.command(device))
                await self._deliver(_Outgoing(Message(status, ONLINE, retain=True), None))
                task_status.started()
                async with self._receive:
                    async for outgoing in self._receive:
                        if outgoing.message is not None:
                            await self._deliver(outgoing)
                        await self._publish_announcements()
                await self._publish_announcements()
                await self._deliver(_Outgoing(Message(status, OFFLINE, retain=True), None))
                await self.transport.disconnect()
        finally:
            self.stopped.set()

    async def publish(self, message: Message) -> bool:
        """Publish and wait for confirmation; return whether the broker confirmed it.

        Waits while the outbox is full (backpressure). Never raises for a failed publish.
        """
        outgoing = _Outgoing(message, trio.Event())
        try:
            await self._send.send(outgoing)
        except (trio.ClosedResourceError, trio.BrokenResourceError):
            return False
        assert outgoing.done is not None
        await outgoing.done.wait()
        return outgoing.error is None

    def announce(self, device: str, availability: str) -> None:
        """Queue ``device``'s availability (retained); never waits, the latest value wins.

        Kept in a table, one entry per device, not in the outbox: a thousand devices stopping
        at once cost a thousand entries, not a thousand tasks waiting for room.
        """
        wake = not self._announcements
        self._announcements[device] = availability
        if wake:  # a full outbox means the actor is busy and reads the table after it anyway
            with contextlib.suppress(
                trio.WouldBlock, trio.ClosedResourceError, trio.BrokenResourceError
            ):
                self._send.send_nowait(_Outgoing(None, None))

    async def _publish_announcements(self) -> None:
        table = self._announcements
        while table:
            device = next(iter(table))  # oldest first
            message = Message(self.topics.availability(device), table.pop(device), retain=True)
            await self._deliver(_Outgoing(message, None))

    def publish_nowait(self, message: Message) -> bool:
        """Queue ``message`` without waiting; return false when the outbox is full or closed."""
        try:
            self._send.send_nowait(_Outgoing(message, None))
        except (trio.WouldBlock, trio.ClosedResourceError, trio.BrokenResourceError):
            self._counters.failed += 1
            return False
        return True

    def report_error(self, device: str | None, error: BaseException) -> None:
        """Queue ``error`` for the device's error topic (if any) and the app's; never waits."""
        body = error_body(error, device)
        if device is not None:
            self.publish_nowait(Message(self.topics.error(device), body, retain=False))
        self.publish_nowait(Message(self.topics.app_error, body, retain=False))

    def close(self) -> None:
        """Stop accepting messages; the actor publishes what is queued, then ``offline``."""
        self._send.close()

    def abandon(self) -> None:
        """Stop now, queued messages or not (the shutdown deadline passed)."""
        self._scope.cancel()

    def statistics(self) -> MqttStatistics:
        channel = self._send.statistics()
        counters = self._counters
        return MqttStatistics(
            outbox_depth=channel.current_buffer_used,
            outbox_peak=channel.peak_buffer_used,
            published=counters.published,
            failed=counters.failed,
            commands_dropped=counters.commands_dropped,
        )

    async def _deliver(self, outgoing: _Outgoing) -> None:
        assert outgoing.message is not None
        try:
            with trio.fail_after(self._publish_timeout):
                await self.transport.publish(outgoing.message)
        except (PublishError, trio.TooSlowError) as error:
            outgoing.error = error
            self._counters.failed += 1
            logger.debug("publish to %s failed: %s", outgoing.message.topic, error)
        else:
            self._counters.published += 1
        finally:
            if outgoing.done is not None:
                outgoing.done.set()

    def _inbound(self, message: Message) -> None:
        device = self.topics.device_of_command(message.topic)
        deliver = self._routes.get(device) if device is not None else None
        if deliver is None or not deliver(message):
            self._counters.commands_dropped += 1
            logger.warning(
                "dropped inbound message on %s (no room or no such device)", message.topic
            )
