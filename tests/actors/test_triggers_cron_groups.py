"""Triggered telemetry (MQTT and local), cron schedules, and coalescing groups."""

from __future__ import annotations

import itertools
import time
from collections.abc import Iterator
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
import trio
import trio.testing

from triolette import (
    App,
    CronSchedule,
    EntityNotifier,
    RegistrationError,
    TriggerPayload,
    UnknownDeviceError,
)
from triolette.actors import cron_ticks
from triolette.testing import AppHarness

# -- triggers ---------------------------------------------------------------------------------


async def test_an_mqtt_message_runs_a_cycle_now_and_the_schedule_stays_on_its_grid(
    autojump_clock,
):
    harness = AppHarness.create()
    seen: list[tuple[float, str, Any, str]] = []

    @harness.app.telemetry("meter", interval=100, triggerable=True)
    async def meter(trigger: TriggerPayload) -> dict[str, int]:
        seen.append((round(trio.current_time()), trigger.source, trigger.data, trigger.raw))
        assert trigger.is_triggered == (trigger.source != "scheduled")
        return {"n": len(seen)}

    async with harness.serving():
        await trio.sleep(30)
        await harness.command("meter", '{"force": true}')
        await trio.sleep(45)
        await harness.command("meter", "not json")
        await trio.sleep(150)
    assert seen == [
        (0, "scheduled", None, ""),
        (30, "mqtt", {"force": True}, '{"force": true}'),
        (75, "mqtt", None, "not json"),
        (100, "scheduled", None, ""),  # on the grid: not 30 + 100
        (200, "scheduled", None, ""),
    ]
    assert harness.state("meter") == {"n": 5}


def test_the_trigger_payload_parses_json_objects_only() -> None:
    assert TriggerPayload.of("mqtt", b"").data == {}
    assert TriggerPayload.of("mqtt", "  ").get("x", 1) == 1
    assert TriggerPayload.of("mqtt", "[1, 2]").data is None
    assert TriggerPayload.of("local", '{"x": 2}').get("x") == 2
    scheduled = TriggerPayload()
    assert (scheduled.source, scheduled.raw, scheduled.data, scheduled.is_triggered) == (
        "scheduled",
        "",
        None,
        False,
    )


async def test_triggers_arriving_while_a_cycle_runs_coalesce_and_the_last_payload_wins(
    autojump_clock,
):
    harness = AppHarness.create()
    seen: list[tuple[int, str]] = []
    busy = trio.Event()

    @harness.app.telemetry("meter", interval=1000, triggerable="local")
    async def meter(trigger: TriggerPayload) -> None:
        seen.append((round(trio.current_time()), trigger.raw))
        if trigger.is_triggered and len(seen) == 2:
            busy.set()
            await trio.sleep(10)

    async with harness.serving():
        await trio.testing.wait_all_tasks_blocked()
        harness.app.trigger("meter", "first")
        await busy.wait()
        for payload in ("a", "b", "c"):
            harness.app.trigger("meter", payload)
        await trio.sleep(50)
    assert seen == [(0, ""), (0, "first"), (10, "c")]


async def test_min_interval_throttles_triggered_cycles_only(autojump_clock):
    harness = AppHarness.create()
    seen: list[tuple[int, str]] = []

    @harness.app.telemetry("meter", interval=100, triggerable="both", min_interval=60)
    async def meter(trigger: TriggerPayload) -> None:
        seen.append((round(trio.current_time()), trigger.raw or trigger.source))

    async with harness.serving():
        await trio.sleep(5)
        harness.app.trigger("meter", "t5")  # the first after a quiet window: at once
        await trio.sleep(10)
        harness.app.trigger("meter", "t15")
        await trio.sleep(10)
        await harness.command("meter", "t25")  # collapses with t15: runs at 65
        await trio.sleep(100)
    assert seen == [(0, "scheduled"), (5, "t5"), (65, "t25"), (100, "scheduled")]


async def test_app_trigger_from_another_thread_and_through_a_notifier(autojump_clock):
    harness = AppHarness.create()
    seen: list[tuple[str, str]] = []
    ran = trio.Event()

    @harness.app.telemetry("meter", interval=10_000, triggerable="local")
    async def meter(trigger: TriggerPayload) -> None:
        seen.append((trigger.source, trigger.raw))
        if trigger.is_triggered:
            ran.set()

    notify = EntityNotifier(harness.app, "meter")
    async with harness.serving():
        await trio.to_thread.run_sync(notify, "from a thread")
        await ran.wait()
    assert seen == [("scheduled", ""), ("local", "from a thread")]
    assert repr(notify) == "EntityNotifier('testapp', 'meter')"
    harness.app.trigger("meter", "after the serve")  # dropped, not an error


