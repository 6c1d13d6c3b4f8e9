"""Names expanded from the settings: one device per name, per-device configuration, clashes."""

from __future__ import annotations

import logging
from types import SimpleNamespace

import attrs
import pytest

from triolette import App, DeviceContext, DeviceStore, MemoryStore, RegistrationError, setting_ref
from triolette.testing import AppHarness


@attrs.frozen
class Room:
    """A per-device configuration, as a settings model would hold it."""

    pin: int
    every: float = 10.0
    on: bool = True


class Bus:
    """An adapter's port."""


def rooms_app(settings: object) -> AppHarness:
    """Thermometers named after the rooms in the settings, each reading its own pin."""
    harness = AppHarness.create(store=MemoryStore())
    harness.app.settings = settings

    @harness.app.telemetry(lambda s: s.rooms, interval=lambda room: room.every)
    async def thermometer(room: Room, ctx: DeviceContext, store: DeviceStore) -> dict[str, object]:
        store["reads"] = store.get("reads", 0) + 1
        return {"pin": room.pin, "device": ctx.name, "reads": store["reads"]}

    return harness


async def test_a_dict_of_names_makes_one_device_per_key_with_its_configuration(autojump_clock):
    settings = SimpleNamespace(rooms={"kitchen": Room(pin=4), "attic": Room(pin=7, every=5)})
    harness = rooms_app(settings)

    assert harness.app.device_names == []  # only known when a serve starts
    assert harness.app.has_dynamic_entities
    await harness.run(duration=10.5)

    kitchen = harness.broker.payloads("testapp/kitchen/state")
    attic = harness.broker.payloads("testapp/attic/state")
    assert [state["pin"] for state in kitchen] == [4, 4]  # at 0 and 10 s
    assert [state["pin"] for state in attic] == [7, 7, 7]  # its own interval: 0, 5, 10 s
    assert {state["device"] for state in kitchen} == {"kitchen"}
    running = harness.app.running
    assert running is not None
    assert [(s.name, s.interval) for s in running.specs] == [("kitchen", 10.0), ("attic", 5.0)]


async def test_the_store_keys_are_the_expanded_names(autojump_clock):
    store = MemoryStore()
    harness = AppHarness.create(store=store)
    harness.app.settings = SimpleNamespace(rooms={"kitchen": Room(pin=4)})

    @harness.app.telemetry(lambda s: s.rooms, interval=10)
    async def thermometer(store: DeviceStore) -> None:
        store["reads"] = store.get("reads", 0) + 1

    await harness.run()
    await harness.run()

    assert store.load("kitchen") == {"reads": 2}  # loaded back by the second run
    assert store.load("thermometer") is None


async def test_a_list_of_names_makes_one_device_per_name_and_settings_callables_get_the_settings(
    autojump_clock,
):
    harness = AppHarness.create()
    harness.app.settings = SimpleNamespace(pumps=["north", "south"], poll=7.0)
    polled: list[str] = []

    @harness.app.telemetry(lambda s: s.pumps, interval=lambda s: s.poll)
    async def pump(ctx: DeviceContext) -> None:
        polled.append(ctx.name)
        assert ctx.config is None

    await harness.run()
    assert sorted(polled) == ["north", "south"]
    running = harness.app.running
    assert running is not None
    assert [s.interval for s in running.specs] == [7.0, 7.0]


async def test_enabled_gets_each_devices_configuration(autojump_clock):
    harness = AppHarness.create()
    harness.app.settings = SimpleNamespace(
        rooms={"kitchen": Room(pin=1, on=True), "cellar": Room(pin=2, on=False)}
    )
    ran: list[str] = []

    @harness.app.device(lambda s: s.rooms, enabled=lambda room: room.on)
    async def heater(ctx: DeviceContext) -> None:
        ran.append(ctx.name)

    await harness.run()
    assert ran == ["kitchen"]


async def test_a_plain_dict_configuration_is_read_through_the_context(autojump_clock):
    harness = AppHarness.create()
    harness.app.settings = {"valves": {"v1": {"pin": 3}}}
    seen: list[object] = []

    @harness.app.device(lambda s: s["valves"])
    async def valve(ctx: DeviceContext) -> None:
        seen.append(ctx.config)

    await harness.run()
    assert seen == [{"pin": 3}]


async def test_an_expanded_name_that_clashes_with_a_static_one_names_both_registrations(
    autojump_clock,
):
    harness = AppHarness.create()
    harness.app.settings = SimpleNamespace(rooms=["kitchen", "boiler"])

    @harness.app.telemetry("boiler", interval=10)
    async def boiler() -> None: ...

    @harness.app.telemetry(lambda s: s.rooms, interval=10)
    async def thermometer() -> None: ...

    with pytest.raises(
        RegistrationError,
        match=r"^boiler: two devices of that name: from the telemetry .*boiler' and from the "
        r"telemetry .*thermometer' with name=",
    ):
        await harness.run()
    assert harness.states("boiler") == []  # refused before any device started


