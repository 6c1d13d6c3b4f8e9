"""The device actor: telemetry cycles, save policies, schedule, errors, device and command handlers.

Most tests run a real :class:`~triolette.App` through :class:`~triolette.testing.AppHarness`
over a :class:`RecordingStore`, a ``MemoryStore`` that notes every write call the persistence
actor makes: which states, at what trio time, and whether the shutdown had been requested
yet. That tells saves made in the loop (by a policy) from the final flush.
"""

from __future__ import annotations

import json
import logging

import pytest
import trio
import trio.testing

from tests.helpers import recording_harness, without_error_id
from triolette import (
    DeviceContext,
    DeviceStore,
    MemoryStore,
    RegistrationError,
    SaveOnChange,
    SaveOnPublish,
    SaveOnShutdown,
)
from triolette.runtime import reports
from triolette.testing import AppHarness


class RecordingPolicy:
    """A user-written policy (no base class): records every question, answers ``answer``."""

    def __init__(self, answer: bool = False) -> None:
        self.answer = answer
        self.asked: list[bool] = []
        self.dirty_seen: list[bool] = []

    def should_save(self, store: DeviceStore, published: bool) -> bool:
        self.asked.append(published)
        self.dirty_seen.append(store.dirty)
        return self.answer


# -- telemetry: save policies in the loop -------------------------------------------------------


async def test_save_on_shutdown_writes_exactly_once_at_the_end(autojump_clock):
    harness, backend = recording_harness()

    @harness.app.telemetry("sensor", interval=60, persist=SaveOnShutdown())
    async def sensor(store: DeviceStore) -> dict[str, object]:
        store["count"] = store.get("count", 0) + 1
        return {"count": store["count"]}

    await harness.run(duration=250)  # cycles at 0, 60, 120, 180, 240
    assert harness.app.statistics().cycles == {"sensor": 5}
    assert len(backend.writes) == 1, backend.writes
    assert backend.writes[0].shutdown
    assert backend.writes[0].states == {"sensor": {"count": 5}}


async def test_default_policy_is_save_on_shutdown(autojump_clock):
    harness, backend = recording_harness()

    @harness.app.telemetry("sensor", interval=60)
    async def sensor(store: DeviceStore) -> dict[str, object]:
        store["count"] = store.get("count", 0) + 1
        return {"count": store["count"]}

    await harness.run(duration=250)
    assert [(w.shutdown, w.states) for w in backend.writes] == [(True, {"sensor": {"count": 5}})]


async def test_save_on_change_writes_during_the_run(autojump_clock):
    harness, backend = recording_harness()
    starts: list[float] = []

    @harness.app.telemetry("sensor", interval=60, persist=SaveOnChange())
    async def sensor(store: DeviceStore) -> dict[str, object]:
        starts.append(trio.current_time())
        store["count"] = store.get("count", 0) + 1
        return {"count": store["count"]}

    await harness.run(duration=150)  # cycles at 0, 60, 120; shutdown at 150
    assert backend.values("sensor", "count") == [1, 2, 3]
    assert len(backend.in_loop("sensor")) == 3
    # Each cycle's write happened in that cycle, not later.
    assert [w.time for w in backend.writes] == pytest.approx(starts)
    # Nothing changed after the last cycle: the final flush costs no write.
    assert backend.at_shutdown("sensor") == []
    assert backend.load("sensor") == {"count": 3}


async def test_save_on_change_does_not_write_an_unchanged_store(autojump_clock):
    harness, backend = recording_harness({"sensor": {"count": 7}})

    @harness.app.telemetry("sensor", interval=60, persist=SaveOnChange())
    async def sensor(store: DeviceStore) -> dict[str, object]:
        return {"count": store["count"]}

    await harness.run(cycles=3)
    assert backend.writes == []
    assert harness.states("sensor") == [{"count": 7}] * 3