async def test_trigger_refuses_what_does_not_take_local_triggers(autojump_clock):
    harness = AppHarness.create()

    @harness.app.telemetry("remote", interval=10, triggerable="mqtt")
    async def remote() -> None: ...

    @harness.app.telemetry("local", interval=10, triggerable="local")
    async def local() -> None: ...

    with pytest.raises(RuntimeError, match="not serving"):
        harness.app.trigger("local")
    for name in ("remote", "nothing"):
        with pytest.raises(UnknownDeviceError, match=f"^{name}: no telemetry"):
            harness.app.trigger(name)
    with pytest.raises(LookupError):  # "local" subscribes nothing
        async with harness.serving():
            await harness.command("local", "x")


@pytest.mark.parametrize(
    ("options", "match"),
    [
        ({"triggerable": "often"}, "triggerable='often' is not one of"),
        ({"triggerable": 1}, "triggerable=1 is not one of"),
        ({"min_interval": 5}, "needs triggerable"),
        ({"triggerable": True, "min_interval": 0}, "min_interval must be a positive"),
        ({"group": ""}, "group= must be a non-empty"),
        ({"schedule": "0 * * * * ?"}, "not both"),
    ],
)
def test_trigger_group_and_schedule_options_are_checked(options: dict[str, Any], match: str):
    app = App("bridge")
    with pytest.raises(RegistrationError, match=f"^meter: .*{match}"):
        app.telemetry("meter", interval=10, **options)


def test_only_telemetry_handlers_take_a_trigger_payload() -> None:
    app = App("bridge")
    with pytest.raises(RegistrationError, match="cannot inject parameter 'trigger'"):

        @app.command("relay")
        async def relay(trigger: TriggerPayload) -> None: ...


# -- cron -------------------------------------------------------------------------------------

START = datetime(2026, 12, 5, 11, 0, 3)


@pytest.fixture
def wall_clock_on_trio_time(monkeypatch: pytest.MonkeyPatch) -> None:
    """The cron's wall clock reads 11:00:03 at trio time 0 and moves with trio's clock."""
    monkeypatch.setattr(
        cron_ticks, "wall_clock", lambda: START + timedelta(seconds=trio.current_time())
    )


async def test_a_cron_device_runs_at_start_then_at_each_fire_time(
    autojump_clock, wall_clock_on_trio_time
):
    harness = AppHarness.create()
    ran: list[float] = []

    @harness.app.telemetry("meter", schedule="*/10 * * * * ?")
    async def meter() -> dict[str, int]:
        ran.append(round(trio.current_time(), 3))
        return {"n": len(ran)}

    await harness.run(cycles=4)
    assert ran == [0, 7, 17, 27]  # 11:00:03, then 11:00:10, :20, :30
    assert harness.states("meter")[-1] == {"n": 4}


async def test_fire_times_passed_during_a_long_cycle_are_skipped_and_counted(
    autojump_clock, wall_clock_on_trio_time
):
    harness = AppHarness.create()
    ran: list[float] = []

    @harness.app.telemetry("meter", schedule=CronSchedule("*/10 * * * * ?"))
    async def meter() -> None:
        ran.append(round(trio.current_time(), 3))
        if len(ran) == 1:
            await trio.sleep(25)  # past 11:00:10 and 11:00:20

    await harness.run(cycles=3)
    assert ran == [0, 27, 37]
    assert harness.app.statistics().skipped_ticks == {"meter": 2}


def test_a_bad_cron_expression_is_refused_naming_the_device() -> None:
    app = App("bridge")
    with pytest.raises(RegistrationError, match=r"^meter: cron '\* \* \* \* \*': needs 6 fields"):
        app.telemetry("meter", schedule="* * * * *")
    with pytest.raises(RegistrationError, match=r"^meter: interval must be a positive number"):
        app.telemetry("meter")


# -- groups -----------------------------------------------------------------------------------


