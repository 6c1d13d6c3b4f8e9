"""What a serve hears from its devices and tells its operator: the bookkeeping of a serve.

:class:`Bookkeeping` is the half of :class:`~triolette.runtime.running.RunningApp` that the
device actors call (their :class:`~triolette.actors.device.Hooks`: cycles, errors, recoveries,
skipped ticks, reactors at a boundary) and that reports what it counted: the statistics, each
device's health, the status heartbeat and the periodic statistics line. It starts nothing.
"""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING, Any

import trio

from triolette.actors.device import DeviceContext
from triolette.actors.mqtt import MqttActor
from triolette.actors.persistence import PersistenceActor
from triolette.actors.spec import DeviceSpec
from triolette.runtime.health import (
    AppStatistics,
    DeviceHealth,
    HeartbeatFacts,
    heartbeat_body,
    statistics_line,
)
from triolette.runtime.health_checks import HealthChecks
from triolette.runtime.lease_keeper import LeaseKeeper
from triolette.runtime.reports import Reports
from triolette.runtime.scheduling import Scheduling
from triolette.runtime.shared_state import react_at_boundary
from triolette.runtime.supervisor import Supervisor
from triolette.stores.devicestore import DeviceStore

if TYPE_CHECKING:
    from triolette.runtime.app import App

logger = logging.getLogger("triolette.app")


class Bookkeeping:
    """The counters and reports of one serve; :class:`RunningApp` owns the parts named here."""

    app: App
    specs: list[DeviceSpec]
    cycles: dict[str, int]
    skipped: dict[str, int]
    started_at: float
    health: DeviceHealth
    health_checks: HealthChecks
    reports: Reports
    supervisor: Supervisor
    scheduling: Scheduling
    persistence: PersistenceActor | None
    mqtt: MqttActor
    lease: LeaseKeeper | None
    _cycle_limit: int | None
    _cycle_event: trio.Event | None

    def shutdown(self) -> None:
        """Start the graceful shutdown: :meth:`RunningApp.shutdown` (the last cycle counted
        calls it when the app runs a given number of cycles)."""
        raise NotImplementedError

    # -- what the device actors tell (their Hooks) --------------------------------------------

    @property
    def cycles_limited(self) -> bool:
        return self._cycle_limit is not None

    def cycle_done(self, device: str) -> bool:
        self.health.cycle_done(device)
        count = self.cycles[device] = self.cycles[device] + 1
        if self._cycle_event is not None:  # only when someone waits: this runs every cycle
            self._cycle_event.set()
            self._cycle_event = None
        limit = self._cycle_limit
        if limit is None:
            return True
        if count == limit and all(done >= limit for done in self.cycles.values()):
            self.shutdown()
        return count < limit

    async def wait_for_cycles(self, cycles: int) -> None:
        while any(count < cycles for count in self.cycles.values()):
            if self._cycle_event is None:
                self._cycle_event = trio.Event()
            await self._cycle_event.wait()

    def report(self, device: str, error: BaseException) -> None:
        self.health.failed(device, error)
        self.reports.report(device, error)

    def rejected(self, device: str, error: BaseException) -> None:
        self.health.failed(device, error)
        self.reports.rejected(device, error)

    def recovered(self, device: str) -> None:
        self.health.recovered(device)
        self.reports.recovered(device)

    def stream_state(self, device: str, state: str, dropped: int) -> None:
        self.health.stream_state(device, state, dropped)

    def unsaved(self, device: str, error: BaseException) -> None:
        self.reports.unsaved_state(device, error)

    def ticks_skipped(self, device: str, count: int) -> None:
        self.skipped[device] = self.skipped.get(device, 0) + count

    @property
    def settings(self) -> Any:
        return self.app.settings

    async def boundary(self, ctx: DeviceContext, store: DeviceStore | None) -> None:
        """A handler boundary went well: run the reactors (errors propagate to the actor)."""
        if self.app.shared.reactors:
            await react_at_boundary(self.app.shared, ctx, store)

    # -- health -------------------------------------------------------------------------------

    def statistics(self) -> AppStatistics:
        supervisor = self.supervisor
        return AppStatistics(
            persistence=self.persistence.statistics() if self.persistence else None,
            mqtt=self.mqtt.statistics(),
            cycles=dict(self.cycles),
            restarts=dict(supervisor.restarts),
            errors_repeated=self.reports.errors_repeated,
            crashes=dict(supervisor.crashes),
            watchdog_firings=self.reports.watchdog_firings,
            skipped_ticks=dict(self.skipped),
            failed=dict(supervisor.failed),
            lease_epoch=self.lease.epoch if self.lease is not None else None,
            circuits=self.scheduling.circuit_states(),
            adapters=dict(self.health_checks.states),
            streams=dict(self.health.streams),
            streams_dropped=dict(self.health.streams_dropped),
        )

    def device_health(self) -> dict[str, dict[str, Any]]:
        """Each device's heartbeat entry: its status, and a telemetry device's streak."""
        names = [spec.name for spec in self.specs]
        return self.health.entries(
            names, failed=self.supervisor.failed, held=self.mqtt.availability.holds
        )

    def _heartbeat(self) -> bytes:
        uptime = trio.current_time() - self.started_at
        facts = HeartbeatFacts(self.statistics(), self.app.version, uptime, self.device_health())
        return heartbeat_body(facts)

    async def _log_statistics(
        self, *, task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED
    ) -> None:
        """Every ``log_statistics_every`` seconds, one INFO line an operator can grep for."""
        every = self.app.log_statistics_every
        assert every is not None
        task_status.started()
        while True:
            await trio.sleep(every)
            logger.info("%s", statistics_line(self.statistics()))
