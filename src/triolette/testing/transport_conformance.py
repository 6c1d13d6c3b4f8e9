"""check_transport: the contract every MQTT Transport must honour, runnable on users' transports.

The runtime talks to the broker only through a :class:`~triolette.Transport`, and most tests
run on the in-memory double (:class:`~triolette.testing.MemoryTransport`). These checks state
what the runtime relies on, seen from outside: by other clients of the same broker. They run
on the double and on :class:`~triolette.PahoTransport` against a real mosquitto,
so what a test shows on the double holds on the wire.

A :class:`TransportRig` gives the checks their broker: new transports to it, an outside
subscriber (:meth:`~TransportRig.observe`) and publisher (:meth:`~TransportRig.inject`), and
the faults: a client that dies without a goodbye, an outage, a broker that hangs.

Over 400 lines on purpose: it is a catalogue, one short check per clause of the contract,
read (and run) in order; splitting it would scatter the contract.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable, Callable, Collection, Sequence
from contextlib import AbstractAsyncContextManager, asynccontextmanager
from typing import Generic, Protocol, TypeVar

import attrs
import trio
from trio.testing import wait_all_tasks_blocked

from triolette.actors.transport import Transport
from triolette.core.errors import ConnectError, PublishError
from triolette.core.messages import Message

Predicate = Callable[[list[Message]], bool]

_ROOT = "triolette-conformance"
_QUIET = 0.5
"""How long a stalled broker must leave QoS 1 messages unconfirmed."""
_LARGE = 4 * 1024 * 1024
"""Bytes of the large payloads: more than a socket takes in one write."""
_ORDERED = 150
"""QoS 1 messages in the ordering check: more than PahoTransport's default window (100)."""


class Observed(Protocol):
    """An outside subscriber; :class:`~triolette.testing.observer.Observer` is one."""

    @property
    def messages(self) -> list[Message]:
        """Everything received so far, oldest first, retain flags as delivered."""
        ...

    async def until(
        self,
        predicate: Predicate,
        timeout: float = ...,  # noqa: ASYNC109
    ) -> list[Message]:
        """Wait until ``predicate(messages)``; raise AssertionError after ``timeout`` s."""
        ...


class TransportRig(Protocol):
    """One broker and the transport kind under test, as the checks need them.

    The checks use topics under ``triolette-conformance/`` only, each check its own subtree,
    so one rig can serve every check (the outage check takes the broker down and up again).
    """

    def transport(self) -> Transport:
        """A new transport to the broker, not connected yet."""
        ...

    def unresolvable(self) -> Transport | None:
        """A transport to a host name that does not resolve; None when that does not apply."""
        ...

    def stall(self) -> AbstractAsyncContextManager[None] | None:
        """A context in which the broker hangs (connections stay open, nothing answers).

        None when the rig cannot stall its broker.
        """
        ...

    async def observe(self, filters: Sequence[str]) -> Observed:
        """An outside client subscribed to ``filters``; the broker acknowledged on return."""
        ...

    async def inject(self, topic: str, payload: bytes) -> None:
        """Publish from an outside client (QoS 1, not retained); return once the broker has it."""
        ...

    async def crash(self, will: Message) -> None:
        """Connect a transport of the kind under test with ``will``, then end its connection
        without a goodbye (a crashed process, a cut cable); return once it is gone."""
        ...

    async def broker_down(self) -> None:
        """Take the broker away: every connection drops and connecting fails, until
        :meth:`broker_up`."""
        ...

    async def broker_up(self) -> None:
        """Bring the broker back (it may have forgotten retained messages)."""
        ...


