"""Signal filters for telemetry: ``Pt1Filter``, ``MedianFilter``, ``OneEuroFilter``.

Each takes one raw reading at a time: ``update(raw)`` returns the filtered value, ``value`` is
the latest one (``None`` before the first update) and ``reset()`` starts over. The first
update returns the raw reading unchanged (there is nothing to smooth it against yet).

A filter's memory can outlive the process: ``state()`` is a small JSON-safe dict,
``restore(state)`` takes it back, and ``bind(store, key)`` keeps it in a device's
:class:`~triolette.DeviceStore` (restored now, rewritten after every update and reset), so a
restart does not reset the smoothing. Only the memory is stored, not the parameters: a filter
restored with a new ``tau`` or window goes on from the old readings.
"""

from __future__ import annotations

import math
import statistics
from collections import deque
from collections.abc import MutableMapping
from typing import Any, Self

__all__ = ["MedianFilter", "OneEuroFilter", "Pt1Filter"]


class _Filter:
    """What the three filters share: the binding to a store and the checks of readings."""

    _store: MutableMapping[str, Any] | None = None
    _key = ""

    def state(self) -> dict[str, Any]:
        """The filter's memory as a JSON-safe dict (parameters not included)."""
        raise NotImplementedError

    def restore(self, state: dict[str, Any]) -> Self:
        """Take back the memory :meth:`state` returned; ``ValueError`` naming what is wrong."""
        raise NotImplementedError

    def reset(self) -> None:
        raise NotImplementedError

    def bind(self, store: MutableMapping[str, Any], key: str) -> Self:
        """Keep this filter's memory in ``store[key]`` (a DeviceStore, or any mapping).

        Restores it now if the store has it, and writes it after every update and reset
        (the device's persist policy decides when that reaches the backend).
        """
        saved = store.get(key)
        if saved is not None:
            try:
                self.restore(saved)
            except (TypeError, ValueError, KeyError) as error:
                raise ValueError(f"stored filter state {key!r} is not usable: {error}") from None
        self._store, self._key = store, key
        return self

    def _saved(self) -> None:
        if self._store is not None:
            self._store[self._key] = self.state()


def _reading(raw: object, what: str = "reading") -> float:
    if isinstance(raw, bool) or not isinstance(raw, int | float):
        raise TypeError(f"a filter {what} must be a number, got {raw!r}")
    if not math.isfinite(raw):
        raise ValueError(f"a filter {what} must be finite, got {raw!r}")
    return float(raw)


def _positive(value: object, name: str) -> float:
    number = _reading(value, name)
    if number <= 0:
        raise ValueError(f"{name} must be positive, got {value!r}")
    return number


def _optional(state: dict[str, Any], name: str) -> float | None:
    value = state[name]
    return None if value is None else _reading(value, f"state {name!r}")


class Pt1Filter(_Filter):
    """First-order low-pass: ``y = a*raw + (1-a)*y``, ``a = dt / (tau + dt)``.

    ``tau`` is the time constant and ``dt`` the time between readings, both in seconds, so
    the smoothing does not depend on the sample rate. ``ValueError``/``TypeError`` for a
    parameter that is not a positive number, or a reading that is not a finite number.
    """

    def __init__(self, tau: float, dt: float) -> None:
        self.tau = _positive(tau, "tau")
        self.dt = _positive(dt, "dt")
        self.alpha = self.dt / (self.tau + self.dt)
        self._value: float | None = None

    @property
    def value(self) -> float | None:
        return self._value

    def update(self, raw: float) -> float:
        x = _reading(raw)
        y = x if self._value is None else self.alpha * x + (1 - self.alpha) * self._value
        self._value = y
        self._saved()
        return y

    def reset(self) -> None:
        self._value = None
        self._saved()

    def state(self) -> dict[str, Any]:
        return {"value": self._value}

    def restore(self, state: dict[str, Any]) -> Self:
        self._value = _optional(state, "value")
        return self


class MedianFilter(_Filter):
    """The median of the last ``window`` readings (the mean of the middle two for an even
    count): rejects spikes shorter than half the window. ``window`` is a positive int."""

    def __init__(self, window: int) -> None:
        if isinstance(window, bool) or not isinstance(window, int):
            raise TypeError(f"window must be an int, got {window!r}")
        if window < 1:
            raise ValueError(f"window must be positive, got {window!r}")
        self.window = window
        self._readings: deque[float] = deque(maxlen=window)
        self._value: float | None = None

    @property
    def value(self) -> float | None:
        return self._value

    def update(self, raw: float) -> float:
        self._readings.append(_reading(raw))
        self._value = float(statistics.median(self._readings))
        self._saved()
        return self._value

    def reset(self) -> None:
        self._readings.clear()
        self._value = None
        self._saved()

    def state(self) -> dict[str, Any]:
        return {"readings": list(self._readings)}

    def restore(self, state: dict[str, Any]) -> Self:
        readings = [_reading(r, "state reading") for r in state["readings"]]
        self._readings = deque(readings, maxlen=self.window)
        self._value = float(statistics.median(self._readings)) if self._readings else None
        return self


class OneEuroFilter(_Filter):
    """The 1€ filter (Casiez, Roussel, Vogel, CHI 2012): a low-pass whose cutoff rises with
    the signal's speed, smoothing jitter at rest and following fast moves with little lag.

    For each reading ``x``, every ``dt`` seconds: the derivative ``dx = (x - y) / dt`` is
    smoothed with cutoff ``d_cutoff`` into ``dy``; then the cutoff is
    ``min_cutoff + beta * |dy|`` and ``y = a*x + (1-a)*y`` with ``a = 1 / (1 + tau/dt)``,
    ``tau = 1 / (2*pi*cutoff)``. Cutoffs are in Hz; ``beta=0`` is a plain low-pass.
    """

    def __init__(
        self, min_cutoff: float = 1.0, beta: float = 0.0, d_cutoff: float = 1.0, dt: float = 1.0
    ) -> None:
        self.min_cutoff = _positive(min_cutoff, "min_cutoff")
        self.beta = _reading(beta, "beta")
        if self.beta < 0:
            raise ValueError(f"beta must not be negative, got {beta!r}")
        self.d_cutoff = _positive(d_cutoff, "d_cutoff")
        self.dt = _positive(dt, "dt")
        self._value: float | None = None
        self._derivative = 0.0

    @property
    def value(self) -> float | None:
        return self._value

    def _alpha(self, cutoff: float) -> float:
        tau = 1.0 / (2 * math.pi * cutoff)
        return 1.0 / (1.0 + tau / self.dt)

    def update(self, raw: float) -> float:
        x = _reading(raw)
        if self._value is None:
            self._value, self._derivative = x, 0.0
        else:
            a_d = self._alpha(self.d_cutoff)
            dx = (x - self._value) / self.dt
            self._derivative = a_d * dx + (1 - a_d) * self._derivative
            a = self._alpha(self.min_cutoff + self.beta * abs(self._derivative))
            self._value = a * x + (1 - a) * self._value
        self._saved()
        return self._value

    def reset(self) -> None:
        self._value, self._derivative = None, 0.0
        self._saved()

    def state(self) -> dict[str, Any]:
        return {"value": self._value, "derivative": self._derivative}

    def restore(self, state: dict[str, Any]) -> Self:
        self._value = _optional(state, "value")
        self._derivative = _reading(state["derivative"], "state 'derivative'")
        return self
