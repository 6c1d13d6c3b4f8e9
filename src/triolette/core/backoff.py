"""Capped exponential backoff with jitter: the pacing of device restarts and of reconnects."""

from __future__ import annotations

import random

import attrs


@attrs.frozen(kw_only=True)
class Backoff:
    """Delay before restart number ``n`` (from 0): ``initial * factor**n``, capped, jittered.

    The count starts again after ``reset_after`` seconds of stable running (a device without
    a crash, a connection that stayed up).
    """

    initial: float = 0.5
    maximum: float = 30.0
    factor: float = 2.0
    jitter: float = 0.1
    reset_after: float = 60.0

    def delay(self, n: int, rng: random.Random) -> float:
        try:
            base = min(self.maximum, self.initial * self.factor**n)
        except OverflowError:  # a long crash loop: factor**n outgrew a float
            base = self.maximum
        return base * (1 + rng.uniform(-self.jitter, self.jitter))