async def check_transport(
    rig: TransportRig, *, only: Collection[str] | None = None, wait_limit: float = 5.0
) -> list[str]:
    """Run the conformance checks (all, or those named in ``only``) on ``rig``.

    Returns the names of the checks that passed; a check the rig cannot run (no
    :meth:`~TransportRig.stall`, no :meth:`~TransportRig.unresolvable`) is left out. Raises
    ``AssertionError`` naming the first check that failed. ``wait_limit`` bounds (in seconds)
    every wait for something that must happen. The names are the keys of
    :data:`TRANSPORT_CHECKS`; an unknown name in ``only`` raises ValueError.
    """
    unknown = set(only or ()) - TRANSPORT_CHECKS.keys()
    if unknown:
        raise ValueError(f"no such transport checks: {sorted(unknown)}")
    passed = []
    for name, check in TRANSPORT_CHECKS.items():
        if only is not None and name not in only:
            continue
        try:
            await check(_Session(rig, name, wait_limit))
        except _NotApplicable:
            continue
        except Exception as exc:
            raise AssertionError(f"transport check '{name}' failed: {_describe(exc)}") from exc
        passed.append(name)
    return passed


def _describe(exc: BaseException) -> str:
    if isinstance(exc, BaseExceptionGroup):
        return "; ".join(_describe(inner) for inner in exc.exceptions)
    if isinstance(exc, AssertionError):
        return str(exc)
    return f"it raised {exc!r}"


def _expect(condition: bool, message: str) -> None:
    """An assertion that survives ``python -O``."""
    if not condition:
        raise AssertionError(message)


class _NotApplicable(Exception):
    """The rig cannot run this check."""


def _ignore(message: Message) -> None:
    pass


T = TypeVar("T")


class _Log(Generic[T]):
    """Things recorded by callbacks, with bounded waits for a condition on them."""

    def __init__(self) -> None:
        self.items: list[T] = []
        self._changed = trio.Event()

    def add(self, item: T) -> None:
        self.items.append(item)
        self._changed.set()

    async def until(self, predicate: Callable[[list[T]], bool], what: str, seconds: float) -> None:
        """Wait until ``predicate(items)``; AssertionError naming ``what`` after ``seconds``."""
        if await self.stays_false(predicate, seconds):
            shown = self.items[-10:]
            raise AssertionError(f"{what}: not within {seconds:g} s (last recorded: {shown!r})")

    async def stays_false(self, predicate: Callable[[list[T]], bool], seconds: float) -> bool:
        """Whether ``predicate(items)`` is still false after ``seconds``."""
        with trio.move_on_after(seconds):
            while not predicate(self.items):
                self._changed = trio.Event()
                await self._changed.wait()
            return False
        return True


class _Live:
    """A transport under test, served in the check's nursery while connected."""

    def __init__(
        self, session: _Session, transport: Transport, nursery: trio.Nursery, will: Message
    ) -> None:
        self.session = session
        self.transport = transport
        self.will = will
        self.inbox = _Log[Message]()
        self.confirmations = _Log[tuple[str, PublishError | None]]()
        self.served = trio.Event()
        self.served.set()  # not serving
        self._nursery = nursery
        self._settles = 0

    async def connect(self) -> bool:
        """Connect, and serve the connection until it is lost.

        Returns once ``serve()`` is under way: a check that means to race ``serve()`` with the
        loss does so explicitly (see ``serve returns when the connection is already gone``).
        """
        with trio.move_on_after(2 * self.session.timeout):
            present = await self.transport.connect(self.will, self.inbox.add)
            served = self.served = trio.Event()
            self._nursery.start_soon(self._serve, served)
            await wait_all_tasks_blocked()
            return present
        raise AssertionError("connect() did not return")

    async def _serve(self, served: trio.Event) -> None:
        try:
            await self.transport.serve()
        finally:
            served.set()

    async def lost(self, after: str) -> None:
        """Wait until ``serve()`` returned."""
        with trio.move_on_after(self.session.timeout):
            await self.served.wait()
            return
        raise AssertionError(f"serve() did not return {after}")

    async def disconnect(self) -> None:
        with trio.move_on_after(self.session.timeout):
            await self.transport.disconnect()
            await self.lost("after disconnect()")
            return
        raise AssertionError("disconnect() did not return")

    async def subscribe(self, topics: Sequence[str]) -> None:
        with trio.move_on_after(self.session.timeout):
            await self.transport.subscribe(topics)
            return
        raise AssertionError(f"subscribe({list(topics)!r}) did not return")

    async def publish(self, message: Message, key: str) -> None:
        """Publish; the confirmation is recorded under ``key``."""

        def confirmed(error: PublishError | None) -> None:
            self.confirmations.add((key, error))

        with trio.move_on_after(self.session.timeout):
            await self.transport.publish(message, confirmed)
            return
        raise AssertionError(f"publish() of {message!r} did not return")

    def calls(self, key: str) -> list[PublishError | None]:
        """The arguments ``confirmed`` got for ``key``'s message, in order."""
        return [error for recorded, error in self.confirmations.items if recorded == key]

    async def confirmed(self, *keys: str) -> None:
        """Wait until each of ``keys``' messages was confirmed (successfully or not)."""
        wanted = set(keys)

        def all_confirmed(items: list[tuple[str, PublishError | None]]) -> bool:
            return wanted <= {key for key, _ in items}

        shown = ", ".join(sorted(wanted - {key for key, _ in self.confirmations.items})[:5])
        what = f"confirmed() for {shown}"
        await self.confirmations.until(all_confirmed, what, self.session.timeout)

    async def settle(self) -> None:
        """Publish one more QoS 1 message and wait for its acknowledgement.

        Acknowledgements come in order on one connection, so every earlier confirmation has
        been made by then.
        """
        self._settles += 1
        key = f"settle {self._settles}"
        await self.publish(Message(self.session.topic("settle"), key, qos=1), key)
        await self.confirmed(key)
        _expect(self.calls(key) == [None], f"a plain QoS 1 publish got {self.calls(key)!r}")