async def test_save_on_publish_saves_after_each_confirmed_publish(autojump_clock):
    harness, backend = recording_harness()

    @harness.app.telemetry("sensor", interval=60, persist=SaveOnPublish())
    async def sensor(store: DeviceStore) -> dict[str, object]:
        store["count"] = store.get("count", 0) + 1
        return {"count": store["count"]}

    await harness.run(duration=150)
    assert [w.states["sensor"]["count"] for w in backend.in_loop("sensor")] == [1, 2, 3]
    assert backend.at_shutdown("sensor") == []


async def test_save_on_publish_does_not_save_when_the_broker_is_offline(autojump_clock):
    harness, backend = recording_harness()

    @harness.app.telemetry("sensor", interval=60, persist=SaveOnPublish())
    async def sensor(store: DeviceStore) -> dict[str, object]:
        harness.broker.online = False  # the broker goes away during the first cycle
        store["count"] = store.get("count", 0) + 1
        return {"count": store["count"]}

    await harness.run(duration=150)
    assert harness.states("sensor") == []
    assert backend.in_loop("sensor") == []
    # The final flush saves whatever the policy held back.
    assert [w.states for w in backend.at_shutdown("sensor")] == [{"sensor": {"count": 3}}]


async def test_save_on_publish_skips_only_the_refused_cycle(autojump_clock):
    harness, backend = recording_harness()

    @harness.app.telemetry("sensor", interval=60, persist=SaveOnPublish())
    async def sensor(store: DeviceStore) -> dict[str, object]:
        store["count"] = store.get("count", 0) + 1
        if store["count"] == 2:
            harness.broker.fail_next()
        return {"count": store["count"]}

    await harness.run(duration=150)
    assert [w.states["sensor"]["count"] for w in backend.in_loop("sensor")] == [1, 3]
    assert harness.states("sensor") == [{"count": 1}, {"count": 3}]


async def test_user_policy_is_asked_once_per_cycle_with_the_publish_outcome(autojump_clock):
    harness, backend = recording_harness()
    policy = RecordingPolicy()
    plan = ["publish", "none", "refused", "raise", "offline", "publish"]

    @harness.app.telemetry("sensor", interval=10, persist=policy)
    async def sensor(store: DeviceStore) -> dict[str, object] | None:
        step = plan[store.get("cycle", 0)]
        store["cycle"] = store.get("cycle", 0) + 1
        harness.broker.online = step != "offline"
        if harness.broker.online:
            await harness.app.wait_until_connected()  # after "offline": it reconnects first
        if step == "none":
            return None
        if step == "refused":
            harness.broker.fail_next()
        if step == "raise":
            raise RuntimeError("sensor unplugged")
        return {"cycle": store["cycle"]}

    await harness.run(cycles=len(plan))
    assert policy.asked == [True, False, False, False, False, True]
    assert policy.dirty_seen == [True] * len(plan), "the policy sees the cycle's mutation"
    assert harness.states("sensor") == [{"cycle": 1}, {"cycle": 6}]
    assert backend.in_loop("sensor") == [], "the policy said no every time"
    assert backend.at_shutdown("sensor")[-1].states == {"sensor": {"cycle": 6}}


async def test_user_policy_saying_yes_saves_in_the_loop(autojump_clock):
    harness, backend = recording_harness()
    policy = RecordingPolicy(answer=True)

    @harness.app.telemetry("sensor", interval=10, persist=policy)
    async def sensor(store: DeviceStore) -> None:
        store["n"] = store.get("n", 0) + 1

    await harness.run(duration=25)
    assert policy.asked == [False, False, False]
    assert backend.values("sensor", "n") == [1, 2, 3]
    assert backend.at_shutdown("sensor") == []


