"""What an app tells about its health: statistics, the status heartbeat, the periodic log line."""

from __future__ import annotations

import datetime
import json
import time

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


def heartbeat_body(stats: AppStatistics, version: str, uptime: float, devices: int) -> bytes:
    """The ``{p}/status`` heartbeat: uptime, version and device health, as compact JSON."""
    body: dict[str, object] = {
        "status": ONLINE,
        "version": version,
        "uptime": round(uptime, 1),
        "devices": devices,
        "failed": sorted(stats.failed),
        "restarts": sum(stats.restarts.values()),
        "crashes": sum(stats.crashes.values()),
        "watchdog_firings": stats.watchdog_firings,
    }
    if stats.persistence is not None:
        body["store"] = store_health(stats)
    open_circuits = sorted(name for name, state in stats.circuits.items() if state != "closed")
    if open_circuits:  # devices whose cycles a circuit breaker skips or probes
        body["circuit_open"] = open_circuits
    return json.dumps(body, separators=(",", ":")).encode()


def store_health(stats: AppStatistics) -> dict[str, object]:
    """The heartbeat's ``store`` object: ``outage_since`` (UTC, ISO 8601) while writes fail,
    else ``null``; ``pending``, the devices waiting for a write; ``lease_epoch`` with a lease."""
    assert stats.persistence is not None
    since = stats.persistence.outage_since
    health: dict[str, object] = {
        "outage_since": None
        if since is None
        else datetime.datetime.fromtimestamp(since, datetime.UTC).isoformat(timespec="seconds"),
        "pending": stats.persistence.pending_keys,
    }
    if stats.lease_epoch is not None:
        health["lease_epoch"] = stats.lease_epoch
    return health


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
