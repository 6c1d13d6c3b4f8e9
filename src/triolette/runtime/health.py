"""What an app tells about its health: statistics, the status heartbeat, the periodic log line."""

from __future__ import annotations

import json
import time
from collections.abc import Callable, Collection, Container, Iterable, Mapping
from datetime import UTC, datetime
from typing import Any

import attrs

from triolette.actors.mqtt import MqttStatistics
from triolette.actors.persistence import PersistenceStatistics
from triolette.core.topics import ONLINE


@attrs.frozen
class AppStatistics:
    """Counters of a running (or finished) app, for logs, tests and benchmarks."""

    persistence: PersistenceStatistics | None
    mqtt: MqttStatistics | None
    cycles: dict[str, int]
    restarts: dict[str, int]
    errors_repeated: int
    """Error reports that repeated the previous one of their device (counted, not published)."""
    skipped_ticks: dict[str, int]
    """Telemetry ticks each device missed because a cycle overran (skipped, not run late)."""
    failed: dict[str, str]
    """Devices stopped for good (temporary ones that crashed, or past the restart limit)."""
    crashes: dict[str, int]
    """Crashes of each device's actor (each followed by a restart unless it was given up)."""
    watchdog_firings: int
    """Cycles and commands cancelled at their ``timeout``, and missed heartbeats."""
    lease_epoch: int | None = None
    """The epoch of the lease held on the devices in a shared store; else ``None``."""
    circuits: dict[str, str] = attrs.field(factory=dict)
    """The circuit breaker state of each device that has one: closed, open or half_open."""
    adapters: dict[str, str] = attrs.field(factory=dict)
    """Each health-checked adapter's state: ``"ok"`` or ``"unhealthy"``."""
    streams: dict[str, str] = attrs.field(factory=dict)
    """Each stream's state: ``"ok"``, ``"stale"`` or ``"overflowing"``."""
    streams_dropped: dict[str, int] = attrs.field(factory=dict)
    """Items each stream dropped because its buffer was full."""


@attrs.frozen
class HeartbeatFacts:
    """What one heartbeat tells: each :data:`HEARTBEAT_PARTS` function reads what it needs."""

    stats: AppStatistics
    version: str
    uptime: float
    devices: Mapping[str, Mapping[str, Any]]
    """Per device: ``{"status": ...}`` plus, for telemetry, its streak of failures."""


def _cosalette_part(facts: HeartbeatFacts) -> dict[str, Any]:
    """The fields a cosalette heartbeat has (its consumers read these)."""
    return {
        "status": ONLINE,
        "uptime_s": int(facts.uptime),
        "version": facts.version,
        "devices": facts.devices,
    }


def _supervision_part(facts: HeartbeatFacts) -> dict[str, Any]:
    stats = facts.stats
    return {
        "uptime": round(facts.uptime, 1),
        "device_count": len(facts.devices),
        "failed": sorted(stats.failed),
        "restarts": sum(stats.restarts.values()),
        "crashes": sum(stats.crashes.values()),
        "watchdog_firings": stats.watchdog_firings,
    }


def _adapters_part(facts: HeartbeatFacts) -> dict[str, Any]:
    return {"adapters": dict(facts.stats.adapters)} if facts.stats.adapters else {}


def _streams_part(facts: HeartbeatFacts) -> dict[str, Any]:
    return {"streams_dropped": dict(facts.stats.streams_dropped)} if facts.stats.streams else {}


def _store_part(facts: HeartbeatFacts) -> dict[str, Any]:
    """The ``store`` object, with a store: ``outage_since`` (UTC, ISO 8601) while writes
    fail, else ``null``; ``pending``, the devices waiting for a write; ``lease_epoch`` while
    the app holds a lease on its devices in a shared store."""
    stats = facts.stats
    if stats.persistence is None:
        return {}
    since = stats.persistence.outage_since
    health: dict[str, Any] = {
        "outage_since": None
        if since is None
        else datetime.fromtimestamp(since, UTC).isoformat(timespec="seconds"),
        "pending": stats.persistence.pending_keys,
    }
    if stats.lease_epoch is not None:
        health["lease_epoch"] = stats.lease_epoch
    return {"store": health}


def _circuits_part(facts: HeartbeatFacts) -> dict[str, Any]:
    """The devices whose cycles a circuit breaker skips or probes, while there are some."""
    circuits = facts.stats.circuits
    open_circuits = sorted(name for name, state in circuits.items() if state != "closed")
    return {"circuit_open": open_circuits} if open_circuits else {}


