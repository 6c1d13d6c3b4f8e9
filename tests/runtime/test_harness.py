"""AppHarness: commands while serving, after the run, and a module-level app under test."""

from __future__ import annotations

import threading
from collections.abc import Mapping
from pathlib import Path

import pytest
import trio
import trio.testing

from tests.runtime import thermo_app
from triolette import App, DeviceStore, MemoryStore, StoreLockedError
from triolette.testing import AppHarness


def telemetry_and_command(harness: AppHarness) -> list[str]:
    handled: list[str] = []

    @harness.app.telemetry("sensor", interval=60)
    async def sensor() -> dict[str, object]:
        return {"celsius": 20}

    @harness.app.command("valve")
    async def valve(payload: str) -> dict[str, object]:
        handled.append(payload)
        return {"position": payload}

    return handled


async def test_a_command_after_the_run_ended_says_the_app_has_stopped(autojump_clock):
    harness = AppHarness.create()
    telemetry_and_command(harness)
    await harness.run()

    with pytest.raises(RuntimeError, match=r"'valve'.*'testapp' has stopped"):
        await harness.command("valve", "open")


async def test_a_command_once_the_run_is_stopping_says_the_app_has_stopped(autojump_clock):
    harness = AppHarness.create()
    handled = telemetry_and_command(harness)

    async with trio.open_nursery() as nursery:
        nursery.start_soon(harness.run)  # one cycle of the sensor, then a shutdown
        await harness.command("valve", "open")
        with pytest.raises(RuntimeError, match=r"has stopped.*harness\.serving"):
            await harness.command("valve", "closed")
    assert handled == ["open"]


async def test_a_command_for_no_device_is_a_lookup_error(autojump_clock):
    harness = AppHarness.create()
    telemetry_and_command(harness)

    async with harness.serving():
        with pytest.raises(LookupError, match="no device of 'testapp' takes commands as 'pump'"):
            await harness.command("pump", "on")


async def test_serving_keeps_the_app_up_until_the_block_ends(autojump_clock):
    harness = AppHarness.create()
    handled = telemetry_and_command(harness)

    async with harness.serving():
        await harness.command("valve", "open")
        await trio.sleep(600)  # the sensor cycles on meanwhile
        await harness.command("valve", "closed")

    assert handled == ["open", "closed"]
    assert harness.state("valve") == {"position": "closed"}
    assert harness.app.statistics().cycles == {"sensor": 11}
    running = harness.app.running
    assert running is not None
    assert running.state is running.state.STOPPED  # the block's end shut it down


async def test_serving_raises_what_the_block_raises_not_a_group(autojump_clock):
    harness = AppHarness.create()
    telemetry_and_command(harness)

    with pytest.raises(KeyError, match="from the test"):
        async with harness.serving():
            raise KeyError("from the test")
    assert harness.app.running is not None
    assert harness.app.running.state is harness.app.running.state.STOPPED


async def test_serving_raises_an_error_of_the_start(autojump_clock):
    class Locked:
        def load(self, key: str) -> dict[str, object] | None:
            raise StoreLockedError(Path("/var/lib/thermo/state.json"), "held by another process")

        def load_all(self) -> dict[str, dict[str, object]]:
            raise StoreLockedError(Path("/var/lib/thermo/state.json"), "held by another process")

        def save(self, key: str, data: dict[str, object]) -> None: ...

        def save_many(self, states: Mapping[str, dict[str, object]]) -> None: ...

    harness = AppHarness.create(store=Locked())

    @harness.app.telemetry("sensor", interval=60)
    async def sensor(store: DeviceStore) -> None: ...

    with pytest.raises(StoreLockedError):
        async with harness.serving():
            pytest.fail("the block runs only once the app is serving")


# -- a module-level app -------------------------------------------------------------------------


@pytest.mark.parametrize("run", [1, 2])
async def test_a_module_level_app_runs_under_the_harness_and_stays_unchanged(autojump_clock, run):
    app: App = thermo_app.app
    store, transport, topics = app.store, app.transport, app.topics
    backend = MemoryStore({"setpoint": {"celsius": 18.0}})
    harness = AppHarness.create(app=thermo_app.app, store=backend)

    async with harness.serving():
        await harness.command("setpoint", '{"celsius": 21}')

    assert harness.state("setpoint") == {"celsius": 21.0}
    assert harness.state("sensor") == {"celsius": 21.5, "reads": 1}
    assert backend.load("sensor") == {"reads": 1}  # each test starts from its own store
    assert backend.load("setpoint") == {"celsius": 21.0}
    assert (app.store, app.transport, app.topics) == (store, transport, topics)
    assert app.running is None
    assert app.device_names == ["sensor", "setpoint"]


def test_devices_declared_on_the_harness_copy_stay_off_the_module_app():
    harness = AppHarness.create(app=thermo_app.app)

    @harness.app.telemetry("extra", interval=10)
    async def extra() -> None: ...

    assert thermo_app.app.device_names == ["sensor", "setpoint"]
    assert harness.app.device_names == ["sensor", "setpoint", "extra"]


def test_an_unknown_option_for_a_copy_is_refused_by_name():
    with pytest.raises(TypeError, match="'thermo' has no option colour"):
        AppHarness.create(app=thermo_app.app, colour="blue")


async def test_a_module_level_app_with_a_store_gets_a_memory_store_by_default(autojump_clock):
    harness = AppHarness.create(app=thermo_app.app)

    await harness.run()

    assert harness.state("sensor") == {"celsius": 21.5, "reads": 1}
    assert isinstance(harness.app.store, MemoryStore)
    assert harness.app.store.load("sensor") == {"reads": 1}


class _HeldWrites(MemoryStore):
    """A store whose batch writes wait (on the worker thread) until ``gate`` is set."""

    def __init__(self) -> None:
        super().__init__()
        self.gate = threading.Event()

    def save_many(self, states: Mapping[str, dict[str, object]]) -> None:
        self.gate.wait(10)
        super().save_many(states)


async def test_settle_waits_for_a_write_under_way(autojump_clock: trio.testing.MockClock):
    backend = _HeldWrites()
    harness = AppHarness.create(store=backend)

    @harness.app.device("counter")
    async def counter(store: DeviceStore) -> None:
        store["count"] = 1
        store.save()
        await trio.sleep_forever()

    async with harness.serving():
        await trio.testing.wait_all_tasks_blocked()  # returns with the write still held
        assert backend.load("counter") is None
        async with trio.open_nursery() as nursery:
            nursery.start_soon(harness.settle)
            await trio.testing.wait_all_tasks_blocked()
            backend.gate.set()
        assert backend.load("counter") == {"count": 1}
