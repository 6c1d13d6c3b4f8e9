"""Error reports and the heartbeat carry the fields cosalette bridges read."""

from __future__ import annotations

import json
import logging
import uuid
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
import trio

from tests.helpers import ERROR_ID
from triolette import App, PahoTransport, RegistrationError
from triolette.core.messages import Message
from triolette.runtime import health
from triolette.runtime import reports as error_reports
from triolette.runtime.health import AppStatistics, DeviceHealth, HeartbeatFacts, heartbeat_body
from triolette.testing import AppHarness
from triolette.testing.mosquitto import Mosquitto
from triolette.testing.plugin import ObserverFactory


class SensorFault(ValueError):
    pass


class LooseWire(SensorFault):
    """A subclass: the map matches exact classes only."""


def failing_harness(*errors: Exception, **options: Any) -> AppHarness:
    harness = AppHarness.create(**options)
    left = list(errors)

    @harness.app.telemetry("probe", interval=600)
    async def probe() -> dict[str, int]:
        raise left.pop(0) if len(left) > 1 else left[0]

    return harness


async def test_a_report_has_every_field_and_its_id_is_in_the_log_line(autojump_clock, caplog):
    harness = failing_harness(
        SensorFault("probe unplugged"),
        LooseWire("wire loose"),
        error_type_map={SensorFault: "sensor_fault"},
    )
    await harness.run(cycles=2)
    first, second = harness.errors("probe")
    assert harness.errors() == [first, second]  # the app's error topic has the same
    assert first == {
        "type": "SensorFault",
        "error_type": "sensor_fault",
        "message": "probe unplugged",
        "device": "probe",
        "timestamp": first["timestamp"],
        "id": first["id"],
        "details": {},
    }
    assert datetime.fromisoformat(first["timestamp"]).utcoffset() is not None
    assert (second["type"], second["error_type"]) == ("LooseWire", "error")  # exact class
    lines = [r.getMessage() for r in caplog.records if r.levelno == logging.ERROR]
    ids = [match.group(1) for line in lines if (match := ERROR_ID.search(line))]
    assert ids == [first["id"], second["id"]]
    assert first["id"] != second["id"]


async def test_the_message_can_be_the_class_name_only(autojump_clock):
    harness = failing_harness(SensorFault("token=s3cret"), publish_error_messages=False)
    await harness.run()
    [report] = harness.errors("probe")
    assert (report["type"], report["message"]) == ("SensorFault", "SensorFault")


async def test_an_error_that_keeps_repeating_is_published_again_as_a_reminder(autojump_clock):
    harness = failing_harness(SensorFault("unplugged"), error_reminder_every=3600)
    await harness.run(duration=7300)  # cycles at 0, 600, ... 7200: 13 failures
    reports = harness.errors("probe")
    assert [r["details"].get("count") for r in reports] == [None, 7, 13]
    first_seen = {r["details"]["first_seen"] for r in reports[1:]}
    assert first_seen == {reports[0]["timestamp"]}
    assert harness.app.statistics().errors_repeated == 12


async def test_a_streaks_first_seen_is_its_first_reports_timestamp(autojump_clock, monkeypatch):
    class Ticking(datetime):  # every reading of the wall clock is a millisecond later
        ticks = 0

        @classmethod
        def now(cls, tz: Any = None) -> Ticking:
            cls.ticks += 1
            return cls(2026, 1, 1, tzinfo=UTC) + timedelta(milliseconds=cls.ticks)

    monkeypatch.setattr(error_reports, "datetime", Ticking)
    harness = failing_harness(SensorFault("unplugged"), error_reminder_every=600)
    await harness.run(duration=700)
    first, reminder = harness.errors("probe")
    assert reminder["details"]["first_seen"] == first["timestamp"]


async def test_no_reminders_when_they_are_off(autojump_clock):
    harness = failing_harness(SensorFault("unplugged"), error_reminder_every=None)
    await harness.run(duration=7300)
    assert len(harness.errors("probe")) == 1


@pytest.mark.parametrize(
    ("mapping", "match"),
    [
        ({"ValueError": "x"}, "key 'ValueError' is not an Exception subclass"),
        ({KeyboardInterrupt: "x"}, "is not an Exception subclass"),
        ({ValueError: 3}, "the label of ValueError must be a non-empty str, got 3"),
        ({ValueError: " "}, "the label of ValueError must be a non-empty str"),
        ([(ValueError, "x")], "error_type_map must map exception classes to labels"),
    ],
)
def test_a_bad_error_type_map_is_refused_naming_the_offender(mapping: Any, match: str):
    with pytest.raises(RegistrationError, match=match):
        App("bridge", error_type_map=mapping)


# -- the heartbeat ------------------------------------------------------------------------------


def _stats(**changes: Any) -> AppStatistics:
    fields: dict[str, Any] = {
        "persistence": None,
        "mqtt": None,
        "cycles": {},
        "restarts": {"a": 1},
        "errors_repeated": 0,
        "skipped_ticks": {},
        "failed": {},
        "crashes": {"a": 2},
        "watchdog_firings": 0,
    }
    return AppStatistics(**{**fields, **changes})


