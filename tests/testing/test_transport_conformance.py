"""One transport contract, two transports: the in-memory double and paho against mosquitto.

Every check of the transport conformance kit runs on ``MemoryBroker().client()`` and on
``PahoTransport`` against a throwaway mosquitto. Both rigs observe from outside, as another
client: for the double, another client of the same MemoryBroker (so its retain-flag and
fan-out rules are under test too); for mosquitto, an Observer. Inbound messages come from
``MemoryBroker.inject`` and from a plain paho publisher.

An unclean loss on the real broker is a crashed process: a child process connects a
PahoTransport with the will and reports it; the test SIGKILLs it, the kernel closes its socket
and the broker sees the connection end without DISCONNECT. That is deterministic (no timing,
no keepalive expiry), reaches into no private attribute, and is the crash the will exists for.
"""

from __future__ import annotations

import functools
import subprocess
import sys
from collections.abc import AsyncIterator, Callable, Iterator, Sequence
from contextlib import AbstractAsyncContextManager, asynccontextmanager

import pytest
import trio

from triolette import Confirmed
from triolette.actors.paho import PahoTransport
from triolette.core.errors import ConnectError, PublishError
from triolette.core.messages import Message
from triolette.testing.broker import MemoryBroker, MemoryTransport
from triolette.testing.mosquitto import Mosquitto
from triolette.testing.observer import Observer, publish_once
from triolette.testing.plugin import ObserverFactory
from triolette.testing.transport_conformance import (
    TRANSPORT_CHECKS,
    Observed,
    Predicate,
    TransportRig,
    check_transport,
)

# -- the in-memory rig ------------------------------------------------------------------------


class MemoryObserver:
    """Another client of the MemoryBroker, recording what it delivers (like Observer)."""

    def __init__(self, broker: MemoryBroker) -> None:
        self._client = broker.client()
        self._messages: list[Message] = []
        self._changed = trio.Event()

    async def start(self, filters: Sequence[str]) -> MemoryObserver:
        await self._client.connect(Message("observer/will", b""), self._record)
        await self._client.subscribe(filters)
        return self

    @property
    def messages(self) -> list[Message]:
        return list(self._messages)

    def _record(self, message: Message) -> None:
        self._messages.append(message)
        self._changed.set()

    async def until(
        self,
        predicate: Predicate,
        timeout: float = 10.0,  # noqa: ASYNC109
    ) -> list[Message]:
        with trio.move_on_after(timeout):
            while not predicate(self.messages):
                self._changed = trio.Event()
                await self._changed.wait()
            return self.messages
        raise AssertionError(f"timed out after {timeout} s; received {self._messages!r}")


def _ignore(message: Message) -> None:
    pass


class MemoryRig:
    """The double: transports from ``make`` (MemoryTransport by default) on one MemoryBroker."""

    def __init__(self, make: Callable[[MemoryBroker], MemoryTransport] = MemoryTransport) -> None:
        self.broker = MemoryBroker()
        self._make = make

    def transport(self) -> MemoryTransport:
        return self._make(self.broker)

    def unresolvable(self) -> None:
        return None  # no host names in memory

    def stall(self) -> None:
        return None  # the double never hangs

    async def observe(self, filters: Sequence[str]) -> Observed:
        return await MemoryObserver(self.broker).start(filters)

    async def inject(self, topic: str, payload: bytes) -> None:
        await trio.lowlevel.checkpoint()
        self.broker.inject(topic, payload)

    async def crash(self, will: Message) -> None:
        client = self.transport()
        await client.connect(will, _ignore)
        client.drop()

    async def broker_down(self) -> None:
        await trio.lowlevel.checkpoint()
        self.broker.online = False

    async def broker_up(self) -> None:
        await trio.lowlevel.checkpoint()
        self.broker.online = True


# -- the mosquitto rig ------------------------------------------------------------------------


def _send(broker: Mosquitto, topic: str, payload: bytes) -> None:
    publish_once(broker.host, broker.port, topic, payload)


# Connects a PahoTransport with the will given on the command line, says so, then serves
# until it is killed.
_CRASHING_CLIENT = """
import sys
import trio
from triolette.actors.paho import PahoTransport
from triolette.core.messages import Message

async def main() -> None:
    host, port, topic, payload, qos, retain = sys.argv[1:]
    transport = PahoTransport(host, int(port))
    will = Message(topic, bytes.fromhex(payload), qos=int(qos), retain=retain == "1")
    await transport.connect(will, lambda message: None)
    print("connected", flush=True)
    await transport.serve()

trio.run(main)
"""


