"""Retry backoffs, the retry options, and the circuit breaker's states."""

from __future__ import annotations

import math
from typing import Any

import pytest

from triolette import CircuitBreaker, ExponentialBackoff, FixedBackoff, LinearBackoff
from triolette.core.breaker import Circuit, CircuitState
from triolette.core.retry import RetryPolicy


def within_jitter(delay: float, expected: float) -> bool:
    return expected * 0.8 <= delay <= expected * 1.2


def test_exponential_backoff_doubles_from_base_and_stops_at_max_delay() -> None:
    backoff = ExponentialBackoff(base=2, max_delay=60)
    for attempt, expected in [(1, 2), (2, 4), (3, 8), (4, 16), (5, 32)]:
        delays = [backoff.delay(attempt) for _ in range(50)]
        assert all(within_jitter(d, expected) for d in delays), (attempt, delays)
        assert len(set(delays)) > 1, "jittered"
    assert all(backoff.delay(n) <= 60 for n in (6, 7, 50, 5000)), "max_delay is a true bound"
    assert backoff.delay(5000) >= 48


def test_linear_and_fixed_backoffs() -> None:
    linear = LinearBackoff(step=3, max_delay=10)
    assert all(within_jitter(linear.delay(2), 6) for _ in range(50))
    assert all(8 <= linear.delay(9) <= 10 for _ in range(50))
    fixed = FixedBackoff(delay=5)
    assert all(within_jitter(fixed.delay(n), 5) for n in (1, 10, 100))
    assert FixedBackoff(0).delay(3) == 0


@pytest.mark.parametrize(
    ("make", "error"),
    [
        (lambda: ExponentialBackoff(base=0), ValueError),
        (lambda: ExponentialBackoff(max_delay=math.inf), ValueError),
        (lambda: LinearBackoff(step=-1), ValueError),
        (lambda: FixedBackoff(delay=-1), ValueError),
        (lambda: FixedBackoff(delay="5"), TypeError),  # type: ignore[arg-type]
        (lambda: LinearBackoff(step=True), TypeError),
    ],
)
def test_backoffs_refuse_bad_numbers(make: Any, error: type[Exception]) -> None:
    with pytest.raises(error, match="Backoff"):
        make()


def test_retry_defaults_to_oserror_and_exponential_backoff() -> None:
    policy = RetryPolicy.from_options(3, None, None)
    assert policy is not None
    assert policy.retries == 3
    assert policy.retry_on == (OSError,)
    assert policy.backoff == ExponentialBackoff(2, 60)
    assert issubclass(TimeoutError, policy.retry_on), "a timed-out attempt is retried"
    assert RetryPolicy.from_options(0, None, None) is None
    single = RetryPolicy.from_options(1, ConnectionError, FixedBackoff(1))
    assert single is not None
    assert single.retry_on == (ConnectionError,)


@pytest.mark.parametrize(
    ("options", "error", "match"),
    [
        ((-1, None, None), ValueError, "retry must not be negative"),
        ((1.5, None, None), TypeError, "whole number"),
        ((True, None, None), TypeError, "whole number"),
        ((2, (), None), ValueError, "retries nothing"),
        ((2, (OSError, int), None), TypeError, "exception classes"),
        ((2, ("OSError",), None), TypeError, "exception classes"),
        ((2, None, object()), TypeError, "no delay"),
        ((2, None, FixedBackoff), TypeError, "no delay"),
        ((0, (OSError,), None), ValueError, "only with retry"),
        ((0, None, FixedBackoff(1)), ValueError, "only with retry"),
    ],
)
def test_retry_options_are_checked(options: Any, error: type[Exception], match: str) -> None:
    with pytest.raises(error, match=match):
        RetryPolicy.from_options(*options)


def state(circuit: Circuit) -> CircuitState:
    """The state, read through a call so that a type checker does not narrow it."""
    return circuit.state


def test_circuit_opens_after_threshold_failures_skips_one_cycle_then_probes() -> None:
    circuit = Circuit(CircuitBreaker(threshold=2))
    assert circuit.allow()
    circuit.failed()
    assert state(circuit) is CircuitState.CLOSED
    assert circuit.allow()
    circuit.failed()
    assert state(circuit) is CircuitState.OPEN
    assert not circuit.allow(), "open: the next cycle is skipped"
    assert state(circuit) is CircuitState.HALF_OPEN
    assert circuit.allow(), "half-open: the cycle after probes"
    circuit.failed()
    assert state(circuit) is CircuitState.OPEN, "a failed probe opens it again"
    assert not circuit.allow()
    assert circuit.allow()
    circuit.succeeded()
    assert state(circuit) is CircuitState.CLOSED
    assert circuit.failures == 0
    assert circuit.skipped == 2


def test_a_success_resets_the_count_of_failures_in_a_row() -> None:
    circuit = Circuit(CircuitBreaker(threshold=2))
    circuit.failed()
    circuit.succeeded()
    circuit.failed()
    assert state(circuit) is CircuitState.CLOSED


@pytest.mark.parametrize(
    ("threshold", "error"), [(0, ValueError), (1.5, TypeError), (True, TypeError)]
)
def test_circuit_breaker_threshold_is_checked(threshold: Any, error: type[Exception]) -> None:
    with pytest.raises(error, match="CircuitBreaker threshold"):
        CircuitBreaker(threshold)