async def test_save_on_change_still_saves_after_a_handler_raised(autojump_clock):
    harness, backend = recording_harness()

    @harness.app.telemetry("sensor", interval=60, persist=SaveOnChange())
    async def sensor(store: DeviceStore) -> dict[str, object]:
        store["count"] = store.get("count", 0) + 1
        raise OSError("i2c bus timeout")

    await harness.run(duration=150)
    assert [w.states["sensor"]["count"] for w in backend.in_loop("sensor")] == [1, 2, 3]
    assert harness.states("sensor") == []


async def test_save_on_change_still_saves_when_the_publish_fails(autojump_clock):
    harness, backend = recording_harness()

    @harness.app.telemetry("sensor", interval=60, persist=SaveOnChange())
    async def sensor(store: DeviceStore) -> dict[str, object]:
        harness.broker.online = False
        store["count"] = store.get("count", 0) + 1
        return {"count": store["count"]}

    await harness.run(duration=150)
    assert [w.states["sensor"]["count"] for w in backend.in_loop("sensor")] == [1, 2, 3]


async def test_a_failing_policy_is_reported_and_the_loop_goes_on(autojump_clock, caplog):
    harness, backend = recording_harness()

    class Broken:
        def should_save(self, store: DeviceStore, published: bool) -> bool:
            raise ZeroDivisionError("policy bug")

    @harness.app.telemetry("sensor", interval=60, persist=Broken())
    async def sensor(store: DeviceStore) -> dict[str, object]:
        store["count"] = store.get("count", 0) + 1
        return {"count": store["count"]}

    await harness.run(cycles=3)
    assert harness.states("sensor") == [{"count": 1}, {"count": 2}, {"count": 3}]
    assert [e["type"] for e in harness.errors("sensor")] == ["ZeroDivisionError"]
    assert backend.load("sensor") == {"count": 3}


# -- telemetry: the schedule --------------------------------------------------------------------


async def test_cycles_start_on_a_drift_free_schedule(autojump_clock):
    harness = AppHarness.create()
    starts: list[float] = []

    @harness.app.telemetry("sensor", interval=10)
    async def sensor() -> dict[str, object]:
        starts.append(trio.current_time())
        await trio.sleep(3)  # the handler's own work takes time
        return {"n": len(starts)}

    await harness.run(cycles=5)
    first = starts[0]
    assert starts == pytest.approx([first + n * 10 for n in range(5)])


async def test_a_slow_cycle_skips_the_missed_ticks_instead_of_bursting(autojump_clock):
    harness = AppHarness.create()
    starts: list[float] = []

    @harness.app.telemetry("sensor", interval=10)
    async def sensor() -> dict[str, object]:
        starts.append(trio.current_time())
        if len(starts) == 2:
            await trio.sleep(25)  # 2.5 intervals: ends at +35, ticks 20 and 30 are missed
        return {"n": len(starts)}

    await harness.run(cycles=4)
    first = starts[0]
    assert [s - first for s in starts] == pytest.approx([0, 10, 40, 50])
    assert harness.app.statistics().skipped_ticks == {"sensor": 2}


@pytest.mark.parametrize("publish", [True, False], ids=["publishing", "silent"])
async def test_a_cycle_that_takes_exactly_one_interval_is_not_late(autojump_clock, publish):
    """A cycle ending on the next tick did not overrun it: the next cycle starts on that tick.

    Whether a device catches a tick must not depend on the order in which trio happens to
    wake the device and the timer at the same instant.
    """
    harness = AppHarness.create()
    starts: list[float] = []

    @harness.app.telemetry("sensor", interval=10)
    async def sensor() -> dict[str, object] | None:
        starts.append(trio.current_time())
        await trio.sleep(10)
        return {"n": len(starts)} if publish else None

    await harness.run(cycles=4)
    first = starts[0]
    assert [s - first for s in starts] == pytest.approx([0, 10, 20, 30])


async def test_the_first_cycle_runs_at_once(autojump_clock):
    harness = AppHarness.create()
    starts: list[float] = []
    t0 = trio.current_time()

    @harness.app.telemetry("sensor", interval=3600)
    async def sensor() -> None:
        starts.append(trio.current_time())

    await harness.run()
    assert starts == [t0]
    assert trio.current_time() == t0, "one cycle and a shutdown take no virtual time"


