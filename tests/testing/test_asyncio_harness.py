"""AppHarness from asyncio tests: the app serves in a trio guest run on the test's asyncio loop.

Each test is a plain function running a coroutine on a new asyncio loop, as an asyncio test
runner would (``run``: a plain selector loop, whatever other tests imported).
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import Coroutine, Mapping
from pathlib import Path
from typing import Any, TypeVar

import pytest
import trio

from triolette import App, DeviceStore, MemoryStore, StoreLockedError
from triolette.testing import AppHarness, FakeClock, MockMqttClient

T = TypeVar("T")


def run(coroutine: Coroutine[Any, Any, T]) -> T:
    with asyncio.Runner(loop_factory=asyncio.SelectorEventLoop) as runner:
        return runner.run(coroutine)


def bridge(store: MemoryStore | None = None) -> App:
    app = App("myapp", store=store if store is not None else MemoryStore())

    @app.telemetry("sensor", interval=60)
    async def sensor(store: DeviceStore) -> dict[str, object]:
        store["reads"] = store.get("reads", 0) + 1
        return {"reads": store["reads"]}

    @app.command("valve")
    async def valve(payload: str, store: DeviceStore) -> dict[str, object]:
        store["open"] = json.loads(payload)["open"]
        return {"open": store["open"]}

    return app


def harness_with_event(store: MemoryStore | None = None) -> AppHarness:
    return AppHarness(
        app=bridge(store), mqtt=MockMqttClient(), clock=FakeClock(), shutdown_event=asyncio.Event()
    )


def reads(harness: AppHarness) -> list[int]:
    return [json.loads(p)["reads"] for p, _, _ in harness.messages_for("myapp/sensor/state")]


def test_a_task_running_the_app_takes_commands_and_stops_on_trigger_shutdown():
    backend = MemoryStore()

    async def scenario() -> AppHarness:
        harness = harness_with_event(backend)
        task = asyncio.create_task(harness.run())
        await harness.inject_command("valve", {"open": True})  # waits for the run to be up
        harness.assert_state("myapp/valve/state", {"open": True})
        harness.trigger_shutdown()
        await task
        return harness

    harness = run(scenario())
    assert harness.shutdown_event is not None
    assert harness.shutdown_event.is_set()
    assert backend.load("valve") == {"open": True}  # the final flush happened
    harness.assert_published("myapp/status", contains="offline")
    assert harness.app.running is not None
    assert harness.app.running.state is harness.app.running.state.STOPPED


def test_setting_the_asyncio_event_stops_the_app():
    async def scenario() -> AppHarness:
        harness = harness_with_event()
        task = asyncio.create_task(harness.run())
        await harness.wait_for_publish_count("myapp/sensor/state", 1)
        assert isinstance(harness.shutdown_event, asyncio.Event)
        harness.shutdown_event.set()
        await asyncio.wait_for(task, 10)
        return harness

    assert reads(run(scenario())) == [1]


def test_the_fake_clock_moves_the_apps_timers_from_asyncio():
    async def scenario() -> AppHarness:
        harness = harness_with_event()
        task = asyncio.create_task(harness.run())
        await harness.wait_for_publish_count("myapp/sensor/state", 1)
        assert harness.clock is not None
        harness.clock.advance(60)  # cosalette's spelling; wakes the trio run
        await harness.wait_for_publish_count("myapp/sensor/state", 2)
        await harness.advance_time(180)  # through each deadline in order
        assert harness.clock.now() == 240
        harness.trigger_shutdown()
        await task
        return harness

    assert reads(run(scenario())) == [1, 2, 3, 4, 5]


def test_mqtt_deliver_from_asyncio_returns_once_the_handler_ran():
    async def scenario() -> AppHarness:
        harness = harness_with_event()
        task = asyncio.create_task(harness.run())
        await harness.mqtt.deliver("myapp/valve/set", {"open": False})
        assert harness.messages_for("myapp/valve/state") == [('{"open":false}', True, 1)]
        harness.trigger_shutdown()
        await task
        return harness

    run(scenario())


def test_run_without_a_shutdown_event_keeps_the_one_cycle_default():
    async def scenario() -> AppHarness:
        harness = AppHarness.create(app=bridge())
        await harness.run()
        return harness

    harness = run(scenario())
    assert reads(harness) == [1]
    assert isinstance(harness.clock, FakeClock)  # made for the guest run


def test_cancelling_the_task_shuts_the_app_down_before_the_cancellation_goes_on():
    backend = MemoryStore()

    async def scenario() -> None:
        harness = harness_with_event(backend)
        task = asyncio.create_task(harness.run())
        await harness.inject_command("valve", {"open": True})
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task
        running = harness.app.running
        assert running is not None
        assert running.state is running.state.STOPPED
        with pytest.raises(RuntimeError, match="not running"):
            await harness.inject_command("valve", {"open": False})

    run(scenario())
    assert backend.load("valve") == {"open": True}


def test_an_error_of_the_app_is_raised_in_asyncio():
    class Locked(MemoryStore):
        def load_all(self) -> dict[str, dict[str, object]]:
            raise StoreLockedError(Path("/var/lib/myapp/state.json"), "held by another process")

        def save_many(self, states: Mapping[str, dict[str, object]]) -> None: ...

    async def scenario() -> None:
        await AppHarness.create(app=bridge(), store=Locked()).run()

    with pytest.raises(StoreLockedError):
        run(scenario())


def test_a_command_without_a_run_says_to_start_one():
    async def scenario() -> None:
        await harness_with_event().inject_command("valve", "{}")

    with pytest.raises(RuntimeError, match=r"start it first, asyncio.create_task\(harness.run"):
        run(scenario())


def test_a_second_run_at_once_is_refused():
    async def scenario() -> None:
        harness = harness_with_event()
        task = asyncio.create_task(harness.run())
        await harness.wait_for_publish_count("myapp/sensor/state", 1)
        with pytest.raises(RuntimeError, match="already running"):
            await harness.run()
        harness.trigger_shutdown()
        await task

    run(scenario())


def test_a_trio_event_as_the_shutdown_event_works_from_asyncio_too():
    async def scenario() -> None:
        stop = trio.Event()
        harness = AppHarness(app=bridge(), shutdown_event=stop)
        task = asyncio.create_task(harness.run())
        await harness.wait_for_publish_count("myapp/sensor/state", 1)
        harness.trigger_shutdown()
        await task
        assert stop.is_set()

    run(scenario())


def test_an_app_with_asyncio_handlers_is_refused_with_the_way_out():
    app = App("myapp")

    @app.telemetry("sensor", interval=60, asyncio=True)
    async def sensor() -> dict[str, object]:
        await asyncio.sleep(0)
        return {}

    async def scenario() -> None:
        await AppHarness.create(app=app).run()

    with pytest.raises(RuntimeError, match=r"asyncio=True registrations.*from a trio test"):
        run(scenario())


def test_serving_from_asyncio_points_to_run_and_trigger_shutdown():
    async def scenario() -> None:
        async with harness_with_event().serving():
            pytest.fail("serving() is for trio tests")

    with pytest.raises(RuntimeError, match=r"asyncio.create_task\(harness.run\(\)\)"):
        run(scenario())


def test_settle_from_asyncio_lets_the_app_catch_up():
    async def scenario() -> list[int]:
        harness = harness_with_event()
        task = asyncio.create_task(harness.run())
        await harness.wait_for_publish_count("myapp/sensor/state", 1)
        assert harness.clock is not None
        harness.clock.advance(60)
        await harness.settle()  # the cycle that came due has run
        seen = reads(harness)
        harness.trigger_shutdown()
        await task
        return seen

    assert run(scenario()) == [1, 2]


def test_a_trio_asyncio_loop_is_refused_with_the_fix():
    import trio_asyncio  # noqa: F401 (importing it makes asyncio.run's loops trio-asyncio's)

    async def scenario() -> None:
        await harness_with_event().run()

    with pytest.raises(
        RuntimeError, match=r"set_event_loop_policy\(asyncio.DefaultEventLoopPolicy"
    ):
        asyncio.run(scenario())

    asyncio.set_event_loop_policy(asyncio.DefaultEventLoopPolicy())
    try:
        harness = harness_with_event()

        async def fixed() -> None:
            task = asyncio.create_task(harness.run())
            await harness.inject_command("valve", {"open": True})
            harness.trigger_shutdown()
            await task

        asyncio.run(fixed())
        harness.assert_state("myapp/valve/state", {"open": True})
    finally:
        asyncio.set_event_loop_policy(None)