class MosquittoRig:
    """PahoTransport on a real broker, seen by Observers, fed by a paho publisher."""

    def __init__(
        self,
        broker: Mosquitto,
        observers: ObserverFactory,
        make: type[PahoTransport] = PahoTransport,
    ) -> None:
        self.broker = broker
        self._observers = observers
        self._make = make

    def transport(self) -> PahoTransport:
        return self._make(self.broker.host, self.broker.port, connect_timeout=2.0)

    def unresolvable(self) -> PahoTransport:
        # .invalid never resolves (RFC 2606); the resolver answers at once.
        return self._make("triolette-conformance.invalid", self.broker.port)

    def stall(self) -> AbstractAsyncContextManager[None]:
        return self._paused()

    @asynccontextmanager
    async def _paused(self) -> AsyncIterator[None]:
        self.broker.pause()
        try:
            yield
        finally:
            self.broker.resume()

    async def observe(self, filters: Sequence[str]) -> Observer:
        start = functools.partial(self._observers, self.broker, list(filters))
        return await trio.to_thread.run_sync(start)

    async def inject(self, topic: str, payload: bytes) -> None:
        await trio.to_thread.run_sync(_send, self.broker, topic, payload)

    async def crash(self, will: Message) -> None:
        command = [
            sys.executable,
            "-c",
            _CRASHING_CLIENT,
            self.broker.host,
            str(self.broker.port),
            will.topic,
            will.payload.hex(),
            str(will.qos),
            str(int(will.retain)),
        ]
        process = await trio.lowlevel.open_process(command, stdout=subprocess.PIPE)
        assert process.stdout is not None
        try:
            output = b""
            with trio.move_on_after(10):
                while b"\n" not in output:
                    chunk = await process.stdout.receive_some()
                    if not chunk:
                        break
                    output += chunk
            assert output == b"connected\n", f"the crashing client said {output!r}"
        finally:
            process.kill()  # SIGKILL: the kernel closes the socket, no DISCONNECT is sent
            await process.wait()
            await process.stdout.aclose()

    async def broker_down(self) -> None:
        await trio.lowlevel.checkpoint()
        self.broker.kill()

    async def broker_up(self) -> None:
        await trio.to_thread.run_sync(self.broker.restart)


# -- every check on both ----------------------------------------------------------------------

KINDS = ("memory", "mosquitto")

# Where the double and the real transport disagree: the check states the real behaviour.
KNOWN_FAILURES: dict[tuple[str, str], str] = {}


# Checks a rig cannot run (check_transport leaves them out).
NOT_APPLICABLE: dict[tuple[str, str], str] = {
    ("memory", "unresolvable host is permanent"): "the double has no host names",
    ("memory", "qos1 is confirmed only after a stall ends"): "the double cannot stall",
}


def _cases() -> Iterator[object]:
    for name in TRANSPORT_CHECKS:
        for kind in KINDS:
            marks = []
            if reason := KNOWN_FAILURES.get((kind, name)):
                marks.append(pytest.mark.xfail(strict=True, reason=reason))
            if reason := NOT_APPLICABLE.get((kind, name)):
                marks.append(pytest.mark.skip(reason=reason))
            yield pytest.param(kind, name, marks=marks, id=f"{kind}-{name.replace(' ', '-')}")


@pytest.fixture
def rig(request: pytest.FixtureRequest) -> TransportRig:
    if request.param == "memory":
        return MemoryRig()
    broker: Mosquitto = request.getfixturevalue("mosquitto")
    return MosquittoRig(broker, request.getfixturevalue("mqtt_observer_factory"))


@pytest.mark.parametrize(("rig", "check"), list(_cases()), indirect=["rig"])
async def test_transport_conforms(rig: TransportRig, check: str):
    assert await check_transport(rig, only=[check]) == [check]


async def test_the_double_passes_the_whole_kit_in_one_run():
    """As a user would run it: one rig, every check in turn (bar the known failures)."""
    known = {name for kind, name in KNOWN_FAILURES if kind == "memory"}
    passed = await check_transport(
        MemoryRig(), only=[n for n in TRANSPORT_CHECKS if n not in known]
    )
    not_applicable = {name for kind, name in NOT_APPLICABLE if kind == "memory"}
    assert passed == [n for n in TRANSPORT_CHECKS if n not in known | not_applicable]


async def test_an_unknown_check_name_is_refused():
    with pytest.raises(ValueError, match="no such transport checks"):
        await check_transport(MemoryRig(), only=["publish works"])


# -- the kit catches broken transports --------------------------------------------------------


