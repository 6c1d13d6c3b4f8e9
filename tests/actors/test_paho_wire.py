"""The transport's own PUBLISH and PUBACK path, byte by byte, against a scripted broker.

A real broker never splits a PUBACK or drops a connection on cue; this one, a raw TCP server
on loopback, does: acknowledgements batched, split between two reads, or missing when the
connection dies (then the message must come again, flagged as a duplicate). The encoding is
compared with paho's own.
"""

from __future__ import annotations

import contextlib
import socket
from collections.abc import AsyncIterator, Callable

import pytest
import trio
import trio.testing
from paho.mqtt import client as paho
from paho.mqtt.enums import CallbackAPIVersion

from triolette.actors.paho import PahoTransport
from triolette.actors.paho_client import as_duplicate, check_topic, encode_publish
from triolette.core.errors import PublishError
from triolette.core.messages import Message

CONNACK = b"\x20\x02\x00\x00"


def puback(mid: int) -> bytes:
    return b"\x40\x02" + mid.to_bytes(2, "big")


class Wire:
    """One accepted connection of the scripted broker: read packets, write bytes."""

    def __init__(self, stream: trio.SocketStream) -> None:
        self.stream = stream
        self._buffer = bytearray()

    async def packet(self) -> bytes:
        """The next whole packet the client sent."""
        while True:
            size = _packet_size(self._buffer)
            if size is not None:
                packet = bytes(self._buffer[:size])
                del self._buffer[:size]
                return packet
            data = await self.stream.receive_some()
            assert data, "the client closed the connection"
            self._buffer += data

    async def send(self, data: bytes) -> None:
        await self.stream.send_all(data)


def _packet_size(buffer: bytearray) -> int | None:
    length, shift, index = 0, 0, 1
    while index < len(buffer):
        byte = buffer[index]
        length |= (byte & 0x7F) << shift
        shift += 7
        index += 1
        if not byte & 0x80:
            return index + length if len(buffer) >= index + length else None
    return None


def _publish_fields(packet: bytes) -> tuple[int, str, int, bytes]:
    """(first byte, topic, mid, payload) of a QoS 1 PUBLISH."""
    index = 1
    while packet[index] & 0x80:
        index += 1
    index += 1
    topic_length = int.from_bytes(packet[index : index + 2], "big")
    topic = packet[index + 2 : index + 2 + topic_length].decode()
    index += 2 + topic_length
    mid = int.from_bytes(packet[index : index + 2], "big")
    return packet[0], topic, mid, packet[index + 2 :]


class Broker:
    """A listening socket; each connection is handed to the test through a channel."""

    def __init__(self, listener: trio.SocketListener) -> None:
        self.listener = listener
        self.port = listener.socket.getsockname()[1]
        self.connections, self._receive = trio.open_memory_channel[Wire](4)
        self.wires: list[Wire] = []

    async def serve(self) -> None:
        while True:
            stream = await self.listener.accept()
            wire = Wire(stream)
            self.wires.append(wire)
            assert (await wire.packet())[0] == 0x10  # CONNECT
            await wire.send(CONNACK)
            await self.connections.send(wire)

    async def next_connection(self) -> Wire:
        with trio.fail_after(5):
            return await self._receive.receive()


@pytest.fixture
async def broker() -> AsyncIterator[Broker]:
    listeners = await trio.open_tcp_listeners(0, host="127.0.0.1")
    scripted = Broker(listeners[0])
    async with trio.open_nursery() as nursery:
        nursery.start_soon(scripted.serve)
        yield scripted
        nursery.cancel_scope.cancel()
    for wire in scripted.wires:
        await wire.stream.aclose()
    await listeners[0].aclose()


class Recorder:
    """Each confirmation by message name; :meth:`until` waits for a condition on them."""

    def __init__(self) -> None:
        self.results: dict[str, PublishError | None] = {}
        self._changed = trio.Event()

    def confirm(self, name: str) -> Callable[[PublishError | None], None]:
        def confirmed(error: PublishError | None) -> None:
            self.results.setdefault(name, error)
            self._changed.set()

        return confirmed

    async def until(self, condition: Callable[[dict[str, PublishError | None]], bool]) -> None:
        with trio.fail_after(5):
            while not condition(self.results):
                self._changed = trio.Event()
                await self._changed.wait()


async def connect(
    transport: PahoTransport, broker: Broker, nursery: trio.Nursery
) -> tuple[Wire, trio.Event]:
    """Connect ``transport`` to the scripted broker and serve it: the broker's side, and an
    event set when the connection is lost (``serve`` returned)."""
    await transport.connect(Message("wire/will", b""), lambda message: None)
    wire = await broker.next_connection()
    lost = trio.Event()

    async def serve() -> None:
        await transport.serve()
        lost.set()

    nursery.start_soon(serve)
    return wire, lost


