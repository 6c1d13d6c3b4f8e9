"""The MQTT transport on paho-mqtt 2.x, driven by trio's socket waits (no paho thread).

paho does the protocol; this module does the I/O. While a connection is up, three tasks in
:meth:`PahoTransport.serve`'s nursery drive it: a reader (``loop_read`` while the socket has
data), a writer woken when paho queues bytes, and a once-a-second housekeeper (``loop_misc``:
keepalive pings, and closing a connection whose broker stopped answering). The blocking
``reconnect`` (DNS, TCP, TLS handshake) runs in a worker thread; the CONNACK must follow within
``connect_timeout``.

PUBLISH and PUBACK, the packets a bridge sends and reads by the thousand, take a lean path
(:mod:`.paho_client`). QoS 1 messages not yet acknowledged when a connection dies are kept
here and sent again, flagged as duplicates, right after the next CONNACK.

Over 400 lines: the public methods and the paho callbacks share the connection's state (the
window, the pending confirmations), so they stay in one class; the module's end tells a
TLS/plain port mismatch from an outage.
"""

from __future__ import annotations

import logging
import math
import select
import socket
import ssl
from collections import deque
from collections.abc import Callable, Sequence
from typing import Any

import trio
from paho.mqtt import client as paho
from paho.mqtt.enums import CallbackAPIVersion, MQTTErrorCode
from paho.mqtt.reasoncodes import ReasonCode

from triolette.actors.paho_client import BufferedClient, as_duplicate, check_topic, encode_publish
from triolette.actors.transport import Confirmed
from triolette.core.errors import ConnectError, PublishError
from triolette.core.messages import Message

logger = logging.getLogger("triolette.mqtt")

_SUCCESS = MQTTErrorCode.MQTT_ERR_SUCCESS
# CONNACK refusals that retrying cannot cure: protocol version, client id, credentials,
# authorisation, ban, authentication method (MQTT 5 codes; paho maps 3.1.1's onto them).
_PERMANENT_REFUSALS = frozenset({0x84, 0x85, 0x86, 0x87, 0x8A, 0x8C})
_READS_PER_WAKEUP = 64
EAGER_GAP = 0.0005
"""Seconds after an eager write during which further publishes wait for the writer task."""