# -- telemetry: handler exceptions --------------------------------------------------------------


async def test_telemetry_errors_are_reported_logged_and_the_loop_continues(autojump_clock, caplog):
    harness = AppHarness.create()
    calls: list[int] = []

    @harness.app.telemetry("sensor", interval=10)
    async def sensor() -> dict[str, object]:
        calls.append(len(calls))
        if len(calls) == 2:
            raise ValueError("reading out of range: 9999")
        return {"n": len(calls)}

    with caplog.at_level(logging.ERROR):
        await harness.run(cycles=3)
    assert len(calls) == 3
    assert harness.states("sensor") == [{"n": 1}, {"n": 3}]
    (device_error,) = harness.errors("sensor")
    assert device_error["type"] == "ValueError"
    assert device_error["message"] == "reading out of range: 9999"
    assert device_error["device"] == "sensor"
    assert isinstance(device_error["timestamp"], str)
    assert device_error["timestamp"].endswith("+00:00")
    assert harness.errors() == [device_error]
    error_messages = harness.broker.on("testapp/sensor/error") + harness.broker.on("testapp/error")
    assert not any(m.retain for m in error_messages), "error reports are not retained"
    assert any(
        "sensor" in r.getMessage() and "reading out of range" in r.getMessage()
        for r in caplog.records
    ), caplog.text


async def test_a_repeated_error_is_published_once_and_a_different_one_again(autojump_clock):
    harness = AppHarness.create()
    plan = [
        ValueError("bad crc"),
        ValueError("bad crc"),
        ValueError("bad crc"),
        TimeoutError("no answer"),
        TimeoutError("no answer"),
        ValueError("bad crc"),
    ]

    @harness.app.telemetry("sensor", interval=10)
    async def sensor(ctx: DeviceContext) -> None:
        raise plan[harness.app.statistics().cycles["sensor"]]

    await harness.run(cycles=len(plan))
    expected = [
        ("ValueError", "bad crc"),
        ("TimeoutError", "no answer"),
        ("ValueError", "bad crc"),
    ]
    assert [(e["type"], e["message"]) for e in harness.errors("sensor")] == expected
    assert [(e["type"], e["message"]) for e in harness.errors()] == expected


async def test_the_same_error_is_published_again_after_a_successful_cycle(autojump_clock):
    """mqtt.py: repeats are skipped "until a different one (or a success) comes"."""
    harness = AppHarness.create()
    plan = ["fail", "fail", "ok", "fail"]

    @harness.app.telemetry("sensor", interval=10)
    async def sensor() -> dict[str, object]:
        step = plan[harness.app.statistics().cycles["sensor"]]
        if step == "fail":
            raise ValueError("bad crc")
        return {"ok": True}

    await harness.run(cycles=len(plan))
    assert [e["message"] for e in harness.errors("sensor")] == ["bad crc", "bad crc"]


async def test_errors_of_two_devices_are_not_deduplicated_against_each_other(autojump_clock):
    harness = AppHarness.create()

    @harness.app.telemetry("left", interval=10)
    async def left() -> None:
        raise ValueError("bad crc")

    @harness.app.telemetry("right", interval=10)
    async def right() -> None:
        raise ValueError("bad crc")

    await harness.run(cycles=2)
    assert len(harness.errors("left")) == 1
    assert len(harness.errors("right")) == 1
    assert sorted(e["device"] for e in harness.errors()) == ["left", "right"]


# -- @app.device handlers -----------------------------------------------------------------------