HEARTBEAT_PARTS: list[Callable[[HeartbeatFacts], dict[str, Any]]] = [
    _cosalette_part,
    _supervision_part,
    _adapters_part,
    _streams_part,
    _store_part,
    _circuits_part,
]
"""The heartbeat's fields, part by part, in order; a new field is a new part."""


def heartbeat_body(facts: HeartbeatFacts) -> bytes:
    """The ``{p}/status`` heartbeat: every part of :data:`HEARTBEAT_PARTS`, as compact JSON."""
    body: dict[str, Any] = {}
    for part in HEARTBEAT_PARTS:
        body.update(part(facts))
    return json.dumps(body, separators=(",", ":")).encode()


@attrs.define
class _Streak:
    last_success_at: str | None = None
    consecutive_failures: int = 0
    last_error: str | None = None
    failing_since: str | None = None


class DeviceHealth:
    """Each device's status for the heartbeat, and each telemetry device's failure streak.

    Status, the first that applies: ``stale`` (a stream with no item within its bound),
    ``error`` (stopped for good, or its last cycle, command or run failed), ``unavailable``
    (held offline: an unhealthy adapter, a stale stream it is fed by), ``ok``.
    """

    def __init__(self, telemetry: Iterable[str]) -> None:
        self._streaks = {name: _Streak() for name in telemetry}
        self._erred: set[str] = set()
        self._cycle_failed: set[str] = set()
        self.streams: dict[str, str] = {}
        """Each stream's state: ``ok``, ``overflowing`` or ``stale``."""
        self.streams_dropped: dict[str, int] = {}

    def stream_state(self, stream: str, state: str, dropped: int) -> None:
        self.streams[stream] = state
        self.streams_dropped[stream] = dropped

    def failed(self, device: str, error: BaseException) -> None:
        self._erred.add(device)
        streak = self._streaks.get(device)
        if streak is not None:
            self._cycle_failed.add(device)
            streak.last_error = type(error).__name__

    def recovered(self, device: str) -> None:
        self._erred.discard(device)

    def cycle_done(self, device: str) -> None:
        """A telemetry cycle ended: a success unless it failed since the last one ended."""
        streak = self._streaks[device]
        now = _now()
        if device in self._cycle_failed:
            self._cycle_failed.discard(device)
            if streak.consecutive_failures == 0:
                streak.failing_since = now
            streak.consecutive_failures += 1
        else:
            streak.last_success_at = now
            streak.consecutive_failures = 0
            streak.failing_since = None
            self._erred.discard(device)

    def entry(self, device: str, *, failed: bool, stale: bool, unavailable: bool) -> dict[str, Any]:
        """The heartbeat's entry for ``device``."""
        if stale:
            status = "stale"
        elif failed or device in self._erred:
            status = "error"
        else:
            status = "unavailable" if unavailable else "ok"
        streak = self._streaks.get(device)
        return {"status": status, **(attrs.asdict(streak) if streak is not None else {})}

    def entries(
        self,
        devices: Iterable[str],
        *,
        failed: Container[str],
        held: Callable[[str], Collection[str]],
    ) -> dict[str, dict[str, Any]]:
        """The heartbeat's ``devices`` map: :meth:`entry` of each of ``devices``; ``held``
        tells what holds a device offline."""
        return {
            device: self.entry(
                device,
                failed=device in failed,
                stale=self.streams.get(device) == "stale",
                unavailable=bool(held(device)),
            )
            for device in devices
        }


def _now() -> str:
    return datetime.now(UTC).isoformat(timespec="milliseconds")


def statistics_line(stats: AppStatistics) -> str:
    """One ``statistics: key=value ...`` line an operator can grep for."""
    parts = [
        f"cycles={sum(stats.cycles.values())}",
        f"crashes={sum(stats.crashes.values())}",
        f"restarts={sum(stats.restarts.values())}",
        f"watchdog={stats.watchdog_firings}",
        f"failed={','.join(stats.failed) or '-'}",
    ]
    if stats.persistence is not None:
        p = stats.persistence
        parts += [
            f"pending={p.pending_keys}",
            f"mailbox={p.mailbox_depth}/{p.mailbox_peak}",
            f"batches={p.batches}",
            f"store_failures={p.failures}",
        ]
        if p.outage_since is not None:
            parts.append(f"store_outage={time.time() - p.outage_since:.0f}s")
    if stats.mqtt is not None:
        mqtt = stats.mqtt
        parts.append(f"outbox={mqtt.outbox_depth}/{mqtt.outbox_peak}")
        parts += [f"unconfirmed={mqtt.unconfirmed}", f"stalls={mqtt.stalls}"]
    return "statistics: " + " ".join(parts)