def test_the_heartbeat_has_cosalettes_fields_and_triolettes():
    devices = {"a": {"status": "ok"}}
    body = json.loads(heartbeat_body(HeartbeatFacts(_stats(), "1.2.0", 3725.46, devices)))
    assert body == {
        "status": "online",
        "uptime_s": 3725,
        "version": "1.2.0",
        "devices": devices,
        "uptime": 3725.5,
        "device_count": 1,
        "failed": [],
        "restarts": 1,
        "crashes": 2,
        "watchdog_firings": 0,
    }
    with_adapters = _stats(adapters={"GasMeter": "ok"}, streams={"radio": "ok"})
    body = json.loads(heartbeat_body(HeartbeatFacts(with_adapters, "1", 0, {})))
    assert (body["adapters"], body["streams_dropped"]) == ({"GasMeter": "ok"}, {})


def test_a_heartbeat_part_adds_its_fields(monkeypatch: pytest.MonkeyPatch):
    parts = [*health.HEARTBEAT_PARTS, lambda facts: {"store": "reachable"}]
    monkeypatch.setattr(health, "HEARTBEAT_PARTS", parts)
    body = json.loads(heartbeat_body(HeartbeatFacts(_stats(), "1", 0, {})))
    assert body["store"] == "reachable"


async def test_a_telemetry_streak_counts_failures_until_a_success():
    tracker = DeviceHealth(["probe"])
    fresh = tracker.entry("probe", failed=False, stale=False, unavailable=False)
    assert fresh == {
        "status": "ok",
        "last_success_at": None,
        "consecutive_failures": 0,
        "last_error": None,
        "failing_since": None,
    }
    for _ in range(2):
        tracker.failed("probe", OSError("bus error"))
        tracker.cycle_done("probe")
    failing = tracker.entry("probe", failed=False, stale=False, unavailable=True)
    assert (failing["status"], failing["consecutive_failures"]) == ("error", 2)
    assert failing["last_error"] == "OSError"
    assert datetime.fromisoformat(failing["failing_since"]).utcoffset() is not None
    tracker.cycle_done("probe")
    back = tracker.entry("probe", failed=False, stale=False, unavailable=False)
    assert (back["status"], back["consecutive_failures"], back["failing_since"]) == ("ok", 0, None)
    assert back["last_success_at"] is not None
    assert tracker.entry("probe", failed=True, stale=False, unavailable=False)["status"] == "error"
    assert tracker.entry("probe", failed=True, stale=True, unavailable=False)["status"] == "stale"


async def test_the_heartbeat_of_a_running_app_shows_each_device(autojump_clock):
    harness = failing_harness(OSError("bus error"))

    @harness.app.command("valve")
    async def valve(payload: str) -> None:
        pass

    async with harness.serving():
        await trio.sleep(1)
        running = harness.app.running
        assert running is not None
        devices = json.loads(running._heartbeat())["devices"]
    assert devices["valve"] == {"status": "ok"}
    assert (devices["probe"]["status"], devices["probe"]["last_error"]) == ("error", "OSError")


# -- on a real broker -------------------------------------------------------------------------


class Meter:
    async def health_check(self) -> bool:
        return False


async def test_a_real_broker_gets_the_heartbeat_fields_and_a_labelled_error(
    mosquitto: Mosquitto, mqtt_observer_factory: ObserverFactory
) -> None:
    prefix = f"bridge-{uuid.uuid4().hex[:8]}"
    transport = PahoTransport(mosquitto.host, mosquitto.port, client_id=prefix, keepalive=5)
    app = App(
        prefix,
        "2.0.0",
        transport=transport,
        heartbeat_every=0.2,
        log_statistics_every=None,
        error_type_map={SensorFault: "sensor_fault"},
    )
    app.adapter(Meter, Meter)

    @app.telemetry("probe", interval=0.05)
    async def probe(meter: Meter) -> None:
        raise SensorFault("unplugged")

    observer = mqtt_observer_factory(mosquitto, [f"{prefix}/#"], start=False)
    await trio.to_thread.run_sync(observer.start)

    def heartbeats(messages: list[Message]) -> list[Any]:
        status = [m for m in messages if m.topic == f"{prefix}/status"]
        return [json.loads(m.payload) for m in status if m.payload.startswith(b"{")]

    async with trio.open_nursery() as nursery:
        await nursery.start(app.serve)
        await observer.until(lambda messages: len(heartbeats(messages)) >= 2)
        app.shutdown()

    beat = heartbeats(observer.messages)[-1]
    assert (beat["status"], beat["version"], beat["adapters"]) == (
        "online",
        "2.0.0",
        {"Meter": "unhealthy"},
    )
    assert isinstance(beat["uptime_s"], int)
    assert beat["devices"]["probe"]["status"] == "error"  # failing outranks held offline
    assert beat["devices"]["probe"]["consecutive_failures"] >= 1
    assert beat["devices"]["probe"]["last_error"] == "SensorFault"
    assert observer.payloads(f"{prefix}/probe/availability") == ["offline"]  # never online
    [report] = observer.payloads(f"{prefix}/probe/error")
    assert report == {
        "type": "SensorFault",
        "error_type": "sensor_fault",
        "message": "unplugged",
        "device": "probe",
        "timestamp": report["timestamp"],
        "id": report["id"],
        "details": {},
    }
    assert ERROR_ID.fullmatch(f" [error id {report['id']}]")
