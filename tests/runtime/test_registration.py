"""Registration: optional names, add_*, enabled=, metadata and what the app tells about it."""

from __future__ import annotations

import importlib.util
import logging
import re
import sys
import types
from pathlib import Path

import pytest
import trio

from triolette import App, DeviceContext, DeviceStore, MemoryStore, RegistrationError, SaveOnChange
from triolette.core.kinds import DeviceKind
from triolette.testing import AppHarness


def a_bridge() -> App:
    """An app registered the way a cosalette bridge's tests read it back."""
    app = App("bridge", store=MemoryStore(), description="Boiler and valves")

    @app.telemetry(
        "boiler",
        interval=30,
        persist=SaveOnChange(),
        summary="Boiler temperatures",
        behavior=["polls the boiler every 30 s"],
        tags=["heating"],
    )
    async def boiler(store: DeviceStore) -> dict[str, object]:
        return {"celsius": 61}

    @app.command("valve", effects=["opens or closes the valve"])
    async def valve(payload: str) -> None: ...

    @app.device(summary="The whole house")
    async def house(ctx: DeviceContext) -> None: ...

    return app


# -- introspection ------------------------------------------------------------------------------


def test_an_app_lists_its_registrations_by_kind_with_their_options_and_metadata():
    app = a_bridge()

    assert app.description == "Boiler and valves"
    (boiler,) = app.telemetry_registrations
    assert (boiler.name, boiler.interval, boiler.is_root, boiler.init) == (
        "boiler",
        30,
        False,
        None,
    )
    assert boiler.func.__name__ == "boiler"
    assert boiler.enabled is True
    assert isinstance(boiler.persist_policy, SaveOnChange)
    assert boiler.summary == "Boiler temperatures"
    assert boiler.behavior == ("polls the boiler every 30 s",)
    assert boiler.tags == ("heating",)
    assert [c.name for c in app.commands] == ["valve"]
    assert app.commands[0].effects == ("opens or closes the valve",)
    assert [(d.name, d.is_root, d.kind) for d in app.devices] == [
        ("house", True, DeviceKind.DEVICE)
    ]
    assert app.registered_names == {"boiler", "valve", "house"}
    assert app.root_names == {"house"}
    assert app.device_names == ["boiler", "valve", "house"]
    assert not app.has_dynamic_entities


def test_the_registration_lists_are_snapshots():
    app = a_bridge()
    devices = app.devices

    @app.device("pump")
    async def pump() -> None: ...

    assert [d.name for d in devices] == ["house"]
    assert [d.name for d in app.devices] == ["house", "pump"]


@pytest.mark.parametrize(
    ("option", "value"),
    [("summary", 3), ("behavior", "one string"), ("effects", [1]), ("tags", 5)],
)
def test_metadata_of_the_wrong_shape_is_refused_naming_the_device(option, value):
    app = App("bridge")
    with pytest.raises(RegistrationError, match=rf"pump: {option}=.* is not a"):
        app.device("pump", **{option: value})


# -- names --------------------------------------------------------------------------------------


@pytest.mark.parametrize("kind", ["device", "command"])
def test_a_decorator_used_without_parentheses_is_a_type_error(kind):
    app = App("bridge")

    async def handler() -> None: ...

    with pytest.raises(TypeError, match=rf"@app.{kind} needs parentheses"):
        getattr(app, kind)(handler)


def test_an_app_has_at_most_one_root_entity():
    app = App("bridge")

    @app.telemetry(interval=5)
    async def sensor() -> None: ...

    with pytest.raises(
        RegistrationError, match=r"^(pump: )?an app has at most one root entity.*sensor' is one"
    ):
        app.command()
    with pytest.raises(
        RegistrationError, match=r"^(pump: )?an app has at most one root entity.*sensor' is one"
    ):
        app.add_device("pump", sensor, is_root=True)


def test_a_root_entity_is_named_after_its_function_which_must_be_a_valid_name():
    app = App("bridge")

    async def handler() -> None: ...

    handler.__name__ = "bad/name"
    with pytest.raises(RegistrationError, match=r"'bad/name' contains '/'"):
        app.device()(handler)


