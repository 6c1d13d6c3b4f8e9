"""The device supervisor: one actor per device in its nursery, crashed devices restarted.

A device actor that raises is restarted after its final snapshot is durable (or after
``flush_timeout``), with capped exponential backoff and jitter; the restarted actor loads that
snapshot through the persistence actor. A device handler that returns is done and stays down.
Telemetry and command handlers never crash their actor (their errors are reported), so this
applies to ``@app.device`` handlers and to failures around them (a store that cannot load).
Cancelling :attr:`Supervisor.scope` stops every device: that is the graceful shutdown.
"""

from __future__ import annotations

import logging
import random
from collections.abc import Awaitable, Callable, Sequence

import attrs
import trio

from triolette.actors.device import DEVICE, DeviceActor, DeviceSpec
from triolette.actors.metronome import Metronome

logger = logging.getLogger("triolette.supervisor")


@attrs.frozen(kw_only=True)
class Backoff:
    """Delay before restart number ``n`` (from 0): ``initial * factor**n``, capped, jittered.

    The count starts again after a device ran ``reset_after`` seconds without crashing.
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


class Supervisor:
    """Runs every spec's actor; restarts after crashes; knows when all device handlers returned."""

    def __init__(
        self,
        specs: Sequence[DeviceSpec],
        make_actor: Callable[[DeviceSpec], DeviceActor],
        *,
        flush: Callable[[str], Awaitable[None]],
        report: Callable[[str, BaseException], None],
        backoff: Backoff,
        all_returned: trio.Event,
        flush_timeout: float = 10.0,
        rng: random.Random | None = None,
    ) -> None:
        self.specs = specs
        self._make_actor = make_actor
        self._flush = flush
        self._report = report
        self.backoff = backoff
        self.flush_timeout = flush_timeout
        self._rng = rng or random.Random()
        self.scope = trio.CancelScope()
        self.restarts: dict[str, int] = {spec.name: 0 for spec in specs}
        self.all_returned = all_returned
        # Only device handlers return; telemetry and command loops run until stopped, so with
        # no device handler at all this is never set.
        self._running = sum(1 for spec in specs if spec.kind == DEVICE)

    async def run(self, metronomes: Sequence[Metronome] = ()) -> None:
        """Run until every device returned or :attr:`scope` is cancelled.

        The ``metronomes`` the telemetry devices follow start first, in the same nursery.
        """
        with self.scope:
            async with trio.open_nursery() as nursery:
                for metronome in metronomes:
                    await nursery.start(metronome.run)
                for spec in self.specs:
                    nursery.start_soon(self._supervise, spec, name=f"device:{spec.name}")

    async def _supervise(self, spec: DeviceSpec) -> None:
        crashes = 0
        while True:
            started = trio.current_time()
            try:
                await self._make_actor(spec).run()
            except Exception as error:
                await self._recover(spec, error)
            else:
                self._returned()
                return
            if trio.current_time() - started >= self.backoff.reset_after:
                crashes = 0
            delay = self.backoff.delay(crashes, self._rng)
            crashes += 1
            self.restarts[spec.name] += 1
            logger.warning("%s: restarting in %.2f s (restart %d)", spec.name, delay, crashes)
            await trio.sleep(delay)

    async def _recover(self, spec: DeviceSpec, error: Exception) -> None:
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

    def _returned(self) -> None:
        self._running -= 1
        if self._running == 0:
            self.all_returned.set()
