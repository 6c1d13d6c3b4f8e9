"""The device supervisor: one actor per device in its nursery, crashed devices restarted.

A device actor that raises is restarted after its final snapshot is durable (or after
``flush_timeout``), with capped exponential backoff and jitter; the restarted actor loads that
snapshot through the persistence actor. Telemetry and command handlers never crash their actor
(their errors are reported), so this applies to ``@app.device`` handlers and to failures
around them (a store that cannot load).

Restart types, per device: *transient* (the default) is restarted after a crash, not after a
normal return; *permanent* is restarted after either; *temporary* never. Restarts of all
devices count in one sliding window (:class:`RestartLimit`); one too many escalates. A stop the
supervisor asks for (cancelling :attr:`Supervisor.scope`: the graceful shutdown) is never a
crash.
"""

from __future__ import annotations

import logging
import random
from collections import deque
from collections.abc import Awaitable, Callable, Sequence

import attrs
import trio

from triolette.actors.device import DeviceActor
from triolette.actors.spec import DeviceSpec
from triolette.core.backoff import Backoff
from triolette.core.errors import RestartLimitError
from triolette.core.kinds import ESCALATIONS, DeviceKind, Escalate

logger = logging.getLogger("triolette.supervisor")

Companion = Callable[..., Awaitable[None]]
"""A task started with ``nursery.start``: it takes ``task_status`` and runs until cancelled."""


@attrs.frozen(kw_only=True)
class RestartLimit:
    """At most ``restarts`` restarts, of all devices together, within any ``seconds`` seconds.

    One more is an escalation: with ``escalate="app"`` (the default) the app shuts down
    gracefully (every store flushed) and ``serve()`` raises
    :class:`~triolette.RestartLimitError` naming the device; with ``escalate="device"`` only
    that device stops, reported failed, and the others go on.
    """

    restarts: int = attrs.field(default=6, validator=attrs.validators.ge(0))
    seconds: float = attrs.field(default=60.0, converter=float, validator=attrs.validators.gt(0))
    escalate: Escalate = attrs.field(default="app", validator=attrs.validators.in_(ESCALATIONS))


class Supervisor:
    """Runs every spec's actor; restarts after crashes; knows when all device handlers returned."""

    def __init__(
        self,
        specs: Sequence[DeviceSpec],
        make_actor: Callable[[DeviceSpec], DeviceActor],
        *,
        flush: Callable[[str], Awaitable[None]],
        report: Callable[[str, BaseException], None],
        recovered: Callable[[str], None],
        backoff: Backoff,
        all_returned: trio.Event,
        limit: RestartLimit,
        flush_timeout: float = 10.0,
        rng: random.Random | None = None,
    ) -> None:
        self.specs = specs
        self._make_actor = make_actor
        self._flush = flush
        self._report = report
        self._recovered = recovered
        self.backoff = backoff
        self.flush_timeout = flush_timeout
        self._rng = rng or random.Random()
        self.scope = trio.CancelScope()
        self.active: set[str] = set()
        """Devices whose task is still running (a stuck one stays here after a stop)."""
        self.restarts: dict[str, int] = {spec.name: 0 for spec in specs}
        self.crashes: dict[str, int] = {spec.name: 0 for spec in specs}
        self.limit = limit
        self._window: deque[float] = deque()
        self.failed: dict[str, str] = {}
        """Devices stopped for good (temporary, or past the restart limit), with why."""
        self.escalation: RestartLimitError | None = None
        """Set when the restart limit stopped the app."""
        self.all_returned = all_returned
        # Only device handlers return; telemetry and command loops run until stopped, so with
        # no device handler at all this is never set.
        self._running = sum(1 for spec in specs if spec.kind is DeviceKind.DEVICE)

    async def run(self, companions: Sequence[Companion] = ()) -> None:
        """Run until every device returned or :attr:`scope` is cancelled.

        ``companions`` are tasks that live exactly as long as the devices (the metronomes they
        follow, the statistics log); each starts, in order, before any device.
        """
        with self.scope:
            async with trio.open_nursery() as nursery:
                for companion in companions:
                    await nursery.start(companion)
                for spec in self.specs:
                    nursery.start_soon(self._supervise, spec, name=f"device:{spec.name}")

    async def _supervise(self, spec: DeviceSpec) -> None:
        crashes = 0
        self.active.add(spec.name)
        try:
            while True:
                started = trio.current_time()
                crash: Exception | None = None
                try:
                    await self._make_actor(spec).run()
                except Exception as error:
                    crash = error
                if trio.current_time() - started >= self.backoff.reset_after:
                    crashes = 0
                    self._recovered(spec.name)  # a stable run: its next crash is news again
                if crash is not None:
                    await self._recover(spec, crash)
                    if spec.restart == "temporary":
                        self._give_up(spec, crash, "a temporary device is not restarted")
                        return
                elif spec.restart != "permanent":
                    return  # a normal end: the device is done
                if not self._may_restart(spec, crash):
                    return
                delay = self.backoff.delay(crashes, self._rng)
                crashes += 1
                self.restarts[spec.name] += 1
                logger.warning("%s: restarting in %.2f s (restart %d)", spec.name, delay, crashes)
                await trio.sleep(delay)
        finally:
            self.active.discard(spec.name)
            self._ended(spec)

    def _may_restart(self, spec: DeviceSpec, error: Exception | None) -> bool:
        """Count a restart in the sliding window; past the limit, escalate and say no."""
        limit = self.limit
        now = trio.current_time()
        window = self._window
        while window and window[0] <= now - limit.seconds:
            window.popleft()
        if len(window) < limit.restarts:
            window.append(now)
            return True
        exceeded = RestartLimitError(spec.name, limit.restarts, limit.seconds)
        exceeded.__cause__ = error
        if limit.escalate == "device":
            self._give_up(spec, exceeded, "stopped; the other devices go on")
        else:
            logger.critical("%s; stopping the app", exceeded)
            self.escalation = exceeded
            self.scope.cancel()
        return False

    def _give_up(self, spec: DeviceSpec, error: Exception, what: str) -> None:
        self.failed[spec.name] = str(error)
        logger.error("%s: %s (%s)", spec.name, what, error)

    async def _recover(self, spec: DeviceSpec, error: Exception) -> None:
        self.crashes[spec.name] += 1
        self._report(spec.name, error)
        if spec.uses_store:
            with trio.move_on_after(self.flush_timeout) as waited:
                await self._flush(spec.name)
            if waited.cancelled_caught:
                logger.error(
                    "%s: state not durable after %s s; restarting anyway",
                    spec.name,
                    self.flush_timeout,
                )

    def _ended(self, spec: DeviceSpec) -> None:
        if spec.kind is DeviceKind.DEVICE:
            self._running -= 1
            if self._running == 0:
                self.all_returned.set()