class Truncates(MemoryTransport):
    async def publish(self, message: Message, confirmed: Confirmed) -> None:
        cut = Message(message.topic, message.payload[:65536], message.qos, message.retain)
        await super().publish(cut, confirmed)


class ConfirmsTwice(MemoryTransport):
    async def publish(self, message: Message, confirmed: Confirmed) -> None:
        await super().publish(message, confirmed)
        confirmed(None)


class DropsTheRetainFlag(MemoryTransport):
    async def publish(self, message: Message, confirmed: Confirmed) -> None:
        await super().publish(Message(message.topic, message.payload, message.qos), confirmed)


class SwapsPairs(MemoryTransport):
    """Holds every other QoS 1 message back until the next one went out."""

    held: tuple[Message, Confirmed] | None = None

    async def publish(self, message: Message, confirmed: Confirmed) -> None:
        if message.qos and self.held is None and message.topic.endswith("sequence"):
            self.held = (message, confirmed)
            await trio.lowlevel.checkpoint()
            return
        await super().publish(message, confirmed)
        if self.held is not None:
            held, self.held = self.held, None
            await super().publish(*held)


class ConfirmsWhileDisconnected(MemoryTransport):
    async def publish(self, message: Message, confirmed: Confirmed) -> None:
        if not self.connected:
            await trio.lowlevel.checkpoint()
            confirmed(PublishError(message.topic, "not connected"))
            return
        await super().publish(message, confirmed)


class RaisesRefusals(MemoryTransport):
    async def publish(self, message: Message, confirmed: Confirmed) -> None:
        def reraise(error: PublishError | None) -> None:
            if error is not None:
                raise error
            confirmed(None)

        await super().publish(message, reraise)


class DropsInbound(MemoryTransport):
    def deliver(self, message: Message) -> None:
        pass


class KeepsSubscriptions(MemoryTransport):
    async def disconnect(self) -> None:
        kept = list(self.subscriptions)
        await super().disconnect()
        self.subscriptions = kept


class ForgetsTheWill(MemoryTransport):
    def drop(self) -> None:
        self._will = None
        super().drop()


class WillOnDisconnect(MemoryTransport):
    async def disconnect(self) -> None:
        await trio.lowlevel.checkpoint()
        self.drop()


class KeepsSession(MemoryTransport):
    async def connect(self, will: Message, on_message: Callable[[Message], None]) -> bool:
        await super().connect(will, on_message)
        return True


class ServesPastTheLoss(MemoryTransport):
    async def serve(self) -> None:
        await trio.sleep_forever()


@pytest.mark.parametrize(
    ("make", "check"),
    [
        (ConfirmsTwice, "publish confirms once and delivers as sent"),
        (Truncates, "large payloads arrive whole"),
        (DropsTheRetainFlag, "retained messages reach later subscribers flagged"),
        (SwapsPairs, "qos1 order is kept"),
        (ConfirmsWhileDisconnected, "publish while not connected raises"),
        (RaisesRefusals, "wildcard topics are refused via confirmed"),
        (DropsInbound, "inbound messages reach on message"),
        (KeepsSubscriptions, "subscriptions end with the connection"),
        (ForgetsTheWill, "will is sent on unclean loss"),
        (WillOnDisconnect, "will is not sent after disconnect"),
        (KeepsSession, "connect reports a clean session"),
        (ServesPastTheLoss, "serve returns when the broker goes down"),
    ],
)
async def test_the_kit_catches_broken_transports(make, check):
    with pytest.raises(AssertionError, match=f"transport check '{check}' failed"):
        await check_transport(MemoryRig(make), only=[check], wait_limit=0.2)


class ConfirmsBeforeTheAck(PahoTransport):
    async def publish(self, message: Message, confirmed: Confirmed) -> None:
        await super().publish(message, lambda error: None)
        confirmed(None)


class CallsEverythingTransient(PahoTransport):
    async def connect(self, will: Message, on_message: Callable[[Message], None]) -> bool:
        try:
            return await super().connect(will, on_message)
        except ConnectError as error:
            raise ConnectError(error.broker, error.reason) from error


@pytest.mark.parametrize(
    ("make", "check"),
    [
        (ConfirmsBeforeTheAck, "qos1 is confirmed only after a stall ends"),
        (CallsEverythingTransient, "unresolvable host is permanent"),
    ],
)
async def test_the_kit_catches_broken_transports_on_a_real_broker(
    make, check, mosquitto, mqtt_observer_factory
):
    rig = MosquittoRig(mosquitto, mqtt_observer_factory, make)
    with pytest.raises(AssertionError, match=f"transport check '{check}' failed"):
        await check_transport(rig, only=[check])
