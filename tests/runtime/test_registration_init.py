"""``init=``: a synchronous factory run before each start of a device, its result injected."""

from __future__ import annotations

import logging
import re
from types import SimpleNamespace
from typing import Any

import attrs
import pytest
import trio

from triolette import App, DeviceContext, DeviceStore, MemoryStore, RegistrationError
from triolette.runtime.supervisor import RestartLimit
from triolette.testing import AppHarness


class Bus:
    """An adapter's port: the serial bus the sensors hang on."""

    def __init__(self) -> None:
        self.opened = 0


@attrs.define
class Filter:
    """What an init builds for its handler: a smoothing filter over one sensor."""

    pin: int
    last: float | None = None

    def smooth(self, value: float) -> float:
        self.last = value if self.last is None else (self.last + value) / 2
        return self.last


@attrs.frozen
class Sensor:
    """A per-device configuration."""

    pin: int


async def test_the_init_result_is_injected_by_its_type_and_lives_as_long_as_the_actor(
    autojump_clock,
):
    harness = AppHarness.create(store=MemoryStore())
    app = harness.app
    bus = Bus()
    app.adapter(Bus, lambda: bus)
    app.settings = SimpleNamespace(sensors={"left": Sensor(pin=2)})
    built: list[Filter] = []

    def make_filter(sensor: Sensor, bus: Bus, store: DeviceStore, log: logging.Logger) -> Filter:
        bus.opened += 1
        store["built"] = store.get("built", 0) + 1
        built.append(Filter(sensor.pin))
        return built[-1]

    readings = iter([10.0, 20.0])

    @app.telemetry(lambda s: s.sensors, interval=10, init=make_filter)
    async def temperature(smoother: Filter) -> dict[str, object]:
        return {"pin": smoother.pin, "celsius": smoother.smooth(next(readings))}

    await harness.run(cycles=2)

    assert harness.broker.payloads("testapp/left/state") == [
        {"pin": 2, "celsius": 10.0},
        {"pin": 2, "celsius": 15.0},  # one filter across the cycles
    ]
    assert len(built) == 1
    assert bus.opened == 1
    assert app.telemetry_registrations[0].init is make_filter
    assert app.telemetry_registrations[0].has_init


async def test_init_runs_again_before_each_restart_of_the_device(autojump_clock):
    harness = AppHarness.create()
    starts: list[Filter] = []
    seen: list[int] = []

    def make_filter() -> Filter:
        starts.append(Filter(pin=len(starts)))
        return starts[-1]

    @harness.app.device("motor", init=make_filter)
    async def motor(smoother: Filter) -> None:
        seen.append(smoother.pin)
        if len(seen) < 3:
            raise OSError("bus glitch")

    await harness.run()
    assert seen == [0, 1, 2]  # each start got the filter built for it
    assert harness.app.statistics().restarts == {"motor": 2}


async def test_a_failing_init_fails_the_start_and_the_restart_policy_applies(autojump_clock):
    harness = AppHarness.create(restart_limit=RestartLimit(restarts=100, escalate="device"))
    attempts = 0
    handled: list[str] = []

    def connect() -> Filter:
        nonlocal attempts
        attempts += 1
        if attempts < 3:
            raise ConnectionRefusedError("sensor not answering")
        return Filter(pin=1)

    @harness.app.device("sensor", init=connect)
    async def sensor(smoother: Filter) -> None:
        handled.append("ran")

    def refuse() -> None:
        raise OSError("no")

    @harness.app.device("once", init=refuse, restart="temporary")
    async def once() -> None:
        handled.append("once")

    await harness.run()

    assert attempts == 3
    assert handled == ["ran"]  # the handlers never ran while their init failed
    stats = harness.app.statistics()
    assert stats.crashes == {"sensor": 2, "once": 1}
    assert stats.failed["once"] == "no"  # a temporary device: not restarted
    errors = [e["type"] for e in harness.errors("sensor")]
    assert errors == ["ConnectionRefusedError"]  # the repeat is counted, not published again
    assert harness.broker.payloads("testapp/sensor/availability")[-1] == "offline"


