"""Telemetry cycles run on demand: a message on ``{prefix}/{device}/set`` or ``app.trigger()``.

A :class:`Trigger` holds at most one pending request: requests that arrive while one is
pending coalesce, the last payload wins. The telemetry loop waits for its next tick *or* a
ready request (:meth:`Trigger.wait`); a triggered cycle leaves the tick schedule as it was,
so the next scheduled cycle still comes on the drift-free grid. ``min_interval`` throttles
triggered cycles only: a request inside the window waits until it reopens (the requests of
the window collapse into that one run), and scheduled cycles are never held back.
"""

from __future__ import annotations

import json
import math
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any, Literal, Protocol

import attrs
import trio

if TYPE_CHECKING:
    from .device import DeviceContext

TriggerSource = Literal["scheduled", "mqtt", "local"]


@attrs.frozen
class TriggerPayload:
    """Why this telemetry cycle runs; inject it with ``trigger: TriggerPayload``.

    ``source`` is ``"scheduled"``, ``"mqtt"`` or ``"local"``; ``raw`` the payload as sent
    (``""`` on a scheduled cycle); ``data`` the payload parsed as a JSON object, or ``None``
    (scheduled, not JSON, or JSON that is not an object). A blank payload counts as ``{}``.
    """

    source: TriggerSource = "scheduled"
    raw: str = ""
    data: Mapping[str, Any] | None = attrs.field(default=None, eq=False)

    @classmethod
    def of(cls, source: TriggerSource, raw: str | bytes) -> TriggerPayload:
        text = raw.decode("utf-8", "replace") if isinstance(raw, bytes) else raw
        data: Any = {}
        if text.strip():
            try:
                data = json.loads(text)
            except ValueError:
                data = None
        return cls(source, text, data if isinstance(data, dict) else None)

    @property
    def is_triggered(self) -> bool:
        return self.source != "scheduled"

    def get(self, key: str, default: Any = None) -> Any:
        """``data[key]``, or ``default`` when there is no such key (or no JSON object)."""
        return default if self.data is None else self.data.get(key, default)


SCHEDULED = TriggerPayload()


class Ticks(Protocol):
    """A telemetry schedule: a metronome, or a device's cron ticks."""

    @property
    def fired(self) -> int: ...

    async def next_tick(self, after: int) -> int: ...


class Trigger:
    """The pending trigger request of one telemetry device; the app owns it across restarts.

    :meth:`fire` may be called from any task of the app's trio run (not from other threads:
    the app hops them onto the run first).
    """

    def __init__(self, min_interval: float | None = None) -> None:
        self.min_interval = min_interval
        self.pending: TriggerPayload | None = None
        self._last_run = -math.inf
        self._waiting: trio.CancelScope | None = None

    def fire(self, payload: TriggerPayload) -> None:
        """Request a cycle with ``payload`` (replacing one still pending)."""
        self.pending = payload
        if self._waiting is not None:
            self._waiting.cancel()

    def _ready_at(self) -> float:
        if self.min_interval is None:
            return -math.inf
        return self._last_run + self.min_interval

    async def wait(self, ticks: Ticks, after: int) -> tuple[int, TriggerPayload]:
        """Wait for the tick after ``after`` or a ready request, whichever comes first.

        Returns the tick number (``after`` itself when a request came first) and the payload
        of the cycle to run. Cancellable.
        """
        while True:
            if self.pending is not None and trio.current_time() >= self._ready_at():
                payload, self.pending = self.pending, None
                self._last_run = trio.current_time()
                await trio.lowlevel.checkpoint()
                return after, payload
            with trio.CancelScope() as scope:
                if self.pending is not None:
                    scope.deadline = self._ready_at()  # throttled: until the window reopens
                self._waiting = scope
                try:
                    return await ticks.next_tick(after), SCHEDULED
                finally:
                    self._waiting = None


def payload_of(ctx: DeviceContext, store: object, message: object) -> TriggerPayload:
    """The payload of the cycle now running (the injection of ``TriggerPayload``)."""
    return getattr(ctx._actor, "trigger_payload", SCHEDULED)
