"""Typed contracts at run time: states checked against their model, payloads parsed into theirs."""

from __future__ import annotations

import dataclasses
import logging
from collections.abc import AsyncIterator
from typing import Any

import pydantic
import pytest
import trio
import trio.testing
from typing_extensions import TypedDict

from triolette import (
    DeviceContext,
    DeviceStore,
    MemoryStore,
    PayloadValidationError,
    RegistrationError,
    ReturnValidationError,
    SaveOnChange,
    Stream,
    StreamablePort,
)
from triolette.actors import contracts, loops
from triolette.testing import AppHarness

from .test_streams import Radio
from .test_streams import Reading as RadioReading

SECRET = "s3cret-value"


class Reading(pydantic.BaseModel):
    celsius: float
    humidity: float | None = None
    label: str = "probe"


class Setpoint(pydantic.BaseModel):
    target: float = pydantic.Field(ge=5, le=30)
    mode: str = "auto"


class Gauge(pydantic.BaseModel):
    percent: int


@dataclasses.dataclass
class Level:
    percent: int


class Valve(TypedDict):
    open: bool


def no_values_in(report: dict[str, Any]) -> bool:
    return SECRET not in str(report)


# --- states ------------------------------------------------------------------------------------


async def test_a_returned_dict_is_validated_coerced_and_none_fields_are_left_out(autojump_clock):
    harness = AppHarness.create()

    @harness.app.telemetry("probe", interval=10, state_model=Reading)
    async def probe() -> dict[str, Any]:
        return {"celsius": 3, "humidity": None}

    await harness.run()
    assert harness.states("probe") == [{"celsius": 3.0, "label": "probe"}]
    assert harness.errors("probe") == []


async def test_a_returned_model_instance_is_dumped_in_json_mode(autojump_clock):
    harness = AppHarness.create()

    @harness.app.telemetry("probe", interval=10, state_model=Reading)
    async def probe() -> Reading:
        return Reading(celsius=21.5, humidity=40)

    await harness.run()
    assert harness.states("probe") == [{"celsius": 21.5, "humidity": 40.0, "label": "probe"}]


async def test_without_state_model_the_return_annotation_is_the_model(autojump_clock):
    harness = AppHarness.create()

    @harness.app.telemetry("probe", interval=10)
    async def probe() -> Reading | None:
        return {"celsius": SECRET}  # type: ignore[return-value]  # the mismatch under test

    await harness.run()
    assert harness.states("probe") == []
    [report] = harness.errors("probe")
    assert report["error_type"] == "invalid_state"
    assert "Reading" in report["message"]


async def test_a_dataclass_return_annotation_shapes_a_returned_dict(autojump_clock):
    harness = AppHarness.create()

    @harness.app.telemetry("tank", interval=10)
    async def tank() -> Level:
        return {"percent": "42"}  # type: ignore[return-value]  # coerced into Level

    await harness.run()
    assert harness.states("tank") == [{"percent": 42}]


async def test_without_a_model_a_returned_dict_never_meets_the_contracts(
    autojump_clock, monkeypatch
):
    def refuse(*args: Any) -> None:
        raise AssertionError("a device without a model was shaped")

    monkeypatch.setattr(loops, "shaped_state", refuse)
    harness = AppHarness.create(store=MemoryStore())

    @harness.app.telemetry("probe", interval=10, persist=SaveOnChange())
    async def probe(store: DeviceStore) -> dict[str, Any]:
        store["n"] = store.get("n", 0) + 1
        return {"n": store["n"]}

    await harness.run(cycles=2)
    assert harness.states("probe") == [{"n": 1}, {"n": 2}]


async def test_a_model_instance_is_dumped_without_any_model_declared(autojump_clock):
    harness = AppHarness.create()

    @harness.app.telemetry("tank", interval=10)
    async def tank() -> Any:  # no model in sight: the instance is still published
        return Level(percent=42)

    @harness.app.telemetry("probe", interval=10)
    async def probe() -> Any:
        return Reading(celsius=1)

    await harness.run()
    assert harness.states("tank") == [{"percent": 42}]
    assert harness.states("probe") == [{"celsius": 1.0, "label": "probe"}]


async def test_a_state_that_does_not_match_is_reported_and_not_published(autojump_clock):
    harness = AppHarness.create()
    states: Any = iter([{"celsius": 20}, {"celsius": SECRET, "humidity": "wet"}, {"celsius": 21}])

    @harness.app.telemetry("probe", interval=10, state_model=Reading)
    async def probe() -> dict[str, Any]:
        return next(states)

    await harness.run(cycles=3)
    assert harness.states("probe") == [
        {"celsius": 20.0, "label": "probe"},
        {"celsius": 21.0, "label": "probe"},
    ]
    [report] = harness.errors("probe")
    assert report["type"] == "ReturnValidationError"
    assert report["error_type"] == "invalid_state"
    assert report["device"] == "probe"
    assert report["message"] == (
        "probe: the state does not match Reading: "
        "[celsius]: type=float_parsing; [humidity]: type=float_parsing"
    )
    assert no_values_in(report)


