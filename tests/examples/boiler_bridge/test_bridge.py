"""The boiler bridge on AppHarness, as a cosalette bridge's tests are written."""

from __future__ import annotations

import json

from examples.boiler_bridge.routers import LOW_PRESSURE_BAR
from examples.boiler_bridge.state import Heating
from pydantic import BaseModel

from triolette import MemoryStore
from triolette.testing import AppHarness, FakeClock, MockMqttClient

from .conftest import ScriptedBoiler, bridge, settings

TEMPERATURES = "boiler2mqtt/temperatures/state"


def published(harness: AppHarness, topic: str) -> list[dict[str, object]]:
    return [json.loads(payload) for payload, _, _ in harness.mqtt.get_messages_for(topic)]


async def test_temperatures_are_published_when_one_leaves_its_band(
    harness: AppHarness, boiler: ScriptedBoiler, fake_clock: FakeClock
):
    boiler.script([40.0, 40.3, 40.4, 40.7, 41.0])

    async with harness.serving():
        await harness.advance_time(40)  # five readings, 10 s apart

    # 40.3 and 40.4 are within 0.5 of the 40.0 published; 40.7 is not; 41.0 is within 0.5 of it
    assert [state["flow"] for state in published(harness, TEMPERATURES)] == [40.0, 40.7]
    assert boiler.reads == 5
    harness.assert_state(TEMPERATURES, {"flow": 40.7, "return_flow": 32.7, "flow_target": 45.0})


async def test_a_failed_read_is_retried_and_nothing_is_reported(
    harness: AppHarness, boiler: ScriptedBoiler, fake_clock: FakeClock
):
    boiler.failures = 2  # retry=2: the third attempt succeeds

    async with harness.serving():
        await harness.advance_time(5)  # backoff: about 1 s, then about 2 s

    assert boiler.reads == 3
    harness.assert_state(TEMPERATURES, {"flow": 40.0})
    assert harness.mqtt.get_messages_for("boiler2mqtt/temperatures/error") == []


async def test_a_read_failing_every_retry_is_reported_on_the_error_topic(
    harness: AppHarness, boiler: ScriptedBoiler, fake_clock: FakeClock
):
    boiler.failures = 3

    async with harness.serving():
        await harness.advance_time(5)  # three attempts, the last one reported
        assert harness.mqtt.get_messages_for(TEMPERATURES) == []
        await harness.advance_time(5)  # the next cycle, at 10 s, reads again and succeeds

    [error] = published(harness, "boiler2mqtt/temperatures/error")
    assert error["type"] == "OSError"
    assert boiler.reads == 4
    harness.assert_state(TEMPERATURES, {"flow": 40.0})


async def test_a_flow_target_command_sets_the_boiler_and_the_shared_state(
    harness: AppHarness, boiler: ScriptedBoiler, fake_clock: FakeClock
):
    async with harness.serving():
        await harness.inject_command("flow-target", {"celsius": 55})
        await harness.advance_time(10)

    assert boiler.target == 55
    harness.assert_state("boiler2mqtt/flow-target/state", {"celsius": 55.0, "changes": 1})
    # the temperatures telemetry reads the same Heating object the command changed
    assert [state["flow_target"] for state in published(harness, TEMPERATURES)] == [45.0, 55.0]
    harness.assert_subscribed("boiler2mqtt/flow-target/set")


async def test_a_bad_flow_target_is_refused_and_changes_nothing(
    harness: AppHarness, boiler: ScriptedBoiler, fake_clock: FakeClock
):
    async with harness.serving():
        await harness.inject_command("flow-target", {"celsius": 95})
        await harness.inject_command("flow-target", {"fahrenheit": 130})
        await harness.inject_command("flow-target", "warm please")

    assert boiler.target == 45.0
    assert harness.mqtt.get_messages_for("boiler2mqtt/flow-target/state") == []
    errors = published(harness, "boiler2mqtt/flow-target/error")
    assert [error["error_type"] for error in errors] == ["invalid_payload"] * 3
    assert [str(error["message"]).split(": ", 2)[2] for error in errors] == [
        "[celsius]: type=less_than_equal",
        "[celsius]: type=missing; [fahrenheit]: type=extra_forbidden",
        "(root): type=json_invalid",
    ]


async def test_the_changes_count_on_across_runs_in_the_store(
    boiler: ScriptedBoiler, fake_clock: FakeClock
):
    backend = MemoryStore({"flow-target": {"celsius": 50.0, "changes": 4}})
    harness = AppHarness(
        app=bridge(boiler, backend), mqtt=MockMqttClient(), clock=fake_clock, settings=settings()
    )

    async with harness.serving():
        await harness.inject_command("flow-target", {"celsius": 60})

    harness.assert_state("boiler2mqtt/flow-target/state", {"celsius": 60.0, "changes": 5})
    assert backend.load("flow-target") == {"celsius": 60.0, "changes": 5}


async def test_a_message_on_the_pressure_topic_reads_it_at_once(
    harness: AppHarness, boiler: ScriptedBoiler, fake_clock: FakeClock
):
    boiler.pressures = [1.5, 0.8]

    async with harness.serving():
        await harness.advance_time(5)  # the scheduled reading came at 0; the next is at 60
        await harness.inject_command("pressure", {"reason": "dashboard"})

    states = published(harness, "boiler2mqtt/pressure/state")
    assert states == [
        {"bar": 1.5, "low": False, "reason": "scheduled"},
        {"bar": 0.8, "low": True, "reason": "dashboard"},
    ]
    assert LOW_PRESSURE_BAR > 0.8


async def test_the_intervals_come_from_the_settings(boiler: ScriptedBoiler, fake_clock: FakeClock):
    harness = AppHarness(
        app=bridge(boiler),
        mqtt=MockMqttClient(),
        clock=fake_clock,
        settings=settings(poll__temperatures=30),
    )
    boiler.script([40.0, 41.0, 42.0, 43.0])

    async with harness.serving():
        await harness.advance_time(60)

    assert boiler.reads == 3  # at 0, 30 and 60


async def test_the_temperatures_report_the_shared_heating_demand(
    harness: AppHarness, boiler: ScriptedBoiler, fake_clock: FakeClock
):
    harness.override_state(Heating, Heating(flow_target=62.0))

    async with harness.serving():
        await harness.advance_time(0)

    harness.assert_state(TEMPERATURES, {"flow_target": 62.0})  # not the boiler's 45


async def test_every_published_state_fits_its_state_model(
    harness: AppHarness, boiler: ScriptedBoiler, fake_clock: FakeClock
):
    boiler.script([40.0, 41.0, 42.0])
    async with harness.serving():
        await harness.inject_command("flow-target", {"celsius": 50})
        await harness.inject_command("pressure", "")
        await harness.advance_time(20)

    models = {r.name: r.state_model for r in harness.app.registry.registrations}
    assert set(models) == {"temperatures", "pressure", "flow-target"}
    for name, model in models.items():
        states = published(harness, f"boiler2mqtt/{name}/state")
        assert states, name
        assert model is not None
        assert issubclass(model, BaseModel)
        for state in states:
            model.model_validate(state)  # raises for a state that does not fit
