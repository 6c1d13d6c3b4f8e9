"""What the MQTT actor drives: the :class:`Transport` protocol, and the no-broker transport.

A transport is one connection to a broker; :class:`~triolette.PahoTransport` is the real one,
``triolette.testing.MemoryTransport`` the in-memory one, and ``check_transport`` (in
``triolette.testing``) the suite any transport must pass.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Sequence
from typing import Protocol

import trio

from triolette.core.errors import PublishError
from triolette.core.messages import Message

logger = logging.getLogger("triolette.mqtt")


class Confirmed(Protocol):
    """What :meth:`Transport.publish` calls once it knows a message's fate.

    With ``None`` when the broker has the message (QoS 1: acknowledged; QoS 0: written), else
    with the :class:`~triolette.PublishError` saying why not. Called synchronously; it must
    not block. Any function of that one argument is one.
    """

    def __call__(self, error: PublishError | None, /) -> None: ...


class Transport(Protocol):
    """A connection to a broker. Only the MQTT actor calls it.

    ``connect`` opens the connection (again, after a loss), registering the will (sent by the
    broker if the connection dies) and the callback for inbound messages (called
    synchronously; it must not block). It returns whether the broker kept the session, and
    raises :class:`~triolette.ConnectError`. ``serve`` drives the open connection and returns
    when it is lost. ``publish`` hands a message over, waiting at most for room in the QoS 1
    window; it calls ``confirmed`` exactly once, with ``None`` when the broker acknowledged
    it (QoS 1) or it was written (QoS 0), else with a :class:`~triolette.PublishError` (a
    refused message); it raises ``PublishError`` only when not connected, and if cancelled
    nothing was handed over.
    ``subscribe`` returns after the broker acknowledged. ``disconnect`` is the clean goodbye:
    the will is not sent.
    """

    async def connect(self, will: Message, on_message: Callable[[Message], None]) -> bool: ...

    async def serve(self) -> None: ...

    async def publish(self, message: Message, confirmed: Confirmed) -> None: ...

    async def subscribe(self, topics: Sequence[str]) -> None: ...

    async def disconnect(self) -> None: ...


class LogTransport:
    """A transport with no broker (a dry run): every publish is logged and confirmed at once.

    The messages are logged at INFO on ``triolette.mqtt``; the MQTT actor driving this
    transport logs them nowhere else and does not claim a connection.
    """

    def __init__(self) -> None:
        self._closed = trio.Event()

    async def connect(self, will: Message, on_message: Callable[[Message], None]) -> bool:
        await trio.lowlevel.checkpoint()
        logger.info("dry run, no broker: publishes are logged, not sent")
        return False

    async def serve(self) -> None:
        await self._closed.wait()

    async def publish(self, message: Message, confirmed: Confirmed) -> None:
        await trio.lowlevel.checkpoint()
        logger.info("publish %s %s%s", message.topic, message.text, " (retained)" * message.retain)
        confirmed(None)

    async def subscribe(self, topics: Sequence[str]) -> None:
        await trio.lowlevel.checkpoint()

    async def disconnect(self) -> None:
        await trio.lowlevel.checkpoint()
        self._closed.set()
