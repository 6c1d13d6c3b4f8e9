"""The MQTT actor's bookkeeping of what the broker has not taken: drops and confirmations.

:class:`Drops` turns messages dropped at a full queue into *episodes*, one per device: an
episode starts at the first drop and ends once the queue is half empty again; its end gives one
WARNING (count, device, bound, since when) and one error report. :class:`Unconfirmed` knows how
long the oldest QoS 1 message handed to the broker has waited for its acknowledgement, which is
how a hung broker is noticed long before the keepalive would.
"""

from __future__ import annotations

import logging
import math
from datetime import UTC, datetime

import attrs
import trio

from triolette.core.errors import PublishError
from triolette.core.messages import Message

logger = logging.getLogger("triolette.mqtt")


class OutboxFullError(PublishError):
    """Messages were dropped because their queue was full (the broker away or too slow)."""

    def __init__(self, topic: str, device: str | None, dropped: int, reason: str) -> None:
        self.device = device
        self.dropped = dropped
        super().__init__(topic, reason)


@attrs.define
class _Episode:
    topic: str
    qos: int
    since: datetime
    dropped: int = 0


class Drops:
    """Drop episodes per device (``None``: the app's own topics), for queues of ``size``."""

    def __init__(self, prefix: str, size: int) -> None:
        self._prefix = prefix
        self._size = size
        self._open: dict[str | None, _Episode] = {}

    def __bool__(self) -> bool:
        return bool(self._open)

    def dropped(self, message: Message) -> None:
        """Count ``message`` as dropped in its device's episode (opening one if needed)."""
        device = self.device_of(message.topic)
        episode = self._open.get(device)
        if episode is None:
            episode = self._open[device] = _Episode(message.topic, message.qos, datetime.now(UTC))
        episode.dropped += 1

    def device_of(self, topic: str) -> str | None:
        """The device of a ``{p}/{device}/...`` topic; ``None`` for the app's own topics."""
        head, _, rest = topic.partition("/")
        device, _, tail = rest.partition("/")
        return device if head == self._prefix and tail and device else None

    def close(self) -> list[OutboxFullError]:
        """End every open episode: log one WARNING each and return their error reports."""
        reports = []
        for device, episode in self._open.items():
            who = f"device {device}" if device is not None else "the app"
            reason = (
                f"outbox full ({self._size} QoS {episode.qos} messages): dropped "
                f"{episode.dropped} of {who} since {episode.since.isoformat(timespec='seconds')}"
            )
            logger.warning("%s", reason)
            reports.append(OutboxFullError(episode.topic, device, episode.dropped, reason))
        self._open.clear()
        return reports


class Unconfirmed:
    """QoS 1 messages handed to the broker and not acknowledged yet, oldest first.

    Tracks when the broker last confirmed anything, so that one WARNING says when it went
    silent for longer than ``bound`` and one INFO when it answers again.
    """

    def __init__(self, bound: float) -> None:
        self.bound = bound
        self._since: dict[int, float] = {}  # a token per message, with its hand-over time
        self._next = 0
        self.silent = False
        """Whether the WARNING was given and no confirmation came since."""
        self._silent_since = 0.0
        self._last_confirmed = -math.inf
        self.stalls = 0
        """How many times the bound was passed (each ended a connection)."""

    def __len__(self) -> int:
        return len(self._since)

    def sent(self) -> int:
        """Note a message handed over now; return its token for :meth:`settled`."""
        self._next += 1
        self._since[self._next] = trio.current_time()
        return self._next

    def settled(self, token: int, *, confirmed: bool) -> None:
        """The message of ``token`` was confirmed (or failed): it waits no longer."""
        self._since.pop(token, None)
        if confirmed:
            self._last_confirmed = trio.current_time()
        if confirmed and self.silent:
            self.silent = False
            waited = trio.current_time() - self._silent_since
            logger.info("the broker confirms messages again (after %.1f s without)", waited)

    def forget(self) -> None:
        """The connection is gone: what it had not confirmed is the transport's to resend."""
        self._since.clear()

    def overdue(self) -> float | None:
        """How long the broker has been silent, if longer than the bound while messages wait.

        Silent: the oldest message waits, and nothing was confirmed since it was handed
        over, for longer than the bound. A slow broker that confirms steadily is not silent,
        however long a message queued behind the in-flight window waits.
        """
        if not self._since:
            return None
        oldest = next(iter(self._since.values()))
        waited = trio.current_time() - max(oldest, self._last_confirmed)
        return waited if waited > self.bound else None

    def went_silent(self, waited: float) -> None:
        """Count a stall; log the WARNING (once until a confirmation comes)."""
        self.stalls += 1
        if not self.silent:
            self.silent = True
            self._silent_since = trio.current_time() - waited
            logger.warning(
                "the broker has confirmed none of %d messages for %.1f s (bound %.1f s): "
                "treating the connection as lost",
                len(self._since),
                waited,
                self.bound,
            )
