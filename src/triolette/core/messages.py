"""Values that travel between actors. Frozen, so a message is never changed after it is sent."""

from __future__ import annotations

import attrs


def _to_bytes(payload: str | bytes) -> bytes:
    return payload.encode() if isinstance(payload, str) else bytes(payload)


@attrs.frozen
class Message:
    """One MQTT message, outbound or inbound.

    ``payload`` is the raw bytes on the wire; ``text`` decodes it as UTF-8 for convenience.
    """

    topic: str
    payload: bytes = attrs.field(converter=_to_bytes)
    qos: int = 1
    retain: bool = False

    @property
    def text(self) -> str:
        return self.payload.decode("utf-8", errors="replace")
