"""What a device handler reads from its command channel: :class:`Command`.

A :class:`Command` is an inbound :class:`~triolette.core.messages.Message` as cosalette's
handlers know it: ``payload`` is the decoded text (``raw`` keeps the bytes), ``sub_topic`` the
level between the device and ``set`` (``None`` for the plain ``{prefix}/{device}/set``) and
``timestamp`` trio's clock when it was read.
"""

from __future__ import annotations

import attrs

from .messages import Message


@attrs.frozen
class Command:
    """One inbound command. ``payload`` and ``text`` are the same UTF-8 text (an invalid byte
    becomes U+FFFD); ``raw`` is the bytes on the wire; ``timestamp`` is in monotonic seconds."""

    topic: str
    payload: str
    sub_topic: str | None
    timestamp: float
    raw: bytes
    qos: int = 1
    retain: bool = False

    @property
    def text(self) -> str:
        """The payload as text (the same string as :attr:`payload`)."""
        return self.payload

    @classmethod
    def from_message(cls, message: Message, *, command_topic: str, timestamp: float) -> Command:
        """``message`` read at ``timestamp``; ``command_topic`` is the device's ``.../set``."""
        base = command_topic.removesuffix("/set")
        sub_topic: str | None = None
        topic = message.topic
        if topic != command_topic and topic.startswith(f"{base}/") and topic.endswith("/set"):
            sub_topic = topic[len(base) + 1 : -len("/set")] or None
        return cls(
            topic=message.topic,
            payload=message.text,
            sub_topic=sub_topic,
            timestamp=timestamp,
            raw=message.payload,
            qos=message.qos,
            retain=message.retain,
        )
