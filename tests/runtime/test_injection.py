"""Registration: what a handler may ask for, and the errors of a wrong declaration.

Every mistake is a :class:`~triolette.RegistrationError` raised where the device is declared
(never at the first call), naming the offender, and it leaves the app as it was.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import Any

import pytest

from triolette import (
    App,
    DeviceContext,
    DeviceStore,
    MemoryStore,
    RegistrationError,
    SaveOnChange,
)
from triolette.testing import AppHarness

# -- names --------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("name", "shown"),
    [
        ("kitchen+temp", "'kitchen+temp'"),
        ("kitchen#", "'kitchen#'"),
        ("kitchen/temp", "'kitchen/temp'"),
        ("", "''"),
        (" padded ", "' padded '"),
    ],
)
def test_bad_device_names_are_refused_by_name(name, shown):
    app = App("bridge", store=MemoryStore())
    declarations: list[Callable[[], object]] = [
        lambda: app.telemetry(name, interval=10),
        lambda: app.device(name),
        lambda: app.command(name),
    ]
    for declare in declarations:
        with pytest.raises(RegistrationError) as caught:
            declare()
        assert shown in str(caught.value)
    assert app.device_names == []


@pytest.mark.parametrize("second", ["telemetry", "device", "command"])
def test_a_duplicate_name_is_refused_whatever_the_kind(second):
    app = App("bridge")

    @app.telemetry("boiler", interval=10)
    async def boiler() -> None: ...

    declare: dict[str, Callable[[], object]] = {
        "telemetry": lambda: app.telemetry("boiler", interval=5),
        "device": lambda: app.device("boiler"),
        "command": lambda: app.command("boiler"),
    }
    with pytest.raises(RegistrationError, match=r"boiler: .*already registered"):
        declare[second]()
    assert app.device_names == ["boiler"]


def test_names_are_case_sensitive_topic_levels():
    app = App("bridge")

    @app.device("Boiler")
    async def upper() -> None: ...

    @app.device("boiler")
    async def lower() -> None: ...

    assert app.device_names == ["Boiler", "boiler"]


# -- handler signatures -------------------------------------------------------------------------


def test_an_unknown_annotation_is_refused_at_registration():
    app = App("bridge")
    with pytest.raises(RegistrationError) as caught:

        @app.telemetry("sensor", interval=10)
        async def sensor(port: int) -> None: ...

    message = str(caught.value)
    assert "sensor" in message
    assert "'port'" in message
    assert "int" in message
    assert app.device_names == []


def test_an_unannotated_parameter_is_refused():
    app = App("bridge")
    with pytest.raises(RegistrationError, match=r"sensor: .*'ctx'.*annotated nothing"):

        @app.telemetry("sensor", interval=10)
        async def sensor(ctx) -> None: ...


def test_an_unresolvable_annotation_is_refused():
    app = App("bridge")
    with pytest.raises(RegistrationError, match=r"sensor: .*annotation"):

        @app.telemetry("sensor", interval=10)
        async def sensor(ctx: NoSuchType) -> None:  # type: ignore[name-defined]  # noqa: F821
            ...


def test_payload_and_topic_are_only_injected_into_command_handlers():
    app = App("bridge")
    with pytest.raises(RegistrationError, match="'payload'"):

        @app.telemetry("sensor", interval=10)
        async def sensor(payload: str) -> None: ...

    @app.command("valve")
    async def valve(payload: str, topic: str) -> None: ...

    assert app.device_names == ["valve"]


def test_a_command_payload_must_be_a_str():
    app = App("bridge")
    with pytest.raises(RegistrationError, match="'payload'"):

        @app.command("valve")
        async def valve(payload: bytes) -> None: ...


@pytest.mark.parametrize("kind", ["telemetry", "device", "command"])
def test_a_plain_function_is_refused(kind):
    app = App("bridge")

    def sensor() -> dict[str, object]:
        return {}

    decorator: Any = {
        "telemetry": app.telemetry("sensor", interval=10),
        "device": app.device("sensor"),
        "command": app.command("sensor"),
    }[kind]
    with pytest.raises(RegistrationError, match=r"sensor: .*'async def'"):
        decorator(sensor)
    assert app.device_names == []


def test_an_async_generator_is_refused():
    app = App("bridge")
    with pytest.raises(RegistrationError, match="sensor"):

        @app.telemetry("sensor", interval=10)
        async def sensor():
            yield {}


def test_parameters_with_defaults_are_left_alone():
    app = App("bridge")

    @app.telemetry("sensor", interval=10)
    async def sensor(ctx: DeviceContext, scale: float = 2.0) -> None: ...

    assert app.device_names == ["sensor"]


# -- stores and policies ------------------------------------------------------------------------


def test_a_device_store_parameter_needs_an_app_store():
    app = App("bridge")
    with pytest.raises(RegistrationError, match=r"meter: .*DeviceStore.*no store"):

        @app.device("meter")
        async def meter(state: DeviceStore) -> None: ...

    assert app.device_names == []


@pytest.mark.parametrize("kind", ["telemetry", "device", "command"])
def test_persist_needs_an_app_store(kind):
    app = App("bridge")
    declare: dict[str, Callable[[], object]] = {
        "telemetry": lambda: app.telemetry("meter", interval=10, persist=SaveOnChange()),
        "device": lambda: app.device("meter", persist=SaveOnChange()),
        "command": lambda: app.command("meter", persist=SaveOnChange()),
    }
    with pytest.raises(RegistrationError, match=r"meter: persist= needs a store"):
        declare[kind]()


@pytest.mark.parametrize("persist", ["always", SaveOnChange, 60, object()])
def test_persist_must_be_a_policy(persist):
    app = App("bridge", store=MemoryStore())
    with pytest.raises(RegistrationError, match=r"meter: persist=.*not a save policy"):
        app.telemetry("meter", interval=10, persist=persist)


def test_a_user_policy_is_accepted():
    app = App("bridge", store=MemoryStore())

    class EveryThird:
        def __init__(self) -> None:
            self.count = 0

        def should_save(self, store: DeviceStore, published: bool) -> bool:
            self.count += 1
            return self.count % 3 == 0

    @app.telemetry("meter", interval=10, persist=EveryThird())
    async def meter(store: DeviceStore) -> None: ...

    assert app.device_names == ["meter"]


@pytest.mark.parametrize(
    "interval", [0, 0.0, -1, -0.5, float("inf"), float("nan"), "10", None, True]
)
def test_interval_must_be_a_positive_number_and_the_error_names_the_device(interval):
    app = App("bridge")
    with pytest.raises(RegistrationError, match=r"^sensor: interval must be a positive number"):
        app.telemetry("sensor", interval=interval)


async def _handler() -> None: ...


async def _takes_a_store(store: DeviceStore) -> None: ...


@pytest.mark.parametrize(
    "register",
    [
        lambda app: app.telemetry("sensor", interval=0),
        lambda app: app.telemetry("sensor", interval=5, timeout=0),
        lambda app: app.command("sensor", timeout=-1),
        lambda app: app.device("sensor", heartbeat=float("nan")),
        lambda app: app.device("sensor", restart="always"),
        lambda app: app.device("sensor", persist=SaveOnChange),
        lambda app: app.device("sensor", persist=SaveOnChange()),  # no store
        lambda app: app.device("sensor")(_takes_a_store),  # no store
        lambda app: app.device("sensor")(lambda: None),
        lambda app: (app.device("sensor")(_handler), app.command("sensor")),
    ],
)
def test_every_registration_error_names_the_device(register):
    with pytest.raises(RegistrationError, match=r"^sensor: "):
        register(App("bridge"))


# -- injection at run time ----------------------------------------------------------------------


async def test_device_store_is_injected_under_any_parameter_name(autojump_clock):
    backend = MemoryStore({"sensor": {"count": 41}})
    harness = AppHarness.create(store=backend)
    seen: list[Any] = []

    @harness.app.telemetry("sensor", interval=10)
    async def sensor(persistent_bits: DeviceStore) -> dict[str, object]:
        seen.append(persistent_bits)
        persistent_bits["count"] += 1
        return {"count": persistent_bits["count"]}

    await harness.run()
    assert isinstance(seen[0], DeviceStore)
    assert seen[0].key == "sensor"
    assert backend.load("sensor") == {"count": 42}


async def test_context_logger_and_store_are_injected(autojump_clock, caplog):
    harness = AppHarness.create(store=MemoryStore())
    got: dict[str, Any] = {}

    @harness.app.telemetry("sensor", interval=10)
    async def sensor(log: logging.Logger, ctx: DeviceContext, store: DeviceStore) -> None:
        got.update(log=log, ctx=ctx, store=store)
        log.warning("hello from the handler")

    with caplog.at_level(logging.WARNING):
        await harness.run()
    assert isinstance(got["ctx"], DeviceContext)
    assert got["ctx"].name == "sensor"
    assert isinstance(got["store"], DeviceStore)
    assert isinstance(got["log"], logging.Logger)
    assert got["log"].name == "triolette.devices.sensor"
    (record,) = [r for r in caplog.records if r.getMessage() == "hello from the handler"]
    assert record.name == got["log"].name


async def test_keyword_only_parameters_are_injected(autojump_clock):
    backend = MemoryStore()
    harness = AppHarness.create(store=backend)
    got: list[Any] = []

    @harness.app.telemetry("sensor", interval=10)
    async def sensor(ctx: DeviceContext, *, store: DeviceStore, log: logging.Logger) -> None:
        got.extend([ctx, store, log])
        store["ok"] = True

    await harness.run()
    assert [type(x) for x in got] == [DeviceContext, DeviceStore, logging.Logger]
    assert backend.load("sensor") == {"ok": True}


async def test_a_handler_with_no_parameters_runs(autojump_clock):
    harness = AppHarness.create()
    calls: list[int] = []

    @harness.app.telemetry("sensor", interval=10)
    async def sensor() -> dict[str, object]:
        calls.append(1)
        return {"ok": True}

    await harness.run(cycles=2)
    assert calls == [1, 1]
    assert harness.states("sensor") == [{"ok": True}] * 2


async def test_each_device_gets_its_own_context_and_store(autojump_clock):
    backend = MemoryStore()
    harness = AppHarness.create(store=backend)
    names: list[tuple[str, str]] = []

    def make(device: str) -> None:
        @harness.app.telemetry(device, interval=10)
        async def handler(ctx: DeviceContext, store: DeviceStore) -> None:
            names.append((ctx.name, store.key))
            store["me"] = ctx.name

    make("left")
    make("right")
    await harness.run()
    assert sorted(names) == [("left", "left"), ("right", "right")]
    assert backend.load("left") == {"me": "left"}
    assert backend.load("right") == {"me": "right"}


async def test_the_decorator_returns_the_handler_unchanged():
    app = App("bridge")

    async def sensor() -> None: ...

    assert app.telemetry("sensor", interval=1)(sensor) is sensor


async def test_parameters_after_one_left_at_its_default_are_passed_by_name():
    harness = AppHarness.create()
    seen: list[tuple[object, object]] = []

    @harness.app.telemetry("sensor", interval=10)
    async def sensor(retries: int = 3, ctx: DeviceContext | None = None) -> None:
        seen.append((retries, ctx))

    await harness.run()
    assert len(seen) == 1
    retries, ctx = seen[0]
    assert retries == 3
    assert isinstance(ctx, DeviceContext)


def test_two_decorators_for_one_name_made_before_either_was_applied_are_refused():
    harness = AppHarness.create()
    first = harness.app.device("x")
    second = harness.app.device("x")

    async def one() -> None: ...

    async def two() -> None: ...

    first(one)
    with pytest.raises(RegistrationError, match=r"x: a device of that name is already registered"):
        second(two)


async def test_counting_cycles_of_an_app_without_telemetry_is_refused():
    harness = AppHarness.create()

    @harness.app.command("valve")
    async def valve(payload: str) -> None: ...

    with pytest.raises(ValueError, match="no telemetry"):
        await harness.run(cycles=2)