async def test_device_persist_coalesces_a_burst_into_one_write(autojump_clock):
    harness, backend = recording_harness()

    @harness.app.device("meter", persist=SaveOnChange())
    async def meter(ctx: DeviceContext, store: DeviceStore) -> None:
        for burst in range(3):
            for i in range(100):
                store["total"] = burst * 100 + i  # no checkpoint inside a burst
            store["burst"] = burst
            await ctx.sleep(10)

    await harness.run()
    assert harness.app.statistics().restarts == {"meter": 0}
    assert [w.states["meter"] for w in backend.in_loop("meter")] == [
        {"total": 99, "burst": 0},
        {"total": 199, "burst": 1},
        {"total": 299, "burst": 2},
    ]
    persistence = harness.app.statistics().persistence
    assert persistence is not None
    assert persistence.saves == 3, "one snapshot per burst, not one per mutation"
    assert backend.at_shutdown("meter") == []


async def test_device_without_persist_saves_only_at_the_end(autojump_clock):
    harness, backend = recording_harness()

    @harness.app.device("meter")
    async def meter(ctx: DeviceContext, store: DeviceStore) -> None:
        for n in range(3):
            store["n"] = n
            await ctx.sleep(10)

    await harness.run()
    # One write: the final snapshot, handed over when the handler returned (at t=30).
    assert [w.states for w in backend.writes] == [{"meter": {"n": 2}}]
    assert backend.writes[0].time == pytest.approx(30)


async def test_device_policy_is_asked_after_each_mutation_burst(autojump_clock):
    harness, _backend = recording_harness()
    policy = RecordingPolicy()

    @harness.app.device("meter", persist=policy)
    async def meter(ctx: DeviceContext, store: DeviceStore) -> None:
        store["a"] = 1
        store["b"] = 2
        await ctx.sleep(1)
        store["c"] = 3
        await ctx.sleep(1)
        await ctx.sleep(1)  # no mutation: no question

    await harness.run()
    assert policy.asked == [False, False]


async def test_publish_state_returns_confirmation_and_the_policy_gets_it(autojump_clock):
    harness, _backend = recording_harness()
    policy = RecordingPolicy()
    results: list[bool] = []

    @harness.app.device("valve", persist=policy)
    async def valve(ctx: DeviceContext, store: DeviceStore) -> None:
        results.append(await ctx.publish_state({"open": True}))
        harness.broker.fail_next()
        results.append(await ctx.publish_state({"open": False}))
        harness.broker.online = False
        results.append(await ctx.publish_state({"open": None}))
        harness.broker.online = True
        await harness.app.wait_until_connected()  # the MQTT actor reconnects (virtual time)
        results.append(await ctx.publish_state({"open": 1}))

    await harness.run()
    assert results == [True, False, False, True]
    assert policy.asked == results
    assert harness.states("valve") == [{"open": True}, {"open": 1}]
    retained = harness.broker.retained["testapp/valve/state"]
    assert retained.retain


async def test_save_on_publish_on_a_device_saves_after_a_confirmed_publish(autojump_clock):
    harness, backend = recording_harness()

    @harness.app.device("valve", persist=SaveOnPublish())
    async def valve(ctx: DeviceContext, store: DeviceStore) -> None:
        store["position"] = 10
        await ctx.sleep(1)  # the change alone does not save
        store["position"] = 20
        await ctx.publish_state({"position": 20})
        await ctx.sleep(1)

    await harness.run()
    assert [w.states for w in backend.in_loop("valve")] == [{"valve": {"position": 20}}]


async def test_device_commands_arrive_through_ctx_commands(autojump_clock):
    harness = AppHarness.create()
    received: list[tuple[str, str]] = []

    @harness.app.device("lamp")
    async def lamp(ctx: DeviceContext) -> None:
        async for message in ctx.commands():
            received.append((message.topic, message.text))
            if message.text == "bye":
                return

    async with trio.open_nursery() as nursery:
        nursery.start_soon(harness.run)
        await trio.testing.wait_all_tasks_blocked()
        await harness.command("lamp", "on")
        await harness.command("lamp", b"dim 30")
        await harness.command("lamp", "bye")
    assert received == [
        ("testapp/lamp/set", "on"),
        ("testapp/lamp/set", "dim 30"),
        ("testapp/lamp/set", "bye"),
    ]
    assert harness.app.statistics().restarts == {"lamp": 0}


