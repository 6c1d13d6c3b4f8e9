"""QoS 1 messages a graceful stop could not deliver, kept in the store for the next start.

They live under one key of the app's own store, :data:`KEY`, which no device can take (a
device name is one topic level; this key holds a ``/``). The state is
``{"messages": [{"topic": ..., "text": ...} | {"topic": ..., "base64": ...}, ...]}``, oldest
first; ``base64`` holds a payload that is not UTF-8. Delivery is at least once: the next start
queues them and the key is only rewritten at the next graceful stop, so a crash in between
sends them again on the start after (QoS 1 consumers must take duplicates anyway).
"""

from __future__ import annotations

import base64
import binascii
import logging
from collections.abc import Iterable

from triolette.core.jsonstate import decode_state, encode_state
from triolette.core.messages import Message

logger = logging.getLogger("triolette.mqtt")

KEY = "triolette/undelivered"
"""The store key of the carried-over messages."""


def encode(messages: Iterable[Message]) -> str:
    """The store text for ``messages`` (QoS 1, not retained)."""
    entries = []
    for message in messages:
        try:
            entries.append({"topic": message.topic, "text": message.payload.decode("utf-8")})
        except UnicodeDecodeError:
            entries.append(
                {"topic": message.topic, "base64": base64.b64encode(message.payload).decode()}
            )
    return encode_state(KEY, {"messages": entries})


def decode(text: str | None) -> list[Message]:
    """The messages in the store text ``text`` (``None``: none); a damaged entry is skipped."""
    if text is None:
        return []
    try:
        entries = decode_state(text).get("messages", [])
    except ValueError as error:
        logger.error("ignoring the undelivered messages kept in the store: %s", error)
        return []
    messages = []
    for entry in entries if isinstance(entries, list) else []:
        try:
            payload = (
                entry["text"].encode() if "text" in entry else base64.b64decode(entry["base64"])
            )
            messages.append(Message(entry["topic"], payload, qos=1, retain=False))
        except (KeyError, TypeError, AttributeError, binascii.Error):
            logger.error("ignoring a damaged undelivered message kept in the store: %r", entry)
    return messages
