"""The paho client :class:`~triolette.PahoTransport` drives: paho's protocol, our hot path.

paho keeps the connection's protocol (CONNECT and its will, SUBSCRIBE, inbound messages,
keepalive). The two packets a bridge sends and reads by the thousand a second, PUBLISH and
its v3.1.1 PUBACK, are encoded and decoded here instead: paho builds a message object, an
info object with its own ``threading.Condition``, a lock round and a log call for each, and
reads each 4-byte PUBACK with three system calls. The transport keeps the QoS 1 messages
itself (to resend them after a reconnect), so none of that is needed.

The client also does the socket I/O in large chunks: one ``recv`` takes whatever is waiting
(paho's small reads are served from that buffer), and every packet, paho's and ours, goes
into one send buffer written with one ``send``. Byte counters tell the transport when a QoS 0
message has left (it counts as published once the socket took it).
"""

from __future__ import annotations

import ssl
import time
from collections.abc import Callable
from typing import Any, Literal

from paho.mqtt import client as paho
from paho.mqtt.enums import MQTTErrorCode

_SUCCESS = MQTTErrorCode.MQTT_ERR_SUCCESS
_PUBACK = 0x40
_PUBLISH = 0x30
_DUP = 0x08
MAX_PAYLOAD = 268_435_455
"""The largest payload MQTT's length field can carry."""


def check_topic(topic: str) -> bytes:
    """``topic`` as it goes on the wire; ValueError (paho's words) for one MQTT refuses."""
    encoded = topic.encode()
    if not encoded:
        raise ValueError("Invalid topic.")
    if b"+" in encoded or b"#" in encoded:
        raise ValueError("Publish topic cannot contain wildcards.")
    if len(encoded) > 65535:
        raise ValueError("Publish topic is too long.")
    return encoded


def encode_publish(topic: bytes, payload: bytes, qos: int, retain: bool, mid: int) -> bytes:
    """An MQTT 3.1.1 PUBLISH packet (``mid`` is used only with QoS 1)."""
    if len(payload) > MAX_PAYLOAD:
        raise ValueError("Payload too large.")
    remaining = 2 + len(topic) + len(payload) + (2 if qos else 0)
    header = bytearray((_PUBLISH | qos << 1 | retain,))
    while remaining > 0x7F:
        header.append(remaining & 0x7F | 0x80)
        remaining >>= 7
    header.append(remaining)
    header += len(topic).to_bytes(2, "big")
    header += topic
    if qos:
        header += mid.to_bytes(2, "big")
    header += payload
    return bytes(header)


def as_duplicate(packet: bytes) -> bytes:
    """``packet`` (a QoS 1 PUBLISH) flagged as sent before, for a resend after a reconnect."""
    return bytes((packet[0] | _DUP,)) + packet[1:]


