"""Retries within one telemetry cycle or command: how often, on what, and how long between.

``@app.telemetry(retry=N, retry_on=(OSError,), backoff=ExponentialBackoff())`` tries a failing
handler up to N more times in the same cycle. The backoffs here pace those attempts; the
restart pacing of crashed devices is :class:`~triolette.Backoff`. Every backoff moves its
delay by up to ±20 % (jitter) and never exceeds ``max_delay``. Any object with
``delay(attempt) -> float`` (``attempt`` counted from 1) can serve as a backoff.

The attempt number that feeds the backoff counts every failed attempt of a device since its
last success, across cycles: a sensor that failed for ten cycles waits the long delay, not
the first one, and one good reading brings it back to the short one.
"""

from __future__ import annotations

import math
import random
from typing import Protocol, runtime_checkable

import attrs

from triolette.core.backoff import jittered

JITTER = 0.2
_rng = random.Random()


@runtime_checkable
class RetryBackoff(Protocol):
    """What ``backoff=`` takes: the delay before retry number ``attempt`` (from 1)."""

    def delay(self, attempt: int) -> float: ...


def _check(value: object, what: str, *, zero: bool = False) -> float:
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise TypeError(f"{what} must be a number of seconds, got {value!r}")
    if not (value >= 0 if zero else value > 0) or not value < math.inf:
        raise ValueError(f"{what} must be a positive, finite number of seconds, got {value!r}")
    return float(value)


def _capped(delay: float, max_delay: float) -> float:
    return min(max_delay, jittered(delay, JITTER, _rng))


@attrs.frozen
class FixedBackoff:
    """The same ``delay`` (±20 %) before every retry."""

    delay_seconds: float = attrs.field(default=5.0, alias="delay")

    def __attrs_post_init__(self) -> None:
        _check(self.delay_seconds, "FixedBackoff(delay=...)", zero=True)

    @property
    def max_delay(self) -> float:
        return self.delay_seconds * (1 + JITTER)

    def delay(self, attempt: int) -> float:
        return jittered(self.delay_seconds, JITTER, _rng)


@attrs.frozen
class ExponentialBackoff:
    """``base * 2**(attempt - 1)`` seconds (±20 %), at most ``max_delay``."""

    base: float = 2.0
    max_delay: float = 60.0

    def __attrs_post_init__(self) -> None:
        _check(self.base, "ExponentialBackoff(base=...)")
        _check(self.max_delay, "ExponentialBackoff(max_delay=...)")

    def delay(self, attempt: int) -> float:
        try:
            delay = self.base * 2.0 ** (max(attempt, 1) - 1)
        except OverflowError:  # a long outage: 2**attempt outgrew a float
            delay = self.max_delay
        return _capped(delay, self.max_delay)


@attrs.frozen
class LinearBackoff:
    """``step * attempt`` seconds (±20 %), at most ``max_delay``."""

    step: float = 2.0
    max_delay: float = 60.0

    def __attrs_post_init__(self) -> None:
        _check(self.step, "LinearBackoff(step=...)")
        _check(self.max_delay, "LinearBackoff(max_delay=...)")

    def delay(self, attempt: int) -> float:
        return _capped(self.step * max(attempt, 1), self.max_delay)


@attrs.frozen(kw_only=True)
class RetryPolicy:
    """A registration's retry options, checked: ``retries`` extra attempts on ``retry_on``."""

    retries: int
    retry_on: tuple[type[BaseException], ...]
    backoff: RetryBackoff

    @classmethod
    def from_options(
        cls,
        retry: int,
        retry_on: tuple[type[BaseException], ...] | type[BaseException] | None,
        backoff: RetryBackoff | None,
    ) -> RetryPolicy | None:
        """The policy for ``@app.telemetry(retry=..., ...)``; ``None`` for no retries.

        Raises ValueError for a negative ``retry``, an empty ``retry_on``, or ``retry_on``
        or ``backoff`` given without ``retry``; TypeError for what is not an exception
        class or not a backoff.
        """
        if isinstance(retry, bool) or not isinstance(retry, int):
            raise TypeError(f"retry must be a whole number of retries, got {retry!r}")
        if retry < 0:
            raise ValueError(f"retry must not be negative, got {retry}")
        if retry == 0:
            if retry_on is not None or backoff is not None:
                raise ValueError("retry_on= and backoff= take effect only with retry= above 0")
            return None
        kinds = (retry_on,) if isinstance(retry_on, type) else retry_on
        if kinds is None:
            kinds = (OSError,)
        kinds = tuple(kinds)
        if not kinds:
            raise ValueError("retry_on=() retries nothing; leave retry= at 0 instead")
        for kind in kinds:
            if not (isinstance(kind, type) and issubclass(kind, Exception)):
                raise TypeError(f"retry_on takes exception classes, got {kind!r}")
        if backoff is None:
            backoff = ExponentialBackoff(2.0, 60.0)
        elif isinstance(backoff, type) or not isinstance(backoff, RetryBackoff):
            raise TypeError(f"backoff={backoff!r} has no delay(attempt) method")
        return cls(retries=retry, retry_on=kinds, backoff=backoff)