async def _handler() -> None: ...


async def _async_init() -> Filter:
    return Filter(1)


class _AsyncCall:
    async def __call__(self) -> Filter:
        return Filter(1)


async def _generator_init() -> Any:
    yield Filter(1)


@pytest.mark.parametrize(
    ("init", "problem"),
    [
        (_async_init, ", not async"),
        (_AsyncCall(), ", not async"),
        (_generator_init, "$"),
        (42, "$"),
    ],
)
def test_an_async_init_is_refused_at_registration(init, problem):
    app = App("bridge")
    with pytest.raises(
        RegistrationError, match=rf"pump: init .* must be a plain \(synchronous\) function{problem}"
    ):
        app.device("pump", init=init)(_handler)


def _returns_context() -> DeviceContext: ...  # type: ignore[empty-body]


def _returns_dict() -> dict[str, int]:
    return {}


@pytest.mark.parametrize("init", [_returns_context, _returns_dict])
def test_an_init_annotated_to_return_what_no_handler_could_ask_for_is_refused(init):
    app = App("bridge")
    with pytest.raises(RegistrationError, match="pump: init= is annotated to return"):
        app.device("pump", init=init)(_handler)


def test_an_init_whose_parameter_cannot_be_injected_is_refused_at_registration():
    app = App("bridge")

    def make(count: int) -> Filter:
        return Filter(count)

    with pytest.raises(RegistrationError, match=r"pump: init .*make.*parameter 'count'"):
        app.device("pump", init=make)(_handler)


def test_an_init_taking_the_store_needs_an_app_with_a_store():
    app = App("bridge")

    def make(store: DeviceStore) -> Filter:
        return Filter(1)

    with pytest.raises(RegistrationError, match="pump: the handler takes a DeviceStore"):
        app.device("pump", init=make)(_handler)


@pytest.mark.parametrize(
    ("result", "problem"),
    [
        ({"pin": 1}, r"is a dict; a handler cannot ask for a built-in type"),
        (Bus(), r"is a Bus, which this device's scope already provides"),
    ],
)
async def test_an_init_result_that_cannot_be_provided_fails_the_start(
    autojump_clock, result, problem
):
    harness = AppHarness.create()
    harness.app.adapter(Bus, Bus)

    @harness.app.device("pump", init=lambda: result, restart="temporary")
    async def pump() -> None: ...

    await harness.run()
    (error,) = harness.errors("pump")
    assert error["type"] == "RegistrationError"
    assert error["message"].startswith("pump: the result of init=")
    assert re.search(problem, error["message"]), error["message"]


async def test_handler_needs_are_checked_before_start_except_what_the_init_provides(
    autojump_clock,
):
    harness = AppHarness.create()

    def make() -> Filter:
        return Filter(3)

    @harness.app.device("pump", init=make)
    async def pump(smoother: Filter, bus: Bus) -> None: ...

    with pytest.raises(RegistrationError, match=r"pump: handler .*'bus' asks for Bus"):
        await harness.run()


async def test_a_handler_asking_for_an_unannotated_inits_result_gets_it(autojump_clock):
    harness = AppHarness.create()
    got: list[int] = []

    @harness.app.device("pump", init=lambda: Filter(9))
    async def pump(smoother: Filter) -> None:
        got.append(smoother.pin)

    await harness.run()
    assert got == [9]


async def test_an_init_may_take_the_context(autojump_clock):
    harness = AppHarness.create()
    names: list[str] = []

    def make(ctx: DeviceContext) -> None:
        names.append(ctx.name)

    @harness.app.command("valve", init=make)
    async def valve() -> None: ...

    async with harness.serving():
        await trio.testing.wait_all_tasks_blocked()
    assert names == ["valve"]
