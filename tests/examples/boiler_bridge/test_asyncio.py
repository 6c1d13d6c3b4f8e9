"""The bridge's harness driven from an asyncio test, as a ported cosalette suite runs it."""

from __future__ import annotations

import asyncio

from triolette.testing import AppHarness, FakeClock, MockMqttClient

from .conftest import ScriptedBoiler, bridge, settings


def test_an_asyncio_test_commands_the_bridge_and_stops_it():
    boiler = ScriptedBoiler()

    async def scenario() -> AppHarness:
        harness = AppHarness(
            app=bridge(boiler),
            mqtt=MockMqttClient(),
            clock=FakeClock(),
            settings=settings(),
            shutdown_event=asyncio.Event(),
        )
        task = asyncio.create_task(harness.run())
        await harness.inject_command("flow-target", {"celsius": 50})
        await harness.advance_time(10)
        harness.trigger_shutdown()
        await task
        return harness

    with asyncio.Runner(loop_factory=asyncio.SelectorEventLoop) as runner:
        harness = runner.run(scenario())

    assert boiler.target == 50
    harness.assert_state("boiler2mqtt/flow-target/state", {"celsius": 50.0, "changes": 1})
    harness.assert_state("boiler2mqtt/temperatures/state", {"flow_target": 50.0})
    harness.assert_published("boiler2mqtt/status", contains="offline")