async def test_members_of_a_group_run_one_after_another_in_each_tick(autojump_clock):
    harness = AppHarness.create()
    journal: list[tuple[str, str, float]] = []

    for name in ("left", "right"):

        @harness.app.telemetry(name, interval=10, group="bus")
        async def member(ctx: Any = None, *, name: str = name) -> dict[str, str]:
            journal.append(("start", name, trio.current_time()))
            await trio.sleep(1)  # one serial-bus transaction
            journal.append(("end", name, trio.current_time()))
            return {"name": name}

    await harness.run(cycles=2)
    assert [(what, name, round(t)) for what, name, t in journal] == [
        ("start", "left", 0),
        ("end", "left", 1),
        ("start", "right", 1),
        ("end", "right", 2),
        ("start", "left", 10),
        ("end", "left", 11),
        ("start", "right", 11),
        ("end", "right", 12),
    ]


async def test_without_a_group_the_same_devices_overlap(autojump_clock):
    harness = AppHarness.create()
    starts: list[float] = []

    for name in ("left", "right"):

        @harness.app.telemetry(name, interval=10)
        async def member() -> None:
            starts.append(trio.current_time())
            await trio.sleep(1)

    await harness.run(cycles=1)
    assert starts == [0, 0]


async def test_a_triggered_member_waits_for_the_group_and_errors_stay_per_member(
    autojump_clock,
):
    harness = AppHarness.create()
    journal: list[tuple[str, float]] = []

    @harness.app.telemetry("slow", interval=100, group="bus")
    async def slow() -> None:
        journal.append(("slow", trio.current_time()))
        await trio.sleep(5)
        raise OSError("slow sensor glitch")

    @harness.app.telemetry("quick", interval=100, group="bus", triggerable="local")
    async def quick(trigger: TriggerPayload) -> dict[str, str]:
        journal.append((trigger.source, trio.current_time()))
        return {"ok": "yes"}

    async with harness.serving():
        await trio.sleep(101)  # the tick at 100 is running "slow" now
        harness.app.trigger("quick")
        await trio.sleep(20)
    assert [(what, round(t)) for what, t in journal] == [
        ("slow", 0),
        ("scheduled", 5),
        ("slow", 100),
        ("scheduled", 105),
        ("local", 105),
    ]
    assert [e["type"] for e in harness.errors("slow")] == ["OSError"]  # the repeat is counted
    assert harness.errors("quick") == []


async def test_under_a_virtual_clock_cron_fire_times_follow_it_without_help(autojump_clock):
    harness = AppHarness.create()
    ran: list[float] = []

    @harness.app.telemetry("meter", schedule="*/10 * * * * ?")
    async def meter() -> None:
        ran.append(trio.current_time())

    await harness.run(cycles=4)
    first_wait = ran[1] - ran[0]
    assert 0 < first_wait <= 10.001
    assert [round(b - a, 3) for a, b in itertools.pairwise(ran[1:])] == [10, 10]


async def test_a_wall_clock_step_during_a_long_wait_is_noticed_within_a_minute(autojump_clock):
    step = timedelta(0)
    ticks = cron_ticks.CronTicks(
        CronSchedule("0 0 * * * ?"),  # every hour on the hour
        "meter",
        now=lambda: START + step + timedelta(seconds=trio.current_time()),
    )
    async with trio.open_nursery() as nursery:
        nursery.start_soon(ticks.next_tick, 0)
        await trio.sleep(100)
        step = timedelta(minutes=50)  # NTP moved the clock forward
        await trio.testing.wait_all_tasks_blocked()
    # Due at 12:00:00, 3597 s after 11:00:03; the clock step moved it 3000 s closer.
    assert 590 <= trio.current_time() <= 600 + cron_ticks.RECHECK
    assert ticks.fired == 1


@pytest.fixture
def berlin(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    """Local time is Berlin's (daylight saving time ends on 25 October 2026 at 03:00)."""
    if not Path("/usr/share/zoneinfo/Europe/Berlin").exists():
        pytest.skip("no time zone database on this machine")
    monkeypatch.setenv("TZ", "Europe/Berlin")
    time.tzset()
    yield
    monkeypatch.undo()
    time.tzset()


async def test_a_daily_fire_time_stays_at_its_local_hour_across_a_dst_change(
    autojump_clock, berlin
):
    saturday_morning = datetime(2026, 10, 24, 9, 0)
    ticks = cron_ticks.CronTicks(CronSchedule("0 0 8 * * ?"), "meter", now=lambda: saturday_morning)
    await ticks.next_tick(0)
    # 09:00 summer time to 08:00 winter time next day: 24 hours, not the 23 on the dial.
    assert trio.current_time() == 24 * 3600