async def test_commands_raise_for_a_telemetry_device(autojump_clock):
    harness = AppHarness.create()
    errors: list[BaseException] = []

    @harness.app.telemetry("sensor", interval=10)
    async def sensor(ctx: DeviceContext) -> None:
        try:
            ctx.commands()
        except RuntimeError as error:
            errors.append(error)

    await harness.run()
    assert len(errors) == 1
    assert "sensor" in str(errors[0])


# -- @app.command handlers ----------------------------------------------------------------------


async def test_command_handler_gets_the_payload_and_publishes_its_result(autojump_clock):
    harness, backend = recording_harness()
    payloads: list[str] = []

    @harness.app.command("valve", persist=SaveOnChange())
    async def valve(payload: str, store: DeviceStore) -> dict[str, object] | None:
        payloads.append(payload)
        if payload == "noop":
            return None
        store["position"] = payload
        return {"position": payload}

    async with trio.open_nursery() as nursery:
        nursery.start_soon(harness.run)
        await trio.testing.wait_all_tasks_blocked()
        await harness.command("valve", "open")
        await harness.command("valve", "noop")
        await harness.command("valve", "closed")
        await trio.testing.wait_all_tasks_blocked()
        harness.trigger_shutdown()
    assert payloads == ["open", "noop", "closed"]
    assert harness.states("valve") == [{"position": "open"}, {"position": "closed"}]
    assert [w.states["valve"] for w in backend.in_loop("valve")] == [
        {"position": "open"},
        {"position": "closed"},
    ]


async def test_command_handler_errors_are_reported_and_the_next_command_handled(autojump_clock):
    harness = AppHarness.create()
    seen: list[str] = []

    @harness.app.command("valve")
    async def valve(payload: str, topic: str) -> dict[str, object]:
        seen.append(topic)
        if payload == "explode":
            raise ValueError(f"unknown command {payload!r}")
        return {"position": payload}

    async with trio.open_nursery() as nursery:
        nursery.start_soon(harness.run)
        await trio.testing.wait_all_tasks_blocked()
        await harness.command("valve", "explode")
        await harness.command("valve", "open")
        await trio.testing.wait_all_tasks_blocked()
        harness.trigger_shutdown()
    assert seen == ["testapp/valve/set"] * 2
    assert harness.states("valve") == [{"position": "open"}]
    assert [e["message"] for e in harness.errors("valve")] == ["unknown command 'explode'"]
    assert harness.app.statistics().restarts == {"valve": 0}


async def test_a_malformed_command_payload_is_one_warning_line_naming_the_device(
    autojump_clock, caplog
):
    caplog.set_level(logging.DEBUG, logger="triolette")
    harness = AppHarness.create()

    @harness.app.command("valve")
    async def valve(payload: str) -> dict[str, object]:
        return {"position": json.loads(payload)["position"]}

    async with harness.serving():
        await harness.command("valve", '{"position": "open"')  # a typo: no closing brace

    app_lines = [r for r in caplog.records if r.name == "triolette.app"]
    warnings = [r for r in app_lines if r.levelno >= logging.WARNING]
    (report,) = harness.errors("valve")
    assert [(r.levelname, r.getMessage()) for r in warnings] == [
        (
            "WARNING",
            "valve: command rejected: JSONDecodeError: "
            f"Expecting ',' delimiter: line 1 column 20 (char 19) [error id {report['id']}]",
        )
    ]
    assert warnings[0].exc_info is None
    assert any(r.levelno == logging.DEBUG and r.exc_info for r in app_lines)  # the traceback
    assert (report["type"], report["error_type"]) == ("JSONDecodeError", "invalid_json")