async def test_two_name_callables_that_give_one_name_name_both(autojump_clock):
    harness = AppHarness.create()
    harness.app.settings = SimpleNamespace(a=["x"], b={"x": 1})

    @harness.app.device(lambda s: s.a)
    async def first() -> None: ...

    @harness.app.command(lambda s: s.b)
    async def second() -> None: ...

    with pytest.raises(RegistrationError, match=r"x: two devices .*device .*first'.*command"):
        await harness.run()


async def test_one_name_twice_in_a_list_is_a_clash(autojump_clock):
    harness = AppHarness.create()
    harness.app.settings = ["a", "a"]

    @harness.app.device(lambda s: s)
    async def pump() -> None: ...

    with pytest.raises(RegistrationError, match=r"pump' with name=.*: name= gave 'a' twice"):
        await harness.run()


@pytest.mark.parametrize(
    ("produced", "error"),
    [
        ([1, 2], r"name= gave 1, which is not a str"),
        ({("a",): 1}, r"name= gave \('a',\), which is not a str"),
        ("kitchen", r"name= returned 'kitchen'; return a list of names, or a dict"),
        (None, r"name= returned None"),
        (["up/down"], r"name= gave a bad name: device name 'up/down' contains '/'"),
        (["$SYS"], r"name= gave a bad name: .* starts with '\$'"),
    ],
)
async def test_bad_names_from_the_settings_are_refused_naming_the_registration(
    autojump_clock, produced, error
):
    harness = AppHarness.create()
    harness.app.settings = produced

    @harness.app.device(lambda s: s)
    async def pump() -> None: ...

    with pytest.raises(RegistrationError, match=r"the device .*pump' with name=.*" + error):
        await harness.run()


async def test_a_name_callable_that_raises_is_a_registration_error(autojump_clock):
    harness = AppHarness.create()
    harness.app.settings = SimpleNamespace()

    @harness.app.device(lambda s: s.rooms)
    async def pump() -> None: ...

    with pytest.raises(RegistrationError, match=r"pump' with name=.*: name: .* failed: .*rooms"):
        await harness.run()


async def test_an_empty_expansion_warns_and_makes_no_device(autojump_clock, caplog):
    harness = AppHarness.create()
    harness.app.settings = SimpleNamespace(rooms={})

    @harness.app.telemetry(lambda s: s.rooms, interval=10)
    async def thermometer() -> None: ...

    @harness.app.telemetry("boiler", interval=10)
    async def boiler() -> dict[str, object]:
        return {"celsius": 60}

    with caplog.at_level(logging.WARNING, logger="triolette.app"):
        await harness.run()
    assert any("returned no names, so it makes no device" in r.getMessage() for r in caplog.records)
    assert harness.broker.payloads("testapp/boiler/state") == [{"celsius": 60}]


async def test_a_bad_interval_from_the_settings_names_the_device(autojump_clock):
    harness = AppHarness.create()
    harness.app.settings = SimpleNamespace(rooms={"attic": Room(pin=1, every=-3)})

    @harness.app.telemetry(lambda s: s.rooms, interval=lambda room: room.every)
    async def thermometer() -> None: ...

    with pytest.raises(RegistrationError, match="attic: interval must be a positive number"):
        await harness.run()


def test_a_root_entity_cannot_take_its_names_from_the_settings():
    app = App("bridge")
    with pytest.raises(RegistrationError, match="a root entity needs a fixed name"):
        app.add_device(lambda s: s.rooms, lambda: None, is_root=True)


async def test_a_configuration_of_a_type_the_app_provides_is_refused(autojump_clock):
    harness = AppHarness.create()
    bus = Bus()
    harness.app.adapter(Bus, lambda: bus)
    harness.app.settings = {"left": Bus()}

    @harness.app.device(lambda s: s)
    async def motor(bus: Bus) -> None: ...

    with pytest.raises(RegistrationError, match=r"left: its configuration .* is a .*Bus, which"):
        await harness.run()


async def test_a_setting_ref_interval_reads_the_settings_at_serve_start(autojump_clock):
    harness = AppHarness.create()
    harness.app.settings = SimpleNamespace(poll=SimpleNamespace(seconds=5))

    @harness.app.telemetry("boiler", interval=setting_ref("poll.seconds"))
    async def boiler() -> dict[str, object]:
        return {"celsius": 60}

    await harness.run(duration=10.5)
    assert len(harness.broker.payloads("testapp/boiler/state")) == 3  # at 0, 5 and 10 s
    assert harness.app.telemetry_registrations[0].interval == setting_ref("poll.seconds")
