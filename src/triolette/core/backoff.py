"""Capped exponential backoff with jitter: the pacing of device restarts and of reconnects."""

from __future__ import annotations

import random

import attrs


def jittered(delay: float, jitter: float, rng: random.Random) -> float:
    """``delay`` moved by up to ``jitter`` of itself either way, so retries spread out."""
    return delay * (1 + rng.uniform(-jitter, jitter))


@attrs.frozen(kw_only=True)
class Backoff:
    """Delay before restart number ``n`` (from 0): ``initial * factor**n``, capped, jittered.

    The count starts again after ``reset_after`` seconds of stable running (a device without
    a crash, a connection that stayed up).

    Reconnects are paced by the time an outage has lasted instead (:meth:`outage_delay`): a
    broker that comes back is found within about ``initial`` seconds however many outages
    came before.
    """

    initial: float = 0.5
    maximum: float = 30.0
    factor: float = 2.0
    jitter: float = 0.1
    reset_after: float = 60.0
    fast_for: float = 30.0
    """Reconnects: for this long into an outage, retry every ``initial`` seconds."""
    share: float = 0.1
    """Reconnects: past ``fast_for``, wait this share of the time the outage has lasted."""

    def delay(self, n: int, rng: random.Random) -> float:
        try:
            base = min(self.maximum, self.initial * self.factor**n)
        except OverflowError:  # a long crash loop: factor**n outgrew a float
            base = self.maximum
        return jittered(base, self.jitter, rng)

    def outage_delay(self, lasted: float, rng: random.Random) -> float:
        """Delay before the next reconnect of an outage that began ``lasted`` seconds ago.

        ``initial`` for the first ``fast_for`` seconds, then ``share`` of ``lasted`` (never
        less than ``initial``, never more than ``maximum``), jittered: a broker back after a
        long outage costs at most that share of the outage on top.
        """
        base = self.initial
        if lasted >= self.fast_for:
            base = max(base, min(self.maximum, lasted * self.share))
        return jittered(base, self.jitter, rng)


RECONNECT = Backoff(initial=0.5, maximum=30.0, jitter=0.2, reset_after=5.0)
"""The default pacing of reconnects: every 0.5 s (±20 %) for 30 s, then a tenth of the outage,
at most 30 s; a connection up for 5 s ends the outage."""