def test_a_root_name_clashes_with_a_named_device():
    app = App("bridge")

    @app.device("pump")
    async def pump() -> None: ...

    with pytest.raises(RegistrationError, match="pump: a device of that name is already"):
        app.add_command("pump", pump, is_root=True)


def test_a_name_that_is_neither_str_nor_callable_is_refused():
    app = App("bridge")
    with pytest.raises(RegistrationError, match=r"name=42 is not a str, None or a callable"):
        app.device(42)  # type: ignore[arg-type]


# -- add_* ----------------------------------------------------------------------------------------


async def test_add_registers_like_the_decorators_root_included(autojump_clock):
    harness = AppHarness.create()
    app = harness.app
    handled: list[str] = []

    async def read() -> dict[str, object]:
        return {"celsius": 20}

    async def switch(payload: str) -> None:
        handled.append(payload)

    app.add_telemetry("sensor", read, interval=60, summary="temperature")
    app.add_command("relay", switch, is_root=True)

    assert app.telemetry_registrations[0].summary == "temperature"
    assert app.root_names == {"relay"}
    async with harness.serving():
        await harness.command("relay", "on")
    assert handled == ["on"]
    assert harness.broker.payloads("testapp/sensor/state") == [{"celsius": 20}]
    assert harness.broker.payloads("testapp/availability") == ["online", "offline"]


def test_add_applies_the_same_checks():
    app = App("bridge")

    async def read() -> None: ...

    with pytest.raises(RegistrationError, match="sensor: interval must be a positive"):
        app.add_telemetry("sensor", read, interval=-1)
    with pytest.raises(RegistrationError, match="sensor: persist= needs a store"):
        app.add_device("sensor", read, persist=SaveOnChange())
    with pytest.raises(TypeError, match="unexpected keyword argument 'colour'"):
        app.add_device("sensor", read, colour="red")


# -- enabled= -------------------------------------------------------------------------------------


def test_enabled_false_registers_nothing_and_checks_nothing():
    app = App("bridge")

    @app.device("pump")
    async def pump() -> None: ...

    @app.device("pump", enabled=False, persist=SaveOnChange())  # a clash, no store: unchecked
    def not_even_async(x) -> None: ...

    assert app.device_names == ["pump"]
    assert app.devices[0].func is pump


@pytest.mark.parametrize("value", [None, 0, "yes"])
def test_enabled_must_be_a_bool_or_a_callable(value):
    app = App("bridge")
    with pytest.raises(RegistrationError, match=rf"pump: enabled={value!r} is not a bool"):
        app.device("pump", enabled=value)


async def test_a_callable_enabled_is_decided_by_the_settings_at_serve_start(autojump_clock):
    harness = AppHarness.create()
    app = harness.app

    class Settings:
        debug = False

    app.settings = Settings()

    @app.telemetry("magnetometer", interval=10, enabled=lambda s: s.debug)
    async def magnetometer() -> dict[str, object]:
        return {"field": 1}

    @app.telemetry("thermometer", interval=10)
    async def thermometer() -> dict[str, object]:
        return {"celsius": 20}

    assert app.has_dynamic_entities
    assert app.device_names == ["thermometer"]  # the other is only known at serve start
    assert [t.name for t in app.telemetry_registrations] == ["magnetometer", "thermometer"]
    await harness.run()
    assert harness.broker.payloads("testapp/magnetometer/state") == []
    assert harness.broker.payloads("testapp/thermometer/state") == [{"celsius": 20}]

    Settings.debug = True
    await harness.run()
    assert harness.broker.payloads("testapp/magnetometer/state") == [{"field": 1}]


async def test_two_registrations_of_one_name_are_fine_when_the_settings_enable_one(
    autojump_clock,
):
    harness = AppHarness.create()
    app = harness.app

    class Settings:
        v2 = True

    app.settings = Settings()

    @app.telemetry("meter", interval=10, enabled=lambda s: not s.v2)
    async def meter_v1() -> dict[str, object]:
        return {"version": 1}

    @app.telemetry("meter", interval=10, enabled=lambda s: s.v2)
    async def meter_v2() -> dict[str, object]:
        return {"version": 2}

    await harness.run()
    assert harness.broker.payloads("testapp/meter/state") == [{"version": 2}]

    Settings.v2 = None  # type: ignore[assignment]
    with pytest.raises(RegistrationError, match=r"meter: enabled= returned None, not a bool"):
        await harness.run()