class _Session:
    """What a check works with: the rig, its own topic subtree, the timeout."""

    def __init__(self, rig: TransportRig, name: str, timeout: float) -> None:
        self.rig = rig
        self.timeout = timeout
        self.prefix = f"{_ROOT}/{name.replace(' ', '-')}"
        self._fences = 0

    def topic(self, *levels: str) -> str:
        return "/".join((self.prefix, *levels))

    async def observe(self, *filters: str) -> Observed:
        with trio.move_on_after(self.timeout):
            return await self.rig.observe(filters)
        raise AssertionError(f"no subscription to {filters} within {self.timeout:g} s")

    async def fence(self, observed: Observed) -> list[Message]:
        """Have an outside client publish a marker; return what ``observed`` got up to it.

        Whatever the broker took before the marker reaches the observer before it.
        """
        self._fences += 1
        topic, payload = self.topic("fence"), f"fence {self._fences}".encode()

        def is_marker(message: Message) -> bool:
            return message.topic == topic and message.payload == payload

        await self.rig.inject(topic, payload)
        received = await observed.until(lambda ms: any(map(is_marker, ms)), self.timeout)
        return received[: next(i for i, message in enumerate(received) if is_marker(message))]

    @asynccontextmanager
    async def connection(
        self, will: Message | None = None, *, connect: bool = True
    ) -> AsyncIterator[_Live]:
        """A transport from the rig, connected and served unless ``connect=False``.

        Disconnected at the end (bounded), whatever happened.
        """
        will = will or Message(self.topic("will"), b"gone", qos=1, retain=False)
        async with trio.open_nursery() as nursery:
            live = _Live(self, self.rig.transport(), nursery, will)
            try:
                if connect:
                    await live.connect()
                yield live
            finally:
                with trio.move_on_after(self.timeout) as cleanup:
                    cleanup.shield = True
                    if not live.served.is_set():
                        await live.transport.disconnect()
                nursery.cancel_scope.cancel()


def _received(messages: list[Message], topic: str) -> list[Message]:
    return [message for message in messages if message.topic == topic]


async def _raises_not_connected(live: _Live, message: Message, when: str) -> None:
    key = f"{when} qos {message.qos}"
    try:
        await live.publish(message, key)
    except PublishError:
        pass
    else:
        raise AssertionError(
            f"a QoS {message.qos} publish {when} returned; it must raise PublishError"
        )
    await trio.lowlevel.checkpoint()
    _expect(
        live.calls(key) == [],
        f"a publish {when} raised but also called confirmed({live.calls(key)!r})",
    )