class PahoTransport:
    """A connection to the broker at ``host``:``port``, for one :class:`MqttActor`.

    ``inflight`` bounds the QoS 1 messages sent and not yet acknowledged: :meth:`publish` waits
    for room, so memory stays bounded when the broker is slow. QoS 0 messages never wait for
    that window. ``tls`` is a ready :class:`ssl.SSLContext` (built before the app starts, as
    reading certificates blocks). ``socket_options`` are ``(level, option, value)`` triples
    set on each connection's socket once it is open, such as ``(socket.IPPROTO_TCP,
    socket.TCP_NODELAY, 1)``. The password is never logged or shown in ``repr``.
    """

    def __init__(
        self,
        host: str,
        port: int = 1883,
        *,
        client_id: str | None = None,
        username: str | None = None,
        password: str | None = None,
        tls: ssl.SSLContext | None = None,
        keepalive: float = 60.0,
        connect_timeout: float = 5.0,
        inflight: int = 100,
        socket_options: Sequence[tuple[int, int, int]] = (),
    ) -> None:
        self.host = host
        self.port = port
        self.client_id = client_id
        self.username = username
        self.tls = tls
        self.keepalive = keepalive
        self.connect_timeout = connect_timeout
        self.socket_options = tuple(socket_options)
        self.broker = f"{host}:{port}"
        self._client = self._new_client(password)
        self._window = trio.Semaphore(inflight)
        # QoS 1 mid -> topic, confirmation, packet (sent again after a reconnect)
        self._pending: dict[int, tuple[str, Confirmed, bytes]] = {}
        # QoS 0, oldest first: the client's byte count once written, topic, confirmation
        self._unwritten: deque[tuple[int, str, Confirmed]] = deque()
        self._subacks: dict[int, trio.Event] = {}
        self._on_message: Callable[[Message], None] = _ignore
        self._connack: ReasonCode | None = None
        self._session_present = False
        self._sock: Any = None
        self._lost = trio.Event()
        self._lost.set()
        self._write_wanted = trio.Event()
        self._written_at = -math.inf  # when publish() last wrote eagerly

    def _new_client(self, password: str | None) -> BufferedClient:
        client = BufferedClient(
            CallbackAPIVersion.VERSION2,
            client_id=self.client_id or "",
            protocol=paho.MQTTv311,
            reconnect_on_failure=False,  # the MQTT actor owns reconnection and its backoff
        )
        if self.username is not None:
            client.username_pw_set(self.username, password)
        if self.tls is not None:
            if self.tls.sslsocket_class is ssl.SSLSocket:
                # paho drops the socket of a failed handshake unclosed: close it there.
                self.tls.sslsocket_class = _ClosingSSLSocket
            client.tls_set_context(self.tls)
        client.connect_timeout = self.connect_timeout
        client.on_puback = self._on_puback
        client.on_connect = self._on_connect
        client.on_message = self._on_paho_message
        client.on_subscribe = self._on_subscribe
        client.on_socket_close = self._on_socket_close
        client.on_socket_register_write = self._on_register_write
        client.connect_async(self.host, self.port, keepalive=max(1, round(self.keepalive)))
        return client

    def __repr__(self) -> str:
        return f"PahoTransport({self.host!r}, {self.port}, client_id={self.client_id!r})"

    @property
    def connected(self) -> bool:
        return not self._lost.is_set()

    async def connect(self, will: Message, on_message: Callable[[Message], None]) -> bool:
        """Open a connection (the first, or again after a loss); true if the session was kept.

        Raises :class:`~triolette.ConnectError`, ``permanent`` when retrying cannot help (the
        host name does not resolve, the certificate does not verify, a socket option refused,
        credentials refused, TLS to a plain port or plain MQTT to a TLS port).
        Cancellation waits for a connect already in its thread (bounded by
        ``connect_timeout``).
        """
        client = self._client
        client.will_set(will.topic, will.payload, qos=will.qos, retain=will.retain)
        self._on_message = on_message
        self._connack = None
        await self._open_socket()
        self._sock = client.socket()
        self._set_socket_options()
        self._lost = trio.Event()
        self._write_wanted = trio.Event()
        mismatch: str | None = None
        with trio.move_on_after(self.connect_timeout):
            mismatch = await self._await_connack()
        self._check_connack(mismatch)
        for _, _, packet in self._pending.values():  # unacknowledged: sent again, in order
            client.send_packet(as_duplicate(packet))
        if client.want_write():
            self._write_wanted.set()
        return self._session_present

    async def _open_socket(self) -> None:
        """paho's blocking ``reconnect`` (DNS, TCP, TLS, CONNECT queued) in a worker thread;
        its errors as :class:`~triolette.ConnectError`."""
        try:
            await trio.to_thread.run_sync(self._client.reconnect)
        except socket.gaierror as error:
            # EAI_AGAIN: no answer from the resolver (say, at boot): an outage, not a verdict.
            raise ConnectError(
                self.broker,
                f"the host name does not resolve ({error})",
                permanent=error.errno != socket.EAI_AGAIN,
            ) from error
        except ssl.SSLCertVerificationError as error:
            raise ConnectError(
                self.broker, f"TLS: {error.verify_message}", permanent=True
            ) from error
        except (OSError, ValueError) as error:
            if self.tls is not None and _refused_tls(error):
                raise ConnectError(self.broker, _NO_TLS, permanent=True) from error
            raise ConnectError(self.broker, str(error) or type(error).__name__) from error

    def _check_connack(self, mismatch: str | None) -> None:
        """Raise :class:`~triolette.ConnectError` (closing the socket) unless a CONNACK
        accepted the connection; ``mismatch`` says why a plain connection reached TLS."""
        reason = self._connack  # set by the on_connect callback
        if reason is not None and not reason.is_failure:
            return
        self._close_socket()
        if reason is None and mismatch is not None:
            raise ConnectError(self.broker, mismatch, permanent=True)
        if reason is None:
            raise ConnectError(self.broker, f"no CONNACK within {self.connect_timeout:g} s")
        raise ConnectError(
            self.broker, f"refused: {reason}", permanent=reason.value in _PERMANENT_REFUSALS
        )

    def _set_socket_options(self) -> None:
        for option in self.socket_options:
            try:
                self._sock.setsockopt(*option)
            except OSError as error:
                self._close_socket()
                refused = f"socket option {option} refused: {error}"
                raise ConnectError(self.broker, refused, permanent=True) from error

    async def _await_connack(self) -> str | None:
        """Read until the CONNACK; return why a plain connection evidently reached TLS."""
        client, sock = self._client, self._sock
        client.loop_write()  # CONNECT, queued by reconnect()
        first = self.tls is None
        while self._connack is None:
            try:
                await trio.lowlevel.wait_readable(sock)
            except trio.ClosedResourceError:
                return None
            if first:
                first = False
                mismatch = _answered_as_tls(sock)
                if mismatch is not None:
                    return mismatch
            if client.loop_read() != _SUCCESS or client.socket() is not sock:
                return None
        return None

    async def serve(self) -> None:
        """Drive the open connection until it is lost, then return.

        Cancelling stops driving it and leaves it open: :meth:`disconnect` closes it.
        """
        sock = self._sock
        async with trio.open_nursery() as nursery:
            nursery.start_soon(self._read, sock)
            nursery.start_soon(self._write, sock)
            nursery.start_soon(self._housekeep)
            await self._lost.wait()
            nursery.cancel_scope.cancel()

    async def publish(self, message: Message, confirmed: Confirmed) -> None:
        """Hand ``message`` over; wait only for room in the QoS 1 window.

        ``confirmed`` is called once, later or now: with ``None`` when the broker acknowledged
        it (QoS 1) or it was written to the socket (QoS 0), with a
        :class:`~triolette.PublishError` when it cannot be (refused, or a QoS 0 message lost
        with its connection). A QoS 1 message survives a lost connection: it is sent again
        after the next CONNACK. Raises ``PublishError`` only when not connected. If
        cancelled, nothing was handed over.
        """
        # Over 50 lines on purpose: from the window to the eager write there is no checkpoint,
        # so a cancellation never leaves a message half handed over; one body keeps that visible.
        qos = message.qos
        if qos:
            try:
                self._window.acquire_nowait()
            except trio.WouldBlock:
                await self._window.acquire()
        if self._lost.is_set():
            if qos:
                self._window.release()
            raise PublishError(message.topic, "not connected")
        client = self._client
        try:
            mid = client.next_mid() if qos else 0
            packet = encode_publish(
                check_topic(message.topic), message.payload, qos, message.retain, mid
            )
        except ValueError as error:  # a topic MQTT refuses (wildcards, too long)
            if qos:
                self._window.release()
            confirmed(PublishError(message.topic, str(error)))
            return
        if qos:
            # Kept even if the connection just died: it is sent again after the next CONNACK.
            self._pending[mid] = (message.topic, confirmed, packet)
        elif not client.has_socket:
            confirmed(PublishError(message.topic, "not connected"))
            return
        client.send_packet(packet)
        if not qos:
            self._unwritten.append((client.queued_bytes, message.topic, confirmed))
        # Written now when this message filled the QoS 1 window (no more can come until
        # the broker acknowledges) or none was written for EAGER_GAP; otherwise the writer
        # sends it at the end of this scheduling round, with the others published meanwhile.
        now = trio.current_time()
        if not (qos and self._window.value == 0) and now - self._written_at < EAGER_GAP:
            self._write_wanted.set()
            return
        self._written_at = now
        client.loop_write()
        if self._lost.is_set():  # the write found the connection gone (and failed what waited)
            return
        if client.want_write():
            self._write_wanted.set()
        self._confirm_written()  # this write may also have finished earlier QoS 0 messages

    async def subscribe(self, topics: Sequence[str]) -> None:
        """Subscribe to ``topics`` (QoS 1) in one request; return after the broker's SUBACK.

        Raises :class:`~triolette.ConnectError` when the broker does not answer within
        ``connect_timeout`` or the request cannot be sent.
        """
        if not topics:
            return
        result, mid = self._client.subscribe([(topic, 1) for topic in topics])
        if result != _SUCCESS or mid is None:
            raise ConnectError(self.broker, f"subscribe failed: {paho.error_string(result)}")
        acked = self._subacks[mid] = trio.Event()
        self._client.loop_write()
        try:
            with trio.fail_after(self.connect_timeout):
                await acked.wait()
        except trio.TooSlowError:
            raise ConnectError(self.broker, "no SUBACK: the broker stopped answering") from None
        finally:
            self._subacks.pop(mid, None)

    async def disconnect(self) -> None:
        """Say goodbye (the broker drops the will) and close; waits at most ``connect_timeout``.

        QoS 1 messages still unacknowledged are confirmed with a ``PublishError``.
        """
        if not self._lost.is_set():
            self._client.disconnect()
            self._client.loop_write()
            with trio.move_on_after(self.connect_timeout):
                await self._lost.wait()
            self._close_socket()
        await trio.lowlevel.checkpoint()
        pending, self._pending = self._pending, {}
        for topic, confirmed, _ in pending.values():
            self._window.release()
            confirmed(PublishError(topic, "disconnected before the broker acknowledged it"))

    # -- the connection's tasks ---------------------------------------------------------------

    async def _read(self, sock: Any) -> None:
        client = self._client
        while not self._gone(sock):
            if _read_ahead(client, sock):  # bytes already read: the socket may have no more
                await trio.lowlevel.checkpoint()  # a turn for the others after a long burst
            else:
                try:
                    await trio.lowlevel.wait_readable(sock)
                except trio.ClosedResourceError:
                    return
            # paho reads about one packet per call: keep reading while data is waiting.
            for _ in range(_READS_PER_WAKEUP):
                if client.loop_read() != _SUCCESS or client.socket() is not sock:
                    self._close_socket()
                    return
                if not _read_ahead(client, sock) and not _readable(sock):
                    break

    async def _write(self, sock: Any) -> None:
        client = self._client
        while True:
            if not client.want_write():
                self._confirm_written()
                await self._write_wanted.wait()
                self._write_wanted = trio.Event()
                continue
            if self._gone(sock):
                return
            if client.loop_write() != _SUCCESS or client.socket() is not sock:
                self._close_socket()
                return
            self._confirm_written()
            if client.want_write() and not await _writable(sock):  # the socket took a part
                return

    async def _housekeep(self) -> None:
        while True:
            await trio.sleep(min(1.0, self.keepalive / 4))
            if self._client.loop_misc() != _SUCCESS:  # keepalive: the broker stopped answering
                self._close_socket()
                return

    def _gone(self, sock: Any) -> bool:
        """Whether ``sock`` was closed meanwhile (waiting on it would raise): the loss is noted."""
        if self._client.socket() is sock:
            return False
        self._lost.set()
        return True

    def _confirm_written(self) -> None:
        unwritten, sent = self._unwritten, self._client.sent_bytes
        while unwritten and unwritten[0][0] <= sent:
            unwritten.popleft()[2](None)

    def _close_socket(self) -> None:
        # paho has no public abort (disconnect() sends DISCONNECT, which cancels the will).
        self._client._sock_close()
        self._lost.set()

    # -- paho callbacks (on the trio thread, except inside the connect thread) ----------------

    def _on_connect(self, client: Any, userdata: Any, flags: Any, reason: Any, props: Any) -> None:
        self._connack = reason
        self._session_present = bool(flags.session_present)

    def _on_puback(self, mid: int) -> None:
        entry = self._pending.pop(mid, None)
        if entry is None:
            return  # not ours (a duplicate acknowledgement)
        self._window.release()
        entry[1](None)  # MQTT 3.1.1 has no refusal in a PUBACK

    def _on_subscribe(self, client: Any, userdata: Any, mid: int, reasons: Any, props: Any) -> None:
        refused = [reason for reason in reasons if reason.is_failure]
        if refused:
            logger.warning("the broker refused %d subscription(s): %s", len(refused), refused[0])
        event = self._subacks.get(mid)
        if event is not None:
            event.set()

    def _on_paho_message(self, client: Any, userdata: Any, message: Any) -> None:
        try:
            topic = message.topic
        except UnicodeDecodeError:
            logger.warning("dropped an inbound message whose topic is not UTF-8")
            return
        self._on_message(Message(topic, message.payload, qos=message.qos, retain=message.retain))

    def _on_socket_close(self, client: Any, userdata: Any, sock: Any) -> None:
        if trio.lowlevel.in_trio_task():
            trio.lowlevel.notify_closing(sock)  # wakes the reader and writer
            self._lost.set()
            unwritten, self._unwritten = self._unwritten, deque()
            for _, topic, confirmed in unwritten:
                confirmed(PublishError(topic, "connection lost before it was written"))

    def _on_register_write(self, client: Any, userdata: Any, sock: Any) -> None:
        # paho queued a packet of its own; in the connect thread connect() checks afterwards.
        if trio.lowlevel.in_trio_task():
            self._write_wanted.set()