class Recording:
    """SaveOnChange that remembers the store's ``cycle`` at each time it was asked."""

    def __init__(self) -> None:
        self.asked_at: list[int] = []

    def should_save(self, store: Any, published: bool) -> bool:
        self.asked_at.append(store["cycle"])
        return SaveOnChange().should_save(store, published)


async def test_a_bad_cycle_saves_nothing_its_store_changes_are_undone(autojump_clock):
    backend = MemoryStore()
    policy = Recording()
    harness = AppHarness.create(store=backend)
    cycle = 0

    @harness.app.telemetry("counter", interval=10, persist=policy, state_model=Reading)
    async def counter(store: DeviceStore) -> dict[str, Any]:
        nonlocal cycle
        cycle += 1
        store["cycle"] = cycle
        store["count"] = store.get("count", 0) + 1
        return {"celsius": "broken" if cycle == 2 else cycle}

    await harness.run(cycles=3)
    assert 2 not in policy.asked_at  # the bad cycle did not ask the policy
    assert set(policy.asked_at) == {1, 3}
    assert backend.load("counter") == {"cycle": 3, "count": 2}  # cycle 2 never happened
    assert [s["celsius"] for s in harness.states("counter")] == [1.0, 3.0]


async def test_a_bad_state_with_durable_publish_is_neither_saved_nor_published(autojump_clock):
    backend = MemoryStore()
    harness = AppHarness.create(store=backend)

    @harness.app.telemetry("meter", interval=10, publish="durable", state_model=Reading)
    async def meter(store: DeviceStore) -> dict[str, Any]:
        store["seen"] = store.get("seen", 0) + 1
        return {"celsius": "broken"}

    await harness.run(cycles=2)
    assert harness.states("meter") == []
    assert backend.load("meter") is None  # not even the shutdown flush saved a bad cycle
    assert [r["error_type"] for r in harness.errors("meter")] == ["invalid_state"]


async def test_a_command_result_is_checked_against_the_state_model(autojump_clock):
    harness = AppHarness.create()

    @harness.app.command("heater", state_model=Reading)
    async def heater(payload: str) -> dict[str, Any]:
        return {"celsius": payload}

    async with harness.serving():
        await harness.command("heater", "hot")
        await harness.command("heater", "19")
    assert harness.states("heater") == [{"celsius": 19.0, "label": "probe"}]
    [report] = harness.errors("heater")
    assert (report["error_type"], report["message"]) == (
        "invalid_state",
        "heater: the state does not match Reading: [celsius]: type=float_parsing",
    )


async def test_publish_state_validates_first_and_raises_to_the_handler(autojump_clock):
    harness = AppHarness.create()
    raised: list[ReturnValidationError] = []

    @harness.app.device("display", state_model=Reading)
    async def display(ctx: DeviceContext) -> None:
        try:
            await ctx.publish_state({"celsius": SECRET})
        except ReturnValidationError as error:
            raised.append(error)
        await ctx.publish_state(Reading(celsius=4))
        await ctx.publish_state({"celsius": 5, "humidity": None})

    await harness.run()
    [error] = raised
    assert (error.device, error.model, error.errors) == (
        "display",
        "Reading",
        ("[celsius]: type=float_parsing",),
    )
    assert SECRET not in str(error)
    assert error.__cause__ is None
    assert harness.states("display") == [
        {"celsius": 4.0, "label": "probe"},
        {"celsius": 5.0, "label": "probe"},
    ]


async def test_a_stream_item_that_does_not_match_is_reported_and_the_stream_goes_on(
    autojump_clock,
):
    radio = Radio()
    harness = AppHarness.create()
    harness.app.adapter(StreamablePort[RadioReading], lambda: radio)

    @harness.app.stream("radio", state_model=Gauge)
    async def readings(stream: Stream[RadioReading]) -> AsyncIterator[Any]:
        async for reading in stream:
            yield {"percent": reading.value} if reading.value >= 0 else Reading(celsius=1)

    async with harness.serving():
        await trio.testing.wait_all_tasks_blocked()
        for value in (1, -1, 3):
            radio.push(value)
            await harness.settle()
    assert harness.states("radio") == [{"percent": 1}, {"percent": 3}]
    [report] = harness.errors("radio")
    assert report["message"] == "radio: the state does not match Gauge: [percent]: type=missing"


def test_the_validator_is_built_once_per_model():
    contracts.adapter.cache_clear()
    for value in (1, 2, 3):
        contracts.shaped_state("probe", Reading, {"celsius": value})
    info = contracts.adapter.cache_info()
    assert (info.misses, info.hits) == (1, 2)