# -- the checks -------------------------------------------------------------------------------


async def _connect_reports_a_clean_session(s: _Session) -> None:
    observed = await s.observe(s.topic("#"))
    async with s.connection(connect=False) as live:
        present = await live.connect()
        _expect(
            type(present) is bool and not present,
            f"connect() returned {present!r}: a clean session gives False",
        )
        await live.disconnect()
        present = await live.connect()
        _expect(
            type(present) is bool and not present,
            f"connect() after disconnect() returned {present!r}: a clean session gives False",
        )
        message = Message(s.topic("after"), b"connected again", qos=1)
        await live.publish(message, "after")
        await live.confirmed("after")
        _expect(live.calls("after") == [None], f"after reconnecting: {live.calls('after')!r}")
    await observed.until(lambda messages: message in messages, s.timeout)


async def _publish_confirms_once_and_delivers_as_sent(s: _Session) -> None:
    observed = await s.observe(s.topic("#"))
    sent = [
        Message(s.topic("qos0"), b"\x00\xff binary zero", qos=0),
        Message(s.topic("qos1"), "one \N{EURO SIGN}".encode(), qos=1),
        Message(s.topic("kept0"), b"retained zero", qos=0, retain=True),
        Message(s.topic("kept1"), b"retained one", qos=1, retain=True),
    ]
    async with s.connection() as live:
        for message in sent:
            await live.publish(message, message.topic)
        await live.confirmed(*(message.topic for message in sent))
        await live.settle()  # a second confirmation would have come by now
        for message in sent:
            calls = live.calls(message.topic)
            _expect(
                calls == [None],
                f"QoS {message.qos} publish to {message.topic}: confirmed got {calls!r}, "
                "expected exactly one call with None",
            )
    topics = {message.topic for message in sent}
    await observed.until(lambda ms: topics <= {m.topic for m in ms}, s.timeout)
    for message in sent:
        got = _received(observed.messages, message.topic)
        expected = attrs.evolve(message, retain=False)
        _expect(
            got == [expected],
            f"a live subscriber got {got!r}, expected {expected!r} (payload bytes and QoS as "
            "sent; the retain flag is cleared for live subscribers)",
        )


async def _retained_messages_reach_later_subscribers_flagged(s: _Session) -> None:
    kept0 = Message(s.topic("kept0"), b"zero", qos=0, retain=True)
    kept1 = Message(s.topic("kept1"), b"one, the latest", qos=1, retain=True)
    sent = [
        Message(kept1.topic, b"one, replaced", qos=1, retain=True),
        kept0,
        kept1,
        Message(s.topic("live"), b"not kept", qos=1),
        Message(s.topic("cleared"), b"soon cleared", qos=1, retain=True),
        Message(s.topic("cleared"), b"", qos=1, retain=True),  # an empty payload clears it
    ]
    async with s.connection() as live:
        for key, message in enumerate(sent):
            await live.publish(message, str(key))
        await live.confirmed(*(str(key) for key in range(len(sent))))
        await live.settle()
    late = await s.observe(s.topic("#"))
    got = await s.fence(late)
    _expect(
        sorted(got, key=lambda m: m.topic) == [kept0, kept1],
        f"a later subscriber got {got!r}, expected only the latest retained message of each "
        f"topic, flagged retained, and none for a cleared topic: {[kept0, kept1]!r}",
    )


