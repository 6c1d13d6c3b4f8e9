"""AppHarness as a ported cosalette test uses it: keyword construction, full-topic assertions,
injected commands, virtual time through a FakeClock (trio tests; asyncio ones are elsewhere)."""

from __future__ import annotations

import json

import pytest
import trio
import trio.testing

from tests.runtime import thermo_app
from triolette import App, MemoryStore, Settings, setting_ref
from triolette.testing import AppHarness, FakeClock, MockMqttClient, make_settings


def sensor_and_valve(app: App) -> App:
    reads = 0

    @app.telemetry("sensor", interval=60)
    async def sensor() -> dict[str, object]:
        nonlocal reads
        reads += 1
        return {"reads": reads, "unit": "C"}

    @app.command("valve")
    async def valve(payload: str) -> dict[str, object]:
        return {"open": json.loads(payload)["open"], "limits": [0, 100]}

    return app


async def test_keyword_construction_runs_a_copy_on_the_mock_until_the_shutdown_event(fake_clock):
    app = sensor_and_valve(App("myapp", store=MemoryStore()))
    mqtt, stop = MockMqttClient(), trio.Event()
    harness = AppHarness(app=app, mqtt=mqtt, clock=fake_clock, shutdown_event=stop)

    async with trio.open_nursery() as nursery:
        nursery.start_soon(harness.run)
        await harness.inject_command("valve", {"open": True})
        await harness.advance_time(120)  # no cycles= and a shutdown event: serves on
        harness.trigger_shutdown()

    assert stop.is_set()
    assert harness.app is not app
    assert app.transport is None
    assert app.running is None
    assert harness.mqtt is mqtt
    assert harness.clock is fake_clock
    harness.assert_state("myapp/valve/state", {"open": True})
    assert [json.loads(p)["reads"] for p, _, _ in mqtt.get_messages_for("myapp/sensor/state")] == [
        1,
        2,
        3,
    ]
    harness.assert_subscribed("myapp/valve/set")


async def test_a_shutdown_event_set_elsewhere_stops_the_run(autojump_clock):
    stop = trio.Event()
    harness = AppHarness(app=sensor_and_valve(App("myapp")), shutdown_event=stop)

    async with trio.open_nursery() as nursery:
        nursery.start_soon(harness.run)
        await harness.wait_for_publish_count("myapp/sensor/state", 1)
        await trio.sleep(600)
        stop.set()
    assert len(harness.messages_for("myapp/sensor/state")) == 11
    harness.assert_published("myapp/status", contains="offline")  # the goodbye went out


async def test_a_module_level_app_under_keywords_keeps_its_own_store(autojump_clock):
    harness = AppHarness(app=thermo_app.app, mqtt=MockMqttClient())
    assert harness.app.store is thermo_app.app.store
    assert thermo_app.app.transport is not harness.mqtt


class PollSettings(Settings):
    """An app's settings, as cosalette bridges declare theirs."""

    poll_seconds: float = 60.0


async def test_settings_given_to_the_harness_reach_the_handlers_of_the_copy(autojump_clock):
    app = App("myapp", settings_class=PollSettings)
    seen: list[float] = []

    @app.telemetry("sensor", interval=setting_ref("poll_seconds"))
    async def sensor(settings: PollSettings) -> None:
        seen.append(settings.poll_seconds)

    harness = AppHarness(app=app, settings=make_settings(PollSettings, poll_seconds=5))
    await harness.run(cycles=2)

    assert seen == [5.0, 5.0]
    assert harness.clock is not None
    assert harness.clock.now() == 5.0  # the second cycle came after the settings' 5 s
    assert app.settings.poll_seconds == 60.0  # the app itself is not changed
    assert AppHarness(app=app).settings is app.settings


def test_a_broker_and_an_mqtt_client_on_another_broker_are_refused():
    from triolette.testing import MemoryBroker

    with pytest.raises(ValueError, match="not both"):
        AppHarness(App("myapp"), MemoryBroker(), mqtt=MockMqttClient())


# -- the assertions -------------------------------------------------------------------------------


@pytest.fixture
async def ran(autojump_clock) -> AppHarness:
    harness = AppHarness.create(name="myapp", store=MemoryStore())
    sensor_and_valve(harness.app)
    async with harness.serving():
        await harness.inject_command("valve", '{"open": false}')
        await harness.mqtt.publish("myapp/valve/note", "not retained")
        await harness.mqtt.publish("myapp/valve/state", {"open": "maybe"})  # not retained
    return harness


async def test_assert_state_matches_a_retained_deep_subset(ran):
    ran.assert_state("myapp/valve/state", {"open": False})
    ran.assert_state("myapp/valve/state", {"open": False, "limits": [0, 100]}, count=1)
    ran.assert_state("valve", {"open": False})  # a device name is its state topic
    ran.assert_state("myapp/sensor/state", {"unit": "C"})