async def test_two_enabled_registrations_of_one_name_fail_at_serve_start_naming_both(
    autojump_clock,
):
    harness = AppHarness.create()
    app = harness.app
    app.settings = object()

    @app.telemetry("meter", interval=10, enabled=lambda s: True)
    async def meter_v1() -> None: ...

    @app.telemetry("meter", interval=10)
    async def meter_v2() -> None: ...

    with pytest.raises(
        RegistrationError, match=r"meter: two devices .*meter_v1'.* and from .*meter_v2'"
    ):
        await harness.run()


async def test_an_enabled_callable_that_raises_names_the_option(autojump_clock):
    harness = AppHarness.create()
    harness.app.settings = None

    @harness.app.device("pump", enabled=lambda s: s.pump.enabled)
    async def pump() -> None: ...

    with pytest.raises(RegistrationError, match=r"pump: enabled: .* failed: 'NoneType'"):
        await harness.run()


def test_mixing_a_root_entity_and_named_devices_warns_once_per_serve(caplog):
    app = App("bridge")

    @app.device()
    async def house() -> None: ...

    @app.device("pump")
    async def pump() -> None: ...

    from triolette.runtime.expansion import expand

    with caplog.at_level(logging.WARNING, logger="triolette.app"):
        expand(app.registry.registrations, None)
    warnings = [r.getMessage() for r in caplog.records]
    assert len(warnings) == 1
    assert "house is a root entity" in warnings[0]
    assert "<prefix>/+/state" in warnings[0]


# -- the guide's example --------------------------------------------------------------------------


def _guide_example(tmp_path: Path) -> types.ModuleType:
    """The "Registering devices" example of docs/runtime.md, imported as a module."""
    text = (Path(__file__).parents[2] / "docs" / "runtime.md").read_text()
    section = text.split("## Registering devices", 1)[1]
    body = re.findall(r"```python\n(.*?)```", section, re.DOTALL)[0]
    assert body.startswith("# rooms_bridge.py")
    path = tmp_path / "rooms_bridge.py"
    path.write_text(body)
    spec = importlib.util.spec_from_file_location("rooms_bridge", path)
    assert spec is not None
    assert spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules["rooms_bridge"] = module  # dataclasses look their module up
    try:
        spec.loader.exec_module(module)
    finally:
        del sys.modules["rooms_bridge"]
    return module


async def test_the_registering_devices_example_runs_as_documented(autojump_clock, tmp_path):
    bridge = _guide_example(tmp_path)
    harness = AppHarness.create(app=bridge.app)

    assert harness.app.root_names == {"house"}
    async with harness.serving():
        await harness.command("house", "eco")
        await trio.sleep(31)  # the attic polls every 30 s, the kitchen every 60 s
    assert harness.broker.payloads("rooms/state") == [{"mode": "eco"}]
    assert harness.broker.payloads("rooms/kitchen/state") == [{"pin": 4, "celsius": 24.0}]
    assert harness.broker.payloads("rooms/attic/state") == [
        {"pin": 7, "celsius": 27.0},
        {"pin": 7, "celsius": 27.0},
    ]
    assert not harness.broker.on("rooms/magnetometer/state")
    assert harness.app.store is not None
    assert harness.app.store.load("house") == {"mode": "eco"}


def test_an_interval_from_the_settings_keeps_the_device_among_the_fixed_ones():
    app = App("bridge")

    @app.telemetry("boiler", interval=lambda s: s.poll)
    async def boiler() -> None: ...

    assert app.device_names == ["boiler"]
    assert callable(app.telemetry_registrations[0].interval)
    assert not app.has_dynamic_entities  # the set of devices does not depend on the settings


def test_a_copy_of_an_app_registers_on_its_own():
    app = App("bridge")

    @app.device()
    async def house() -> None: ...

    clone = app.copy_with()

    @clone.device("pump")
    async def pump() -> None: ...

    app.add_device("pump", pump)  # the name is free on the original
    with pytest.raises(RegistrationError, match="at most one root entity"):
        clone.add_device("hall", pump, is_root=True)
    assert [d.name for d in clone.devices] == ["house", "pump"]