class BufferedClient(paho.Client):
    """A paho client whose socket I/O is chunked and whose PUBLISH/PUBACK path is ours.

    :meth:`send_packet` queues a ready packet; :attr:`on_puback` is called with the message
    id of each PUBACK (paho's own bookkeeping of QoS 1 messages is never used). Both buffers
    belong to one connection: closing its socket empties them, after one last attempt to
    send, so a DISCONNECT still leaves.
    """

    _CHUNK = 65536

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._received = bytearray()
        self._unsent = bytearray()
        self.queued_bytes = 0
        """Bytes put in the send buffer since the client was made (a running count)."""
        self.sent_bytes = 0
        """Of those, bytes the socket took, or dropped with a closed connection."""
        self.on_puback: Callable[[int], None] = _ignore_ack

    @property
    def buffered(self) -> bool:
        """Whether bytes already read from the socket wait to be handled."""
        return bool(self._received)

    @property
    def unsent(self) -> int:
        """How many bytes wait for the socket."""
        return len(self._unsent)

    @property
    def has_socket(self) -> bool:
        return self._sock is not None

    def next_mid(self) -> int:
        """A message id no other packet in flight has (paho's counter, shared with SUBSCRIBE).

        Without paho's lock: every call comes from the trio thread.
        """
        mid = self._last_mid + 1 if self._last_mid < 65535 else 1
        self._last_mid = mid
        return mid

    def send_packet(self, packet: bytes | bytearray) -> None:
        """Queue ``packet`` behind everything queued before; :meth:`loop_write` sends it."""
        self._unsent += packet
        self.queued_bytes += len(packet)

    def want_write(self) -> bool:
        return bool(self._unsent) or super().want_write()

    def loop_write(self) -> MQTTErrorCode:
        """Send paho's queued packets and ours: what the socket takes now, in one call.

        Once all is sent, paho's "write registered" flag is cleared, so the next packet paho
        queues (a PUBACK for an inbound message, a ping) calls ``on_socket_register_write``
        again: paho clears it only when its own ``loop_write`` finds nothing left, which our
        send buffer hides from it.
        """
        rc = super().loop_write() if self._out_packet else _SUCCESS
        if rc == _SUCCESS and self._unsent:
            if self._sock is None:
                return MQTTErrorCode.MQTT_ERR_NO_CONN
            if not self._flush():
                self._sock_close()
                return MQTTErrorCode.MQTT_ERR_CONN_LOST
        if not self._unsent and not self._out_packet:
            self._call_socket_unregister_write()
        return rc

    def _sock_send(self, buf: bytes | bytearray) -> int:
        if self._sock is None:
            raise ConnectionError("self._sock is None")
        self.send_packet(buf)  # paho's own packets join ours, in order
        return len(buf)

    def _flush(self) -> bool:
        """Send what the socket takes now; false when the connection failed."""
        try:
            sent = self._sock.send(self._unsent)  # type: ignore[union-attr]
        except (BlockingIOError, ssl.SSLWantWriteError, ssl.SSLWantReadError):
            return True
        except (OSError, AttributeError):
            return False
        del self._unsent[:sent]
        self.sent_bytes += sent
        self._last_msg_out = time.monotonic()  # paho's keepalive clock
        return True

    def _packet_read(self) -> MQTTErrorCode:
        """Handle every whole PUBACK at the head of the buffer at once; anything else, or a
        PUBACK split between two reads, goes to paho (one packet per call)."""
        if self._in_packet["command"] != 0 or self._protocol != paho.MQTTv311:
            return super()._packet_read()
        received = self._received
        if not received:
            try:
                received += super()._sock_recv(self._CHUNK)  # paho's: TLS's "want read" too
            except BlockingIOError:
                return MQTTErrorCode.MQTT_ERR_AGAIN
            except OSError:
                return MQTTErrorCode.MQTT_ERR_CONN_LOST
            if not received:
                return MQTTErrorCode.MQTT_ERR_CONN_LOST
        end, size, acked = 0, len(received), self.on_puback
        try:
            while end + 4 <= size and received[end] == _PUBACK and received[end + 1] == 2:
                end += 4
                acked(received[end - 2] << 8 | received[end - 1])
        finally:
            if end:
                del received[:end]
                self._last_bytes_received = time.monotonic()
        return _SUCCESS if end else super()._packet_read()

    def _handle_pubackcomp(self, cmd: Literal["PUBACK", "PUBCOMP"]) -> MQTTErrorCode:
        packet = self._in_packet["packet"]
        if cmd != "PUBACK" or self._protocol != paho.MQTTv311 or len(packet) != 2:
            return super()._handle_pubackcomp(cmd)
        self.on_puback(packet[0] << 8 | packet[1])
        return _SUCCESS

    def _sock_recv(self, bufsize: int) -> bytes:
        received = self._received
        if not received:
            data = super()._sock_recv(self._CHUNK)  # BlockingIOError: nothing waiting
            if len(data) <= bufsize:
                return data  # also the empty read of a closed connection
            received += data
        chunk = bytes(received[:bufsize])
        del received[:bufsize]
        return chunk

    def reconnect(self) -> MQTTErrorCode:
        self._drop_buffers()  # an old connection's bytes are not the new one's
        return super().reconnect()

    def _sock_close(self) -> None:
        if self._unsent and self._sock is not None:
            self._flush()
        self._drop_buffers()
        super()._sock_close()

    def _drop_buffers(self) -> None:
        self._received.clear()
        self._unsent.clear()
        self.sent_bytes = self.queued_bytes  # what was not sent never will be


def _ignore_ack(mid: int) -> None:
    pass