async def test_assert_state_says_what_was_published_instead(ran):
    with pytest.raises(AssertionError, match=r"myapp/valve/state: expected a retained publish"):
        ran.assert_state("myapp/valve/state", {"open": True})
    with pytest.raises(AssertionError, match=r"2 retained publishes .* 1 found"):
        ran.assert_state("myapp/valve/state", {"open": False}, count=2)
    with pytest.raises(AssertionError, match="expected a retained publish"):
        ran.assert_state("myapp/valve/state", {"limits": [0]})
    with pytest.raises(AssertionError, match=r"other topics: \[.*'myapp/sensor/state'"):
        ran.assert_state("myapp/pump/state", {})


async def test_assert_state_tells_a_match_that_was_not_retained(ran):
    with pytest.raises(AssertionError, match=r"matches .*'maybe'.* but was not retained"):
        ran.assert_state("myapp/valve/state", {"open": "maybe"})


async def test_assert_published_and_subscribed(ran):
    ran.assert_published("myapp/valve/note")
    ran.assert_published("myapp/valve/note", contains="retained", count=1)
    ran.assert_published("myapp/valve/state", count=2)
    ran.assert_subscribed("myapp/valve/set")
    with pytest.raises(AssertionError, match=r"myapp/valve/note: expected a publish containing"):
        ran.assert_published("myapp/valve/note", contains="urgent")
    with pytest.raises(AssertionError, match="expected 3 publishes, 2 found"):
        ran.assert_published("myapp/valve/state", count=3)
    with pytest.raises(AssertionError, match="no subscription to 'myapp/pump/set'"):
        ran.assert_subscribed("myapp/pump/set")


async def test_snapshots_of_what_was_published(ran):
    assert ran.last_published() == ran.published()[-1]
    assert ran.published()[-1][0] == "myapp/status"  # the graceful goodbye comes last
    assert ran.messages_for("myapp/valve/note") == [("not retained", False, 1)]
    assert ran.published() is not ran.mqtt.published
    assert AppHarness.create().last_published() is None


async def test_inject_command_takes_a_full_topic_and_the_root_topic(autojump_clock):
    harness = AppHarness.create(name="myapp")
    sensor_and_valve(harness.app)
    async with harness.serving():
        await harness.inject_command("ignored", '{"open": true}', topic="myapp/valve/set")
        with pytest.raises(LookupError, match="takes commands as 'myapp'"):
            await harness.inject_command(None, "on")  # no root entity to take myapp/set
    harness.assert_state("myapp/valve/state", {"open": True})


async def test_wait_for_publish_count_never_moves_time(fake_clock):
    harness = AppHarness.create(name="myapp")
    sensor_and_valve(harness.app)
    async with harness.serving():
        await harness.wait_for_publish_count("myapp/sensor/state", 1)
        with pytest.raises(RuntimeError, match="1 publishes after 50 rounds, expected 2"):
            await harness.wait_for_publish_count("myapp/sensor/state", 2, max_rounds=50)
        assert fake_clock.now() == 0
        fake_clock.advance(60)
        await harness.wait_for_publish_count("myapp/sensor/state", 2)


# -- time -----------------------------------------------------------------------------------------


async def test_advance_time_fires_every_deadline_on_the_way_in_order(fake_clock):
    harness = AppHarness.create(name="myapp")
    sensor_and_valve(harness.app)
    async with harness.serving():
        await harness.wait_for_publish_count("myapp/sensor/state", 1)
        await harness.advance_time(600)
        assert fake_clock.now() == 600
    assert len(harness.messages_for("myapp/sensor/state")) == 11


async def test_a_plain_jump_fires_what_is_due_once(fake_clock):
    harness = AppHarness.create(name="myapp")
    sensor_and_valve(harness.app)
    async with harness.serving():
        await harness.wait_for_publish_count("myapp/sensor/state", 1)
        fake_clock.advance(600)  # one jump: the sensor's next tick is due, once
        await harness.settle()
    assert len(harness.messages_for("myapp/sensor/state")) == 2


async def test_advance_time_under_autojump_sleeps_virtual_time(autojump_clock):
    harness = AppHarness.create(name="myapp")
    sensor_and_valve(harness.app)
    async with harness.serving():
        await harness.advance_time(120)
    assert len(harness.messages_for("myapp/sensor/state")) == 3
    assert isinstance(harness.clock, FakeClock)
    assert harness.clock.trio_clock is autojump_clock  # the run's clock, adopted


async def test_a_clock_that_is_not_the_runs_is_refused(autojump_clock):
    harness = AppHarness(app=sensor_and_valve(App("myapp")), clock=FakeClock())
    with pytest.raises(ValueError, match="not the clock of this trio run"):
        await harness.run()


async def test_an_asyncio_event_in_a_trio_test_is_refused():
    import asyncio

    harness = AppHarness(app=sensor_and_valve(App("myapp")), shutdown_event=asyncio.Event())
    with pytest.raises(TypeError, match=r"asyncio\.Event as shutdown_event needs an asyncio test"):
        await harness.run()


async def test_a_command_or_delivery_without_a_run_says_so_instead_of_waiting(autojump_clock):
    harness = AppHarness.create(name="myapp")
    sensor_and_valve(harness.app)
    with pytest.raises(RuntimeError, match=r"'myapp' is not running: start harness\.run"):
        await harness.inject_command("valve", {"open": True})
    with pytest.raises(RuntimeError, match="'myapp' is not running"):
        await harness.mqtt.deliver("myapp/valve/set", {"open": True})
