"""A circuit breaker for telemetry: stop polling a device that keeps failing, then probe it.

``@app.telemetry(circuit_breaker=CircuitBreaker(threshold=5))`` counts the cycles that failed
for good (every retry used up, or an error no retry applies to). After ``threshold`` of them
in a row the circuit is *open*: the next cycle is skipped and the circuit goes *half-open*;
the cycle after that probes the device. A success closes the circuit, a failure opens it
again. The state of each device is in ``app.statistics().circuits`` and the status heartbeat.
"""

from __future__ import annotations

import enum

import attrs


class CircuitState(enum.Enum):
    CLOSED = "closed"
    OPEN = "open"
    HALF_OPEN = "half_open"


@attrs.frozen
class CircuitBreaker:
    """Opens after ``threshold`` failed cycles in a row (a whole number, at least 1).

    One object may serve many devices: each device keeps its own :class:`Circuit`.
    """

    threshold: int = 5

    def __attrs_post_init__(self) -> None:
        threshold = self.threshold
        if isinstance(threshold, bool) or not isinstance(threshold, int):
            raise TypeError(f"CircuitBreaker threshold must be a whole number, got {threshold!r}")
        if threshold < 1:
            raise ValueError(f"CircuitBreaker threshold must be at least 1, got {threshold}")


class Circuit:
    """One device's breaker state; outlives the device's restarts (the app owns it)."""

    def __init__(self, breaker: CircuitBreaker) -> None:
        self.threshold = breaker.threshold
        self.state = CircuitState.CLOSED
        self.failures = 0
        self.skipped = 0

    def allow(self) -> bool:
        """Whether the coming cycle runs; an open circuit skips it and goes half-open."""
        if self.state is CircuitState.OPEN:
            self.state = CircuitState.HALF_OPEN
            self.skipped += 1
            return False
        return True

    def succeeded(self) -> None:
        self.failures = 0
        self.state = CircuitState.CLOSED

    def failed(self) -> None:
        self.failures += 1
        if self.state is CircuitState.HALF_OPEN or self.failures >= self.threshold:
            self.state = CircuitState.OPEN
