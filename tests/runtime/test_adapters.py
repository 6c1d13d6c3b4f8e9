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
