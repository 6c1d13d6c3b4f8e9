"""Adapters: hardware clients the App builds, enters before the devices and exits after them."""

from __future__ import annotations

import asyncio

import pytest
import sniffio

from triolette import DeviceContext, RegistrationError
from triolette.testing import AppHarness


class Meter:
    """A trio-flavoured adapter that records its life."""

    def __init__(self, log: list[str]) -> None:
        self.log = log
        self.open = False

    async def __aenter__(self) -> Meter:
        self.log.append("enter")
        self.open = True
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        self.log.append("exit")
        self.open = False

    def read(self) -> int:
        assert self.open, "used outside its context"
        self.log.append("read")
        return 7


class AsyncioBus:
    """An asyncio-only client (it awaits asyncio.sleep to open, read and close)."""

    def __init__(self, log: list[str]) -> None:
        self.log = log

    async def __aenter__(self) -> AsyncioBus:
        await asyncio.sleep(0.5)
        self.log.append(f"enter in {sniffio.current_async_library()}")
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await asyncio.sleep(0.5)
        self.log.append(f"exit in {sniffio.current_async_library()}")

    async def read(self) -> int:
        await asyncio.sleep(0.1)
        self.log.append("read")
        return 42


class Broken:
    """An adapter whose port is missing."""

    async def __aenter__(self) -> Broken:
        raise OSError("no such serial port: /dev/ttyUSB9")

    async def __aexit__(self, *exc_info: object) -> None:
        raise AssertionError("never entered, so never exited")


async def test_an_adapter_is_entered_before_the_devices_and_exited_after_them(autojump_clock):
    harness = AppHarness.create()
    log: list[str] = []
    harness.app.adapter(Meter, lambda: Meter(log))

    @harness.app.telemetry("gas", interval=10)
    async def gas(meter: Meter, ctx: DeviceContext) -> dict[str, object]:
        return {"impulses": meter.read()}

    await harness.run(cycles=2)
    assert log == ["enter", "read", "read", "exit"]
    assert harness.states("gas") == [{"impulses": 7}, {"impulses": 7}]


async def test_an_adapter_that_is_not_a_context_manager_is_injected_as_built(autojump_clock):
    harness = AppHarness.create()
    built: list[dict[str, int]] = []

    def make() -> dict[str, int]:
        built.append({"calls": 0})
        return built[-1]

    harness.app.adapter(dict, make)

    @harness.app.telemetry("counter", interval=1)
    async def counter(state: dict) -> None:  # type: ignore[type-arg]
        state["calls"] += 1

    await harness.run(cycles=3)
    assert built == [{"calls": 3}]  # one instance, built once, shared by every cycle


async def test_an_asyncio_adapter_lives_in_the_apps_loop(autojump_clock):
    harness = AppHarness.create()
    log: list[str] = []
    harness.app.adapter(AsyncioBus, lambda: AsyncioBus(log), asyncio=True)

    @harness.app.telemetry("probe", interval=10, asyncio=True)
    async def probe(bus: AsyncioBus) -> dict[str, object]:
        return {"value": await bus.read()}

    await harness.run(cycles=1)
    assert log == ["enter in asyncio", "read", "exit in asyncio"]
    assert harness.states("probe") == [{"value": 42}]


async def test_an_adapter_that_fails_to_open_stops_the_start_and_no_device_runs(autojump_clock):
    harness = AppHarness.create()
    ran: list[str] = []

    harness.app.adapter(Broken, Broken)

    @harness.app.telemetry("sensor", interval=1)
    async def sensor(port: Broken) -> None:
        ran.append("sensor")

    with pytest.raises(OSError, match="ttyUSB9"):
        await harness.run(cycles=1)
    assert ran == []


async def test_a_handler_taking_an_unregistered_adapter_is_refused_before_any_device_runs(
    autojump_clock,
):
    harness = AppHarness.create()
    ran: list[str] = []

    @harness.app.telemetry("gas", interval=10)
    async def gas(meter: Meter) -> None:
        ran.append("gas")

    with pytest.raises(RegistrationError, match=r"gas: .*'meter' asks for Meter, which nothing"):
        await harness.run(cycles=1)
    assert ran == []


async def test_an_adapter_registered_after_its_handler_is_injected(autojump_clock):
    harness = AppHarness.create()
    seen: list[bool] = []

    @harness.app.telemetry("gas", interval=10)
    async def gas(meter: Meter) -> None:
        seen.append(meter.open)

    harness.app.adapter(Meter, lambda: Meter([]))
    await harness.run(cycles=1)
    assert seen == [True]