class _ClosingSSLSocket(ssl.SSLSocket):
    """An SSL socket that closes itself when its handshake fails (retries leak none)."""

    def do_handshake(self, block: bool = False) -> None:
        try:
            super().do_handshake(block)
        except BaseException:
            self.close()
            raise


_NO_TLS = "it did not answer TLS: is it a plain MQTT port? (8883 is the usual TLS port)"
_TLS_PORT = "it {} right after CONNECT: is it a TLS port? (8883 is the usual one: pass tls=)"
_TLS_RECORDS = frozenset({0x15, 0x16})  # a TLS alert or handshake record


def _refused_tls(error: BaseException) -> bool:
    """Whether a failed TLS handshake looks like a peer that does not speak TLS.

    A plain MQTT broker reads the ClientHello as a malformed packet and drops the connection
    (a reset, or end of file); a plain server that speaks first gives a wrong "version".
    """
    if isinstance(error, (ConnectionResetError, ssl.SSLEOFError, ssl.SSLZeroReturnError)):
        return True
    return isinstance(error, ssl.SSLError) and error.reason == "WRONG_VERSION_NUMBER"


def _answered_as_tls(sock: Any) -> str | None:
    """Peek at the first answer to a plain CONNECT: a TLS record, or a reset (a TLS server
    that could not parse it closes with our bytes unread), says the port wants TLS."""
    try:
        first = sock.recv(1, socket.MSG_PEEK)
    except ConnectionResetError:
        return _TLS_PORT.format("reset the connection")
    except OSError:
        return None
    if first and first[0] in _TLS_RECORDS:
        return _TLS_PORT.format("answered in TLS")
    return None


async def _writable(sock: Any) -> bool:
    """Wait until ``sock`` takes more bytes; false if it was closed meanwhile."""
    try:
        await trio.lowlevel.wait_writable(sock)
    except trio.ClosedResourceError:
        return False
    return True


def _read_ahead(client: BufferedClient, sock: Any) -> bool:
    """Whether bytes were read from ``sock`` that no packet has used yet (in the client's
    buffer, or decrypted and held by TLS): waiting for the socket would not wake for them."""
    return client.buffered or (isinstance(sock, ssl.SSLSocket) and sock.pending() > 0)


def _readable(sock: Any) -> bool:
    """Whether the socket itself has bytes waiting now."""
    readable, _, _ = select.select([sock], [], [], 0)
    return bool(readable)


def _ignore(message: Message) -> None:
    pass
