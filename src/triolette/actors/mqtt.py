"""The MQTT actor: the one owner of the broker connection (a :class:`Transport`).

It keeps the connection up: connect, subscribe to the command topics, publish ``online``, and
after a loss reconnect, paced by how long the outage has lasted (see
:meth:`~triolette.Backoff.outage_delay`). Outbound messages wait in
three places, each bounded:

- retained messages (state, availability) in a table holding the latest message per topic,
  so an outage costs one entry per topic however long it lasts; every retained message is
  published again after each reconnect (a restarted broker may have lost them);
- other QoS 1 messages in one queue, QoS 0 messages in another, each with its own pump, so a
  stalled QoS 1 window never holds up QoS 0.

``publish`` returns whether the broker confirmed the message, which is what ``SaveOnPublish``
asks. While disconnected it returns false at once (the message is queued), so telemetry and
persistence go on through an outage. Inbound command messages are routed to the addressed
device's own bounded mailbox.

A broker that leaves a QoS 1 message unconfirmed past the publish timeout is hung: the
connection is treated as lost. Messages dropped at a full queue are reported once per episode.
That bookkeeping lives in :mod:`triolette.actors.outbox`.

Over 400 lines: the connection loop, the pumps and the queues share one state (what is held,
unsent or awaited when a connection dies), and read best in one place. What a transport is
lives in :mod:`triolette.actors.transport`, the drop and confirmation bookkeeping in
:mod:`~triolette.actors.outbox`, the stored form of undelivered messages in
:mod:`~triolette.actors.carry_over`. Next to move out: the queues with the retained table (an
outbox object of their own), and the delivery at a stop.
"""

from __future__ import annotations

import contextlib
import logging
import random
from collections.abc import Callable, Collection

import attrs
import trio

from triolette.actors.outbox import Drops, Unconfirmed
from triolette.actors.transport import LogTransport, Transport
from triolette.core.availability import Availability
from triolette.core.backoff import RECONNECT, Backoff
from triolette.core.errors import ConnectError, PublishError
from triolette.core.messages import Message
from triolette.core.topics import OFFLINE, ONLINE, Topics, error_body

logger = logging.getLogger("triolette.mqtt")
published_log = logging.getLogger("triolette.published")
"""Every message the broker confirmed, at DEBUG: ``publish TOPIC PAYLOAD [(retained)]`` (in a
dry run, ``triolette.mqtt`` logs them at INFO instead)."""


@attrs.define(eq=False)
class _Outgoing:
    """A message on its way, and whoever waits for its confirmation."""

    message: Message
    done: trio.Event | None = None
    error: PublishError | None = None
    notify: Callable[[bool], None] | None = None
    """Called once with whether the broker confirmed it (see :meth:`MqttActor.publish_soon`)."""

    def settle(self, error: PublishError | None) -> None:
        if self.done is not None and not self.done.is_set():
            self.error = error
            self.done.set()
        notify, self.notify = self.notify, None
        if notify is not None:
            notify(error is None)


_WAKE = _Outgoing(Message("", b""))  # in the QoS 1 queue: "the retained table has work"


@attrs.frozen
class MqttStatistics:
    """Counters of the MQTT actor."""

    connected: bool
    connects: int
    """Connections made (the first one included)."""
    connect_failures: int
    outbox_depth: int
    """Messages waiting: both queues and the retained table."""
    outbox_peak: int
    published: int
    """Messages the broker confirmed (QoS 1) or that were written (QoS 0)."""
    failed: int
    """Messages that failed or were dropped (a full queue while the broker was away)."""
    commands_dropped: int
    unconfirmed: int = 0
    """QoS 1 messages handed to the broker and not acknowledged yet."""
    stalls: int = 0
    """Times the broker left a message unconfirmed past the publish timeout (then: reconnect)."""


@attrs.define
class _Counters:
    connects: int = 0
    connect_failures: int = 0
    published: int = 0
    failed: int = 0
    commands_dropped: int = 0
    outbox_peak: int = 0