@contextlib.asynccontextmanager
async def served(
    broker: Broker,
) -> AsyncIterator[tuple[PahoTransport, Wire, trio.Event, trio.Nursery]]:
    """A connected transport, its first connection's broker side, the event of its loss, and
    the nursery serving it."""
    transport = PahoTransport("127.0.0.1", broker.port)
    async with trio.open_nursery() as nursery:
        wire, lost = await connect(transport, broker, nursery)
        yield transport, wire, lost, nursery
        await transport.disconnect()
        nursery.cancel_scope.cancel()


async def test_batched_and_split_acknowledgements_each_confirm_their_message(
    broker: Broker,
) -> None:
    recorder = Recorder()
    async with served(broker) as (transport, wire, _, _):
        for n in range(4):
            message = Message(f"wire/m{n}", f"v{n}", qos=1)
            await transport.publish(message, recorder.confirm(f"m{n}"))
        mids = [_publish_fields(await wire.packet())[2] for _ in range(4)]
        await wire.send(puback(mids[0]) + puback(mids[1]) + puback(mids[2])[:3])
        await recorder.until(lambda results: len(results) >= 2)
        await trio.testing.wait_all_tasks_blocked()  # the reader took all it was sent
        assert recorder.results == {"m0": None, "m1": None}  # m2's is not whole yet
        await wire.send(puback(mids[2])[3:] + puback(mids[3]))
        await recorder.until(lambda results: len(results) == 4)
        assert recorder.results == {f"m{n}": None for n in range(4)}


async def test_an_unacknowledged_message_is_sent_again_as_a_duplicate_after_a_reconnect(
    broker: Broker,
) -> None:
    recorder = Recorder()
    async with served(broker) as (transport, first, lost, nursery):
        await transport.publish(Message("wire/a", "one", qos=1, retain=True), recorder.confirm("a"))
        await transport.publish(Message("wire/b", "two", qos=1), recorder.confirm("b"))
        sent = [await first.packet() for _ in range(2)]
        await first.send(puback(_publish_fields(sent[0])[2]))  # b is never acknowledged
        await recorder.until(lambda results: "a" in results)
        await first.stream.aclose()
        with trio.fail_after(5):
            await lost.wait()
        assert "b" not in recorder.results  # a lost connection does not fail a QoS 1 message

        second, _ = await connect(transport, broker, nursery)
        again = await second.packet()
        assert again == as_duplicate(sent[1])
        assert again[0] == 0x3A  # PUBLISH, DUP, QoS 1, not retained
        assert _publish_fields(again)[1:] == _publish_fields(sent[1])[1:]
        await second.send(puback(_publish_fields(again)[2]))
        await recorder.until(lambda results: "b" in results)
        assert recorder.results == {"a": None, "b": None}


async def test_a_qos0_message_counts_as_published_once_the_socket_took_it(
    broker: Broker,
) -> None:
    recorder = Recorder()
    async with served(broker) as (transport, wire, _, _):
        await transport.publish(Message("wire/q0", "x", qos=0), recorder.confirm("q0"))
        await recorder.until(lambda results: "q0" in results)
        assert recorder.results == {"q0": None}
        assert await wire.packet() == encode_publish(b"wire/q0", b"x", 0, False, 0)


@pytest.mark.parametrize("size", [0, 1, 120, 121, 16_375, 16_376, 2_097_143, 2_097_144])
@pytest.mark.parametrize(("qos", "retain"), [(0, False), (1, True), (1, False)])
def test_publish_packets_are_byte_for_byte_what_paho_sends(
    size: int, qos: int, retain: bool
) -> None:
    """The sizes straddle each step of MQTT's variable-length remaining length."""
    topic, payload, mid = b"bridge/device/state", b"p" * size, 4711
    client = paho.Client(CallbackAPIVersion.VERSION2, protocol=paho.MQTTv311)
    with socket.socket() as unconnected:
        client._sock = unconnected  # paho only checks there is one; nothing is sent
        client._send_publish(mid, topic, payload, qos, retain)
        client._sock = None
    expected = bytes(client._out_packet[0]["packet"])
    assert encode_publish(topic, payload, qos, retain, mid) == expected


@pytest.mark.parametrize(
    ("topic", "error"),
    [
        ("", "Invalid topic."),
        ("a/+/b", "cannot contain wildcards"),
        ("a/#", "cannot contain wildcards"),
        ("x" * 65536, "too long"),
    ],
)
def test_topics_mqtt_refuses_raise_with_paho_s_words(topic: str, error: str) -> None:
    with pytest.raises(ValueError, match=error):
        check_topic(topic)