async def _large_payloads_arrive_whole(s: _Session) -> None:
    observed = await s.observe(s.topic("#"))
    sent = [
        Message(s.topic("big0"), bytes(range(256)) * (_LARGE // 256), qos=0),
        Message(s.topic("big1"), bytes(range(255, -1, -1)) * (_LARGE // 256), qos=1),
    ]
    async with s.connection() as live:
        for message in sent:
            await live.publish(message, message.topic)
        await live.confirmed(*(message.topic for message in sent))
        await live.settle()
        for message in sent:
            calls = live.calls(message.topic)
            _expect(calls == [None], f"{len(message.payload)} bytes at QoS {message.qos}: {calls}")
    received = await observed.until(lambda ms: len(ms) >= len(sent), s.timeout)
    for message in sent:
        got = _received(received, message.topic)
        _expect(
            got == [message],
            f"{len(message.payload)} bytes at QoS {message.qos} arrived as "
            f"{[len(m.payload) for m in got]} bytes",
        )


async def _qos1_order_is_kept(s: _Session) -> None:
    observed = await s.observe(s.topic("#"))
    topic = s.topic("sequence")
    expected = [str(i).encode() for i in range(_ORDERED)]
    async with s.connection() as live:
        for payload in expected:
            await live.publish(Message(topic, payload, qos=1), payload.decode())
        await live.confirmed(*(payload.decode() for payload in expected))
        failed = [(key, e) for key, e in live.confirmations.items if e is not None]
        _expect(not failed, f"QoS 1 publishes failed: {failed[:3]!r}")
    received = await observed.until(lambda ms: len(_received(ms, topic)) >= _ORDERED, s.timeout)
    payloads = [message.payload for message in _received(received, topic)]
    first = next((i for i, (a, b) in enumerate(zip(payloads, expected, strict=False)) if a != b), 0)
    _expect(
        payloads == expected,
        f"QoS 1 messages from one transport arrived out of order: from #{first} on "
        f"{payloads[first : first + 5]!r}",
    )


async def _publish_while_not_connected_raises(s: _Session) -> None:
    async with s.connection(connect=False) as live:
        for qos in (0, 1):
            message = Message(s.topic("never"), b"x", qos=qos)
            await _raises_not_connected(live, message, "before connect()")
        await live.connect()
        await live.disconnect()
        for qos in (0, 1):
            message = Message(s.topic("after"), b"x", qos=qos)
            await _raises_not_connected(live, message, "after disconnect()")
        await trio.lowlevel.checkpoint()
        _expect(
            live.confirmations.items == [],
            f"confirmed was called for publishes that raised: {live.confirmations.items!r}",
        )


async def _refused_via_confirmed(s: _Session, bad: list[Message], observed: Observed) -> None:
    """Each of ``bad`` is refused through ``confirmed``; the transport goes on publishing."""
    fence = Message(s.topic("valid"), b"still publishing", qos=1)
    async with s.connection() as live:
        for key, message in enumerate(bad):
            try:
                await live.publish(message, str(key))
            except Exception as exc:
                raise AssertionError(
                    f"publish to {message.topic!r} raised {exc!r}: a refused message must be "
                    "reported through confirmed(PublishError), not raised"
                ) from exc
        await live.confirmed(*(str(key) for key in range(len(bad))))
        await live.publish(fence, "fence")
        await live.confirmed("fence")
        _expect(live.calls("fence") == [None], "a publish after a refused one must still work")
        for key, message in enumerate(bad):
            calls = live.calls(str(key))
            _expect(
                len(calls) == 1 and isinstance(calls[0], PublishError),
                f"QoS {message.qos} publish to {message.topic!r}: confirmed got {calls!r}, "
                "expected exactly one PublishError",
            )
    received = await observed.until(lambda ms: fence in ms, s.timeout)
    delivered = [m for m in received if m.topic in {message.topic for message in bad}]
    _expect(not delivered, f"refused messages were delivered: {delivered!r}")


async def _wildcard_topics_are_refused_via_confirmed(s: _Session) -> None:
    observed = await s.observe(s.topic("#"))
    bad = [
        Message(s.topic("+", "x"), b"plus", qos=0),
        Message(s.topic("#"), b"hash", qos=1),
        Message(s.topic("a", "+"), b"plus, retained", qos=1, retain=True),
    ]
    await _refused_via_confirmed(s, bad, observed)


async def _an_empty_topic_is_refused_via_confirmed(s: _Session) -> None:
    observed = await s.observe("#")
    bad = [Message("", b"no topic", qos=0), Message("", b"no topic", qos=1)]
    await _refused_via_confirmed(s, bad, observed)


async def _inbound_messages_reach_on_message(s: _Session) -> None:
    first, last = s.topic("in", "lámpara ☀"), s.topic("solo")
    async with s.connection() as live:
        await live.subscribe([s.topic("in", "+"), last])
        await s.rig.inject(first, b"\x00\xff on")
        await s.rig.inject(s.topic("elsewhere"), b"not subscribed")
        await s.rig.inject(s.topic("in", "lámpara ☀", "deep"), b"too deep")
        await s.rig.inject(last, b"last")
        await live.inbox.until(
            lambda ms: any(m.topic == last for m in ms), f"on_message for {last}", s.timeout
        )
        inbox = list(live.inbox.items)
    _expect(
        all(isinstance(m, Message) and type(m.payload) is bytes for m in inbox),
        f"on_message must get Message objects with bytes payloads, got {inbox!r}",
    )
    got = [(m.topic, m.payload, m.retain) for m in inbox]
    expected = [(first, b"\x00\xff on", False), (last, b"last", False)]
    _expect(
        got == expected, f"on_message got {got!r} (topic, payload, retain), expected {expected}"
    )


async def _subscriptions_end_with_the_connection(s: _Session) -> None:
    command, fence = s.topic("command"), s.topic("fence")

    def got(payload: bytes) -> Callable[[list[Message]], bool]:
        return lambda messages: any(m.payload == payload for m in messages)

    async with s.connection() as live:
        await live.subscribe([command])
        await s.rig.inject(command, b"first")
        await live.inbox.until(got(b"first"), "the command on the first connection", s.timeout)
        await live.disconnect()
        present = await live.connect()
        _expect(present is False, f"connect() after disconnect() returned {present!r}")
        await live.subscribe([fence])
        await s.rig.inject(command, b"stale")
        await s.rig.inject(fence, b"fence")
        await live.inbox.until(got(b"fence"), "the fence message", s.timeout)
        _expect(
            not got(b"stale")(live.inbox.items),
            "a subscription survived disconnect() and connect() of a clean session: "
            "the broker forgets it, the client must subscribe again",
        )
        await live.subscribe([command])
        await s.rig.inject(command, b"again")
        await live.inbox.until(got(b"again"), "the command after subscribing again", s.timeout)


async def _subscribe_while_not_connected_raises(s: _Session) -> None:
    async with s.connection() as live:
        await live.disconnect()
        try:
            await live.subscribe([s.topic("command")])
        except ConnectError:
            return
        raise AssertionError(
            "subscribe() returned while not connected: no broker acknowledged it "
            "(it must raise ConnectError)"
        )


async def _will_is_sent_on_unclean_loss(s: _Session) -> None:
    observed = await s.observe(s.topic("#"))
    will = Message(s.topic("status"), b"offline \x00\xff", qos=1, retain=True)
    with trio.move_on_after(2 * s.timeout):
        await s.rig.crash(will)
    received = await observed.until(lambda ms: bool(_received(ms, will.topic)), s.timeout)
    expected = attrs.evolve(will, retain=False)
    got = _received(received, will.topic)
    _expect(got == [expected], f"a live subscriber got the will as {got!r}, not {expected!r}")
    late = await s.observe(s.topic("#"))
    got = _received(await s.fence(late), will.topic)
    _expect(got == [will], f"a later subscriber got {got!r}, expected the retained will {will!r}")


async def _will_is_not_sent_after_disconnect(s: _Session) -> None:
    observed = await s.observe(s.topic("#"))
    will = Message(s.topic("status"), b"offline", qos=1, retain=True)
    async with s.connection(will) as live:
        await live.disconnect()
    received = await s.fence(observed)
    _expect(
        not _received(received, will.topic),
        f"the will was published after a clean disconnect(): {_received(received, will.topic)}",
    )


async def _serve_returns_when_the_broker_goes_down(s: _Session) -> None:
    async with s.connection() as live:
        try:
            await s.rig.broker_down()
            await live.lost("when the broker went down")
            try:
                await live.connect()
            except ConnectError as error:
                _expect(
                    not error.permanent,
                    f"connecting while the broker is down raised a permanent error: {error}",
                )
            else:
                raise AssertionError("connect() succeeded while the broker was down")
            await _raises_not_connected(live, Message(s.topic("down"), b"x"), "while down")
        finally:
            await s.rig.broker_up()
        present = await live.connect()
        _expect(present is False, f"connect() after the outage returned {present!r}")
        observed = await s.observe(s.topic("#"))
        message = Message(s.topic("back"), b"back", qos=1)
        await live.publish(message, "back")
        await live.confirmed("back")
        _expect(live.calls("back") == [None], f"after the outage: {live.calls('back')!r}")
    await observed.until(lambda ms: message in ms, s.timeout)


async def _serve_returns_when_the_connection_is_already_gone(s: _Session) -> None:
    async with s.connection(connect=False) as live:
        await live.transport.connect(live.will, _ignore)
        await live.transport.disconnect()  # before serve() ever ran
        with trio.move_on_after(s.timeout):
            await live.transport.serve()
            return
        raise AssertionError("serve() after the connection was gone did not return")


async def _unresolvable_host_is_permanent(s: _Session) -> None:
    transport = s.rig.unresolvable()
    if transport is None:
        raise _NotApplicable
    will = Message(s.topic("will"), b"gone")
    with trio.move_on_after(2 * s.timeout):
        try:
            await transport.connect(will, _ignore)
        except ConnectError as error:
            _expect(error.permanent, f"an unresolvable host must be permanent: {error}")
            return
        await transport.disconnect()
        raise AssertionError("connect() to a host name that does not resolve succeeded")
    raise AssertionError("connect() to a host name that does not resolve did not return")


async def _qos1_is_confirmed_only_after_a_stall_ends(s: _Session) -> None:
    stall = s.rig.stall()
    if stall is None:
        raise _NotApplicable
    observed = await s.observe(s.topic("#"))
    topic = s.topic("held")
    held = [f"held {i}" for i in range(3)]

    def any_held(items: list[tuple[str, PublishError | None]]) -> bool:
        return any(key in held for key, _ in items)

    async with s.connection() as live:
        async with stall:
            for key in held:
                await live.publish(Message(topic, key, qos=1), key)
            await live.publish(Message(s.topic("quick"), b"qos 0", qos=0), "quick")
            await live.confirmed("quick")
            _expect(
                live.calls("quick") == [None],
                f"QoS 0 while stalled: {live.calls('quick')!r} (it is confirmed once written)",
            )
            _expect(
                await live.confirmations.stays_false(any_held, _QUIET),
                "QoS 1 messages were confirmed while the broker could not acknowledge them: "
                f"{[item for item in live.confirmations.items if item[0] in held]!r}",
            )
        await live.confirmed(*held)
        calls = {key: live.calls(key) for key in held}
        _expect(all(c == [None] for c in calls.values()), f"after the stall ended: {calls!r}")
    received = await observed.until(lambda ms: len(_received(ms, topic)) >= len(held), s.timeout)
    payloads = [message.text for message in _received(received, topic)]
    _expect(payloads == held, f"after the stall the subscriber got {payloads!r}")


TransportCheck = Callable[[_Session], Awaitable[None]]

TRANSPORT_CHECKS: dict[str, TransportCheck] = {
    check.__name__.lstrip("_").replace("_", " "): check
    for check in (
        _connect_reports_a_clean_session,
        _publish_confirms_once_and_delivers_as_sent,
        _retained_messages_reach_later_subscribers_flagged,
        _large_payloads_arrive_whole,
        _qos1_order_is_kept,
        _publish_while_not_connected_raises,
        _wildcard_topics_are_refused_via_confirmed,
        _an_empty_topic_is_refused_via_confirmed,
        _inbound_messages_reach_on_message,
        _subscriptions_end_with_the_connection,
        _subscribe_while_not_connected_raises,
        _will_is_sent_on_unclean_loss,
        _will_is_not_sent_after_disconnect,
        _serve_returns_when_the_broker_goes_down,
        _serve_returns_when_the_connection_is_already_gone,
        _unresolvable_host_is_permanent,
        _qos1_is_confirmed_only_after_a_stall_ends,
    )
}
"""Every check by name, in the order :func:`check_transport` runs them."""