class MqttActor:
    """Owns ``transport``. Start with ``await nursery.start(actor.run)``; end with :meth:`close`.

    Like the persistence actor it is shielded from outside cancellation, so devices can still
    publish ``offline`` while they stop; :meth:`abandon` stops it at the shutdown deadline.
    ``heartbeat`` builds the periodic ``{p}/status`` payload, published every
    ``heartbeat_every`` seconds while connected. With a :class:`LogTransport` it is a
    ``dry_run``: that transport logs each message, so the actor does not.
    Commands the broker delivers as retained are ignored (one WARNING per topic), except for
    the devices named in ``retained_commands``.
    """

    def __init__(
        self,
        transport: Transport,
        topics: Topics,
        *,
        outbox_size: int = 256,
        publish_timeout: float = 10.0,
        reconnect: Backoff | None = None,
        heartbeat: Callable[[], bytes] | None = None,
        heartbeat_every: float | None = None,
        rng: random.Random | None = None,
        retained_commands: Collection[str] = (),
    ) -> None:
        self.transport = transport
        self.topics = topics
        self._qos0_in, self._qos0_out = trio.open_memory_channel[_Outgoing](outbox_size)
        self._qos1_in, self._qos1_out = trio.open_memory_channel[_Outgoing](outbox_size)
        self._queues_capacity = 2 * outbox_size
        self._retained: dict[str, Message] = {}  # latest per topic: re-published on reconnect
        self._unsent: dict[str, _Outgoing] = {}  # retained, not yet handed over; latest wins
        self._waiting: set[_Outgoing] = set()
        self._held: dict[bool, _Outgoing] = {}  # per pump (QoS 1: true), taken but not handed over
        self._publish_timeout = publish_timeout
        self._drops = Drops(topics.prefix, outbox_size)
        self._unconfirmed = Unconfirmed(publish_timeout)
        self._reporting_drops = False
        self._reconnect = reconnect or RECONNECT
        self._heartbeat = heartbeat
        self._heartbeat_every = heartbeat_every
        self._rng = rng or random.Random()
        self._routes: dict[str, Callable[[Message], bool]] = {}
        self._retained_commands = frozenset(retained_commands)
        self._retained_ignored: set[str] = set()  # topics: one line each
        self._counters = _Counters()
        self._scope = trio.CancelScope(shield=True)
        self._closed = trio.Event()
        self.connected = False
        self._reported_started = False
        self._said_goodbye = False
        self.undelivered: list[Message] = []
        """Once stopped: the non-retained QoS 1 messages that were not delivered, oldest first."""
        self._up = trio.Event()  # set once subscribed; a new one after each loss
        self.stopped = trio.Event()
        self.availability = Availability(self._publish_availability)
        """Each device's availability: its actor's announcements and the holds on it."""

    @property
    def publish_timeout(self) -> float:
        """How long a publish waits for its confirmation; a broker silent longer counts as lost."""
        return self._publish_timeout

    @property
    def dry_run(self) -> bool:
        """Whether the transport is a :class:`LogTransport`, which logs what is published."""
        return isinstance(self.transport, LogTransport)

    async def wait_connected(self) -> None:
        """Return once connected and subscribed to the command topics (at once if so now)."""
        await self._up.wait()

    def route(self, device: str, deliver: Callable[[Message], bool]) -> None:
        """Send inbound ``{p}/{device}/set`` messages to ``deliver`` (false: mailbox full)."""
        self._routes[device] = deliver

    # -- the connection -----------------------------------------------------------------------

    async def run(self, *, task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED) -> None:
        """Keep the connection up and publish, until :meth:`close` and the queues are empty.

        Reports started after the first connection attempt; a ``permanent``
        :class:`~triolette.ConnectError` on that attempt propagates instead (nothing will
        cure it). At the end ``offline`` is published and the transport disconnected cleanly
        (when the broker is away, its will says ``offline``). Closed while the broker was
        away, it tries once more to deliver what is queued (:meth:`_deliver_at_stop`); QoS 1
        messages still undelivered at the end are counted in one WARNING.
        """
        try:
            with self._scope:
                await self._keep_connected(task_status)
                if not self._said_goodbye:
                    await self._deliver_at_stop()
            if not self._reported_started:  # abandoned before the first attempt ended
                task_status.started()
        finally:
            self._count_undelivered()
            self.stopped.set()

    async def _keep_connected(self, task_status: trio.TaskStatus[None]) -> None:
        will = Message(self.topics.status, OFFLINE, retain=True)
        failures = 0
        outage_began = trio.current_time()
        warned: set[str] = set()  # causes that retrying is unlikely to cure: one WARNING each

        def report_started() -> None:
            if not self._reported_started:
                self._reported_started = True
                task_status.started()

        while True:
            try:
                session_kept = await self.transport.connect(will, self._inbound)
            except ConnectError as error:
                if error.permanent and not self._reported_started:
                    raise
                self._counters.connect_failures += 1
                problem = str(error)
                new_cause = error.permanent and problem not in warned
                if error.permanent:
                    warned.add(problem)
            else:
                self._counters.connects += 1
                up_since = trio.current_time()
                if await self._serve_connection(session_kept, report_started):
                    return
                if trio.current_time() - up_since >= self._reconnect.reset_after:
                    failures = 0  # it was a stable connection: a new outage begins
                    outage_began = trio.current_time()
                problem, new_cause = "lost the connection to the broker", False
            lasted = trio.current_time() - outage_began
            delay = self._reconnect.outage_delay(lasted, self._rng)
            failures += 1
            log = _log_retry(failures, new_cause)
            log("%s; reconnecting in %.1f s (attempt %d)", problem, delay, failures)
            report_started()  # devices run while the broker is away
            if self._closed.is_set():
                return  # no broker to say goodbye to: its will already says offline
            with trio.move_on_after(delay):
                await self._closed.wait()
                return

    async def _serve_connection(self, session_kept: bool, ready: Callable[[], None]) -> bool:
        """Publish until the queues are closed and empty (true), or the connection is lost.

        ``ready`` is called once subscribed and ``online`` is handed over.
        """
        self.connected = True
        if not self.dry_run:
            logger.info("connected to the MQTT broker")
        try:
            async with trio.open_nursery() as connection:
                connection.start_soon(self._watch, connection.cancel_scope)
                if not self.dry_run:
                    connection.start_soon(self._watch_confirmations, connection.cancel_scope)
                if not session_kept and self._routes:
                    try:
                        await self.transport.subscribe(
                            [self.topics.command(d) for d in self._routes]
                        )
                    except ConnectError as error:  # no SUBACK: this connection is no good
                        logger.warning("%s", error)
                        await self.transport.disconnect()
                        connection.cancel_scope.cancel()
                        return False
                self._up.set()  # subscribed: commands sent from now on arrive
                await self._hand_over(_Outgoing(Message(self.topics.status, ONLINE, retain=True)))
                ready()
                for topic, message in self._retained.items():
                    self._unsent.setdefault(topic, _Outgoing(message))
                if self._heartbeat is not None and self._heartbeat_every is not None:
                    connection.start_soon(self._beat, self._heartbeat, self._heartbeat_every)
                async with trio.open_nursery() as pumps:
                    pumps.start_soon(self._pump, self._qos0_out)
                    pumps.start_soon(self._pump, self._qos1_out)
                await self._say_goodbye()
                connection.cancel_scope.cancel()
                return True
        finally:
            self.connected = False
            if self._up.is_set():
                self._up = trio.Event()
            self._unconfirmed.forget()
            self._release_waiters("the connection was lost")

    async def _watch(self, connection: trio.CancelScope) -> None:
        await self.transport.serve()
        connection.cancel()

    async def _watch_confirmations(self, connection: trio.CancelScope) -> None:
        """End ``connection`` once a QoS 1 message waited longer than the publish timeout.

        A hung broker (or a dead network path) keeps the socket open and says nothing; the
        keepalive would notice only after 1.5 keepalive periods. Ending the connection sends
        the actor down the reconnect path: publishes return at once, retained state waits in
        the table and is published again after the reconnect, the transport resends the rest.
        """
        unconfirmed = self._unconfirmed
        while True:
            await trio.sleep(min(0.25, unconfirmed.bound / 4))
            waited = unconfirmed.overdue()
            if waited is not None:
                unconfirmed.went_silent(waited)
                connection.cancel()
                return

    async def _deliver_at_stop(self) -> None:
        """Closed during a backoff wait: connect once, send what is queued, say goodbye.

        One attempt, no retry; the shutdown deadline (:meth:`abandon`) bounds it. With
        nothing queued there is nothing to do: the broker's will already says ``offline``.
        A failed attempt is one WARNING; what it could not send is counted at the end.
        """
        if not (self._depth() or self._held):
            return
        will = Message(self.topics.status, OFFLINE, retain=True)
        try:
            session_kept = await self.transport.connect(will, self._inbound)
        except ConnectError as error:
            logger.warning("stopping: one more attempt to deliver what is queued failed: %s", error)
            return
        self._counters.connects += 1
        logger.info("stopping: connected once more to deliver what is queued")
        await self._serve_connection(session_kept, lambda: None)

    def _count_undelivered(self) -> None:
        """Keep the QoS 1 messages a closed actor could not deliver in :attr:`undelivered`.

        Those and the retained ones not sent are counted in one WARNING.
        """
        if not self._closed.is_set():
            return  # a start-up failure: the caller reports it
        held = self._held.get(True)
        undelivered = [held.message] if held is not None else []
        while True:
            try:
                outgoing = self._qos1_out.receive_nowait()
            except (trio.WouldBlock, trio.EndOfChannel, trio.ClosedResourceError):
                break
            if outgoing is not _WAKE:
                undelivered.append(outgoing.message)
        self.undelivered = undelivered
        lost = len(undelivered) + len(self._unsent)
        if lost:
            logger.warning("stopped with %d QoS 1 messages not delivered to the broker", lost)

    def carry_over(self, messages: list[Message]) -> None:
        """Queue ``messages`` (kept from the last stop) before anything else; call before run."""
        if messages:
            logger.info("sending %d QoS 1 messages carried over from the last stop", len(messages))
        for message in messages:
            self._queue_nowait(_Outgoing(message))

    async def _say_goodbye(self) -> None:
        self._said_goodbye = True
        goodbye = _Outgoing(Message(self.topics.status, OFFLINE, retain=True), trio.Event())
        await self._hand_over(goodbye)
        assert goodbye.done is not None
        with trio.move_on_after(self._publish_timeout):
            await goodbye.done.wait()
        await self.transport.disconnect()

    async def _beat(self, heartbeat: Callable[[], bytes], every: float) -> None:
        while True:
            await trio.sleep(every)
            self._queue_retained(Message(self.topics.status, heartbeat(), retain=True), None)

    async def _pump(self, queue: trio.MemoryReceiveChannel[_Outgoing]) -> None:
        """Hand over queued messages (and, for QoS 1, the retained table) until closed.

        A message taken from the queue is held until the transport took it, so a connection
        lost meanwhile does not lose it: the next connection's pump sends it first.
        """
        reliable = queue is self._qos1_out
        while True:
            held = self._held.get(reliable)
            if held is not None:
                await self._hand_over(held)
                del self._held[reliable]
            if reliable:
                await self._send_unsent()
            try:
                try:
                    outgoing = queue.receive_nowait()  # a burst is handed over in one go
                except trio.WouldBlock:
                    outgoing = await queue.receive()
            except trio.EndOfChannel:
                if reliable:
                    await self._send_unsent()
                return
            if outgoing is not _WAKE:
                self._held[reliable] = outgoing
            if self._drops and self._has_room(queue):
                self._report_drops()  # the episode is over, and its report has room

    async def _send_unsent(self) -> None:
        unsent = self._unsent
        while unsent:
            topic, outgoing = next(iter(unsent.items()))  # oldest first
            await self._hand_over(outgoing)
            if unsent.get(topic) is outgoing:  # a newer one may have come meanwhile
                del unsent[topic]

    async def _hand_over(self, outgoing: _Outgoing) -> None:
        """Give ``outgoing`` to the transport; if the connection is gone, wait to be cancelled."""
        message = outgoing.message
        token = self._unconfirmed.sent() if message.qos and not self.dry_run else None

        def confirmed(error: PublishError | None) -> None:
            if token is not None:
                self._unconfirmed.settled(token, confirmed=error is None)
            if error is None:
                self._counters.published += 1
                if not self.dry_run and published_log.isEnabledFor(logging.DEBUG):
                    retained = " (retained)" * message.retain
                    published_log.debug("publish %s %s%s", message.topic, message.text, retained)
            else:
                self._counters.failed += 1
                logger.debug("publish to %s failed: %s", message.topic, error)
            outgoing.settle(error)

        try:
            await self.transport.publish(message, confirmed)
        except trio.Cancelled:  # nothing was handed over
            if token is not None:
                self._unconfirmed.settled(token, confirmed=False)
            raise
        except PublishError:  # not connected: the connection's watcher cancels us shortly
            if token is not None:
                self._unconfirmed.settled(token, confirmed=False)
            await trio.sleep_forever()

    # -- what devices call --------------------------------------------------------------------

    async def publish(self, message: Message, *, block: bool = False) -> bool:
        """Publish; return whether the broker confirmed it within the publish timeout.

        While disconnected (or once the broker left a message unconfirmed past the publish
        timeout) the message is queued and false returned at once; a retained one waits in
        the table (the latest per topic). When its queue is full the message is dropped (one
        WARNING per episode, see :class:`~triolette.actors.outbox.Drops`), unless ``block``:
        then it waits for room however long that takes (backpressure; cancelling it queues
        nothing). While connected a full queue is waited on for up to the publish timeout
        first. Never raises for a failed publish.
        """
        done = trio.Event()
        outgoing = _Outgoing(message, done)
        if message.retain:
            self._queue_retained(message, outgoing)
            if not self.connected:
                return False
        elif block:
            if not await self._send(outgoing) or not self.connected:
                return False
        elif not self.connected:
            self._queue_nowait(outgoing)
            return False
        self._waiting.add(outgoing)
        try:
            with trio.move_on_after(self._publish_timeout):
                if not message.retain and not block:
                    queued = False
                    try:
                        queued = await self._send(outgoing)
                    finally:
                        if not queued and not self._closed.is_set():
                            self._count_drop(message)  # no room within the publish timeout
                    if not queued:
                        return False
                await done.wait()
        finally:
            self._waiting.discard(outgoing)
        return done.is_set() and outgoing.error is None

    def publish_soon(self, message: Message, settled: Callable[[bool], None]) -> bool:
        """Queue the retained ``message`` without waiting for the broker at all.

        Connected: return true; ``settled`` is called once, with true when the broker
        confirmed it, with false when it was replaced by a newer message of its topic, refused,
        or its connection was lost first. Disconnected (or the broker hung): return false and
        never call ``settled``; the message waits in the table as in any outage.
        """
        outgoing = _Outgoing(message)
        if self.connected:

            def notify(confirmed: bool) -> None:
                self._waiting.discard(outgoing)
                settled(confirmed)

            outgoing.notify = notify
            self._waiting.add(outgoing)
        self._queue_retained(message, outgoing)
        return outgoing.notify is not None

    async def _send(self, outgoing: _Outgoing) -> bool:
        """Queue ``outgoing``, waiting for room; false if the actor is closed."""
        try:
            await self._queue_for(outgoing.message).send(outgoing)
        except (trio.ClosedResourceError, trio.BrokenResourceError):
            return False
        self._note_depth()
        return True

    async def enqueue(self, message: Message) -> bool:
        """Queue ``message``, waiting only for room (not for the broker); false if closed.

        For streams where each message need not be confirmed before the next (QoS 0
        readings, or QoS 1 events whose order and delivery the broker and paho handle). A
        cancellation point; it lets other tasks run only when the queue is full.
        """
        if message.retain:
            self._queue_retained(message, None)
            await trio.lowlevel.checkpoint()
            return True
        queue = self._queue_for(message)
        await trio.lowlevel.checkpoint_if_cancelled()
        try:
            try:
                # While there is room this yields to no one: a stream of messages then costs
                # one scheduler pass per queue-full, not one per message.
                queue.send_nowait(_Outgoing(message))
            except trio.WouldBlock:
                await queue.send(_Outgoing(message))
        except (trio.ClosedResourceError, trio.BrokenResourceError):
            return False
        return True

    def publish_nowait(self, message: Message) -> bool:
        """Queue ``message`` without waiting; false when its queue is full or closed."""
        if message.retain:
            self._queue_retained(message, None)
            return True
        return self._queue_nowait(_Outgoing(message))

    def announce(self, device: str, availability: str) -> None:
        """The device's actor started (``online``) or stopped; :attr:`availability` decides
        what is published (a hold keeps it offline). Never waits."""
        self.availability.actor(device, availability == ONLINE)

    def _publish_availability(self, device: str, availability: str) -> None:
        """Queue ``device``'s availability (retained); never waits, the latest value wins."""
        self._queue_retained(Message(self.topics.availability(device), availability, retain=True))

    def report_error(
        self, device: str | None, error: BaseException, body: bytes | None = None
    ) -> None:
        """Queue ``error`` (or its ready ``body``) for the device's error topic (if any) and
        the app's; never waits."""
        body = body if body is not None else error_body(error, device)
        if device is not None and device != self.topics.root:  # a root's is the app's
            self.publish_nowait(Message(self.topics.error(device), body, retain=False))
        self.publish_nowait(Message(self.topics.app_error, body, retain=False))

    def close(self) -> None:
        """Stop accepting messages; the actor publishes what is queued, then ``offline``."""
        self._qos0_in.close()
        self._qos1_in.close()
        self._closed.set()

    def abandon(self) -> None:
        """Stop now, queued messages or not (the shutdown deadline passed)."""
        self._scope.cancel()

    def statistics(self) -> MqttStatistics:
        counters = self._counters
        return MqttStatistics(
            connected=self.connected,
            connects=counters.connects,
            connect_failures=counters.connect_failures,
            outbox_depth=self._depth(),
            outbox_peak=counters.outbox_peak,
            published=counters.published,
            failed=counters.failed,
            commands_dropped=counters.commands_dropped,
            unconfirmed=len(self._unconfirmed),
            stalls=self._unconfirmed.stalls,
        )

    # -- queues -------------------------------------------------------------------------------

    def _queue_retained(self, message: Message, outgoing: _Outgoing | None = None) -> None:
        if self._closed.is_set() and not self.connected:
            return
        if message.topic != self.topics.status:
            self._retained[message.topic] = message
        replaced = self._unsent.pop(message.topic, None)
        if replaced is not None:
            replaced.settle(PublishError(message.topic, "replaced by a newer message"))
        wake = not self._unsent
        self._unsent[message.topic] = outgoing or _Outgoing(message)
        self._note_depth()
        if wake and self.connected:  # the QoS 1 pump checks the table after each message anyway
            with contextlib.suppress(
                trio.WouldBlock, trio.ClosedResourceError, trio.BrokenResourceError
            ):
                self._qos1_in.send_nowait(_WAKE)

    def _queue_nowait(self, outgoing: _Outgoing) -> bool:
        queue = self._queue_for(outgoing.message)
        try:
            queue.send_nowait(outgoing)
        except trio.WouldBlock:
            self._count_drop(outgoing.message)
            return False
        except (trio.ClosedResourceError, trio.BrokenResourceError):
            self._counters.failed += 1
            return False
        self._note_depth()
        return True

    def _count_drop(self, message: Message) -> None:
        self._counters.failed += 1
        if not self._reporting_drops:  # a report of drops that does not fit is no new episode
            self._drops.dropped(message)

    @staticmethod
    def _has_room(queue: trio.MemoryReceiveChannel[_Outgoing]) -> bool:
        """At most half full: a steady stream into a slow broker still ends its episode."""
        statistics = queue.statistics()
        return statistics.current_buffer_used * 2 <= statistics.max_buffer_size

    def _report_drops(self) -> None:
        """End the drop episodes: one WARNING each (logged by ``Drops``), then the error topics."""
        self._reporting_drops = True
        try:
            for report in self._drops.close():
                self.report_error(report.device, report)
        finally:
            self._reporting_drops = False

    def _queue_for(self, message: Message) -> trio.MemorySendChannel[_Outgoing]:
        return self._qos1_in if message.qos else self._qos0_in

    def _depth(self) -> int:
        return (
            self._qos0_in.statistics().current_buffer_used
            + self._qos1_in.statistics().current_buffer_used
            + len(self._unsent)
        )

    def _note_depth(self) -> None:
        # The queues' capacity bounds their depth: the exact count (two statistics objects)
        # is taken only when the depth could be a new peak.
        if len(self._unsent) + self._queues_capacity <= self._counters.outbox_peak:
            return
        depth = self._depth()
        if depth > self._counters.outbox_peak:
            self._counters.outbox_peak = depth

    def _release_waiters(self, reason: str) -> None:
        for outgoing in list(self._waiting):
            outgoing.settle(PublishError(outgoing.message.topic, reason))

    def _inbound(self, message: Message) -> None:
        device = self.topics.device_of_command(message.topic)
        if message.retain and device not in self._retained_commands:
            self._ignore_retained(message.topic, device)
            return
        deliver = self._routes.get(device) if device is not None else None
        if deliver is None or not deliver(message):
            self._counters.commands_dropped += 1
            logger.warning(
                "dropped inbound message on %s (no room or no such device)", message.topic
            )

    def _ignore_retained(self, topic: str, device: str | None) -> None:
        """Drop a command the broker kept (retained): it would run again on every start."""
        if topic in self._retained_ignored:
            return
        self._retained_ignored.add(topic)
        logger.warning(
            "ignored the retained command on %s (commands are not replayed on each start); "
            "clear it by publishing an empty retained message there, or accept retained "
            "commands with App(retained_commands=[%r])",
            topic,
            device,
        )


def _log_retry(attempt: int, new_cause: bool) -> Callable[..., None]:
    """The first failed attempt of an outage is a WARNING, and so is the first of each cause
    that retrying is unlikely to cure (a TLS setting that does not match the port); others are
    INFO at attempts 2, 4, 8... and DEBUG between: an outage retried every half second logs a
    few lines."""
    if attempt == 1 or new_cause:
        return logger.warning
    return logger.info if attempt & (attempt - 1) == 0 else logger.debug