def test_the_return_annotation_names_a_model_only_for_model_classes():
    async def model() -> Reading:
        raise NotImplementedError

    async def optional() -> Level | None:
        return None

    async def typed_dict() -> Valve:
        raise NotImplementedError

    async def plain() -> dict[str, float]:
        return {}

    async def bare():  # no annotation: no model
        return None

    found = [contracts.return_model(f) for f in (model, optional, typed_dict, plain, bare)]
    assert found == [Reading, Level, Valve, None, None]


# --- payloads ----------------------------------------------------------------------------------


async def test_a_payload_parameter_typed_with_a_model_gets_the_parsed_payload(autojump_clock):
    harness = AppHarness.create()
    got: list[Any] = []

    @harness.app.command("thermostat")
    async def thermostat(payload: Setpoint) -> None:
        got.append(payload)

    @harness.app.command("tank")
    async def tank(payload: Level) -> None:
        got.append(payload)

    @harness.app.command("valve")
    async def valve(payload: Valve) -> None:
        got.append(payload)

    async with harness.serving():
        await harness.command("thermostat", '{"target": 21}')
        await harness.command("tank", '{"percent": "7"}')
        await harness.command("valve", '{"open": true}')
    assert got == [Setpoint(target=21.0), Level(percent=7), {"open": True}]


@pytest.mark.parametrize(
    ("payload", "problem"),
    [
        (f"not json {SECRET}", "(root): type=json_invalid"),
        ('{"target": 99}', "[target]: type=less_than_equal"),
        (f'{{"target": "{SECRET}"}}', "[target]: type=float_parsing"),
        ('{"mode": "eco"}', "[target]: type=missing"),
    ],
)
async def test_a_bad_payload_is_reported_and_the_device_keeps_running(
    autojump_clock, caplog, payload, problem
):
    harness = AppHarness.create()
    got: list[Setpoint] = []

    @harness.app.command("thermostat")
    async def thermostat(payload: Setpoint) -> None:
        got.append(payload)

    with caplog.at_level(logging.DEBUG, logger="triolette"):
        async with harness.serving():
            await harness.command("thermostat", payload)
            await harness.command("thermostat", '{"target": 20}')
    assert got == [Setpoint(target=20)]  # the handler never saw the bad one
    [report] = harness.errors("thermostat")
    assert report["type"] == "PayloadValidationError"
    assert report["error_type"] == "invalid_payload"
    assert report["message"] == f"thermostat: the payload does not match Setpoint: {problem}"
    assert no_values_in(report)
    warnings = [r for r in caplog.records if r.levelno == logging.WARNING]
    assert [r.name for r in warnings] == ["triolette.app"]
    assert problem in warnings[0].getMessage()
    assert all(SECRET not in r.getMessage() for r in caplog.records)
    assert all(r.exc_info is None or r.exc_info[1].__cause__ is None for r in caplog.records)


async def test_payload_model_validates_and_a_str_parameter_keeps_the_raw_text(autojump_clock):
    harness = AppHarness.create()
    got: list[str] = []

    @harness.app.command("thermostat", payload_model=Setpoint)
    async def thermostat(payload: str) -> None:
        got.append(payload)

    async with harness.serving():
        await harness.command("thermostat", '{"target": 3}')
        await harness.command("thermostat", '{"target": 18}')
    assert got == ['{"target": 18}']
    [report] = harness.errors("thermostat")
    assert report["message"] == (
        "thermostat: the payload does not match Setpoint: [target]: type=greater_than_equal"
    )


async def test_payload_model_checks_commands_whose_handler_takes_no_payload(autojump_clock):
    harness = AppHarness.create()
    calls = 0

    @harness.app.command("bell", payload_model=Setpoint)
    async def bell() -> None:
        nonlocal calls
        calls += 1

    async with harness.serving():
        await harness.command("bell", "{}")
        await harness.command("bell", '{"target": 10}')
    assert calls == 1
    assert [r["error_type"] for r in harness.errors("bell")] == ["invalid_payload"]


def test_payload_validation_error_names_model_and_fields():
    with pytest.raises(PayloadValidationError) as caught:
        contracts.parse_payload("thermostat", Setpoint, '{"target": []}')
    error = caught.value
    assert (error.device, error.model, error.errors) == (
        "thermostat",
        "Setpoint",
        ("[target]: type=float_type",),
    )
    assert isinstance(error, ValueError)


def test_a_payload_of_a_type_that_is_no_model_is_still_refused():
    harness = AppHarness.create()
    with pytest.raises(RegistrationError, match=r"payload: Model \(a pydantic model"):

        @harness.app.command("valve")
        async def valve(payload: bytes) -> None: ...