async def test_repeated_rejections_are_counted_and_the_count_is_told_with_the_next_line(
    autojump_clock, caplog
):
    harness = AppHarness.create()

    @harness.app.command("valve")
    async def valve(payload: str) -> dict[str, object]:
        positions = {"open": 100, "closed": 0}
        return {"position": positions[payload]}

    async with harness.serving():
        for _ in range(5):
            await harness.command("valve", "opne")
        await trio.sleep(reports.REJECTION_QUIET + 1)
        await harness.command("valve", "opne")
        await harness.command("valve", "shut")
        await harness.command("valve", "shut")
        await harness.command("valve", "open")
        await harness.command("valve", "shut")

    warnings = [
        without_error_id(r.getMessage()) for r in caplog.records if r.levelno >= logging.WARNING
    ]
    assert warnings == [
        "valve: command rejected: KeyError: 'opne'",
        "valve: command rejected: KeyError: 'opne' (4 more like this in the last 61 s)",
        "valve: command rejected: KeyError: 'shut'",
        "valve: 2 more command(s) rejected: KeyError: 'shut'",  # told at the end
    ]


async def test_a_command_handler_bug_is_still_an_error_with_its_traceback(autojump_clock, caplog):
    harness = AppHarness.create()

    @harness.app.command("valve")
    async def valve(payload: str) -> None:
        raise RuntimeError("the valve driver is not initialised")

    async with harness.serving():
        await harness.command("valve", "open")

    [error] = [r for r in caplog.records if r.levelno >= logging.WARNING]
    assert error.levelname == "ERROR"
    assert error.exc_info is not None
    (report,) = harness.errors("valve")
    assert error.getMessage() == (
        f"valve: RuntimeError: the valve driver is not initialised [error id {report['id']}]"
    )


# -- watchdog -----------------------------------------------------------------------------------


async def test_a_hung_cycle_is_cancelled_at_its_timeout_and_the_device_goes_on(autojump_clock):
    backend = MemoryStore()
    harness = AppHarness.create(store=backend)
    never = trio.Event()
    starts: list[float] = []

    @harness.app.telemetry("meter", interval=10, timeout=2, persist=SaveOnChange())
    async def meter(store: DeviceStore) -> dict[str, object]:
        starts.append(trio.current_time())
        store["reads"] = store.get("reads", 0) + 1
        if len(starts) == 2:
            await never.wait()  # a wedged bus: this read never returns
        return {"reads": store["reads"]}

    t0 = trio.current_time()
    await harness.run(cycles=3)
    assert [s - t0 for s in starts] == pytest.approx([0, 10, 20])
    assert [e["type"] for e in harness.errors("meter")] == ["HandlerTimeoutError"]
    assert "longer than 2 s" in harness.errors("meter")[0]["message"]
    assert harness.states("meter") == [{"reads": 1}, {"reads": 3}]
    assert backend.load("meter") == {"reads": 3}  # the hung cycle's change was kept too


async def test_a_hung_command_is_cancelled_and_the_next_one_is_handled(autojump_clock):
    harness = AppHarness.create()
    never = trio.Event()
    handled: list[str] = []

    @harness.app.command("valve", timeout=5)
    async def valve(payload: str) -> dict[str, object]:
        if payload == "stuck":
            await never.wait()
        handled.append(payload)
        return {"position": payload}

    async with trio.open_nursery() as nursery:
        nursery.start_soon(harness.run)
        await harness.command("valve", "stuck")
        await trio.sleep(6)
        await harness.command("valve", "open")
        harness.trigger_shutdown()
    assert handled == ["open"]
    assert [e["type"] for e in harness.errors("valve")] == ["HandlerTimeoutError"]


@pytest.mark.parametrize("timeout", [0, -1, "5"])
def test_a_timeout_must_be_a_positive_number(timeout):
    harness = AppHarness.create()
    with pytest.raises(RegistrationError, match=r"meter: timeout must be a positive number"):
        harness.app.telemetry("meter", interval=10, timeout=timeout)