async def test_an_optional_port_nothing_provides_is_left_at_its_default(autojump_clock):
    harness = AppHarness.create()
    seen: list[object] = []
    spare_meter = Meter(["spare"])

    @harness.app.telemetry("gas", interval=10)
    async def gas(meter: Meter | None, spare: Meter = spare_meter) -> None:
        seen.extend([meter, spare.log])

    await harness.run(cycles=1)
    assert seen == [None, ["spare"]]


def test_an_adapter_is_registered_once():
    harness = AppHarness.create()
    harness.app.adapter(Meter, lambda: Meter([]))
    with pytest.raises(RegistrationError, match="already registered"):
        harness.app.adapter(Meter, lambda: Meter([]))


# -- the cosalette forms: a mapping, dry-run twins, lazy strings, settings -------------------


class SerialMeter:
    """The real driver: must never be built in a dry run."""

    def __init__(self) -> None:
        raise AssertionError("the real driver was built in a dry run")


class FakeMeter:
    """The dry-run twin, imported lazily by its 'module:Class' reference."""

    def __init__(self, settings: MeterSettings) -> None:
        self.port = settings.port

    def read(self) -> int:
        return 3


class MeterSettings:
    def __init__(self, port: str) -> None:
        self.port = port


async def test_a_dry_run_picks_the_twin_given_as_a_lazy_string(autojump_clock):
    harness = AppHarness.create(
        adapters={SerialMeter: (SerialMeter, "tests.runtime.test_adapters:FakeMeter")},
        dry_run=True,
    )
    harness.app.settings = MeterSettings("/dev/ttyUSB3")

    @harness.app.telemetry("gas", interval=10)
    async def gas(meter: SerialMeter, ctx: DeviceContext) -> dict[str, object]:
        assert ctx.adapter(SerialMeter) is meter
        return {"kind": type(meter).__name__, "port": meter.port}

    await harness.run(cycles=1)
    assert harness.states("gas") == [{"kind": "FakeMeter", "port": "/dev/ttyUSB3"}]


async def test_without_a_dry_run_the_real_implementation_is_built(autojump_clock):
    built: list[str] = []

    def real() -> Meter:
        built.append("real")
        return Meter([])

    harness = AppHarness.create(adapters={Meter: (real, FakeMeter)})

    @harness.app.telemetry("gas", interval=10)
    async def gas(meter: Meter) -> None: ...

    await harness.run(cycles=1)
    assert built == ["real"]


async def test_a_lazy_string_that_does_not_import_is_named_at_start(autojump_clock):
    harness = AppHarness.create(adapters={Meter: "tests.runtime.no_such_module:Meter"})
    ran: list[str] = []

    @harness.app.telemetry("gas", interval=10)
    async def gas(meter: Meter) -> None:
        ran.append("gas")

    with pytest.raises(
        RegistrationError,
        match=r"adapter Meter: cannot import 'tests.runtime.no_such_module:Meter'",
    ):
        await harness.run(cycles=1)
    assert ran == []
    harness = AppHarness.create(adapters={Meter: "tests.runtime.test_adapters:NoSuchMeter"})
    harness.app.telemetry("gas", interval=10)(gas)
    with pytest.raises(RegistrationError, match=r"has no 'NoSuchMeter'"):
        await harness.run(cycles=1)


@pytest.mark.parametrize("reference", ["no_colon", ":Meter", "module:", 42])
def test_a_malformed_implementation_is_refused_at_registration(reference):
    harness = AppHarness.create()
    with pytest.raises(RegistrationError, match=r"^adapter Meter: "):
        harness.app.adapter(Meter, reference)


def test_a_constructor_parameter_without_annotation_is_refused_at_registration():
    class Loose:
        def __init__(self, port) -> None:
            self.port = port

    harness = AppHarness.create()
    with pytest.raises(RegistrationError, match=r"parameter 'port' needs an annotation"):
        harness.app.adapter(Meter, Loose)


async def test_a_constructor_asking_for_what_nothing_provides_is_named(autojump_clock):
    harness = AppHarness.create(adapters={FakeMeter: FakeMeter})  # no settings

    @harness.app.telemetry("gas", interval=10)
    async def gas(meter: FakeMeter) -> None: ...

    with pytest.raises(
        RegistrationError, match=r"adapter FakeMeter: FakeMeter: parameter 'settings' asks for"
    ):
        await harness.run(cycles=1)
