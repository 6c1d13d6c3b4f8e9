"""Shared state, reactors, start-up hooks, the lifespan and settings-decided options."""

from __future__ import annotations

import contextlib
import json
import logging
from collections.abc import AsyncIterator, Iterator
from typing import Any

import pytest
import trio
import trio.lowlevel

from triolette import (
    App,
    AppContext,
    DeviceContext,
    DeviceStore,
    JsonFileStore,
    MemoryStore,
    RegistrationError,
    setting_ref,
)
from triolette.core.clock import ClockPort
from triolette.testing import AppHarness


class Tally:
    """Shared state with domain events."""

    def __init__(self, log: list[str]) -> None:
        self.log = log
        self.events: list[str] = []

    def drain_events(self) -> list[str]:
        events, self.events = self.events, []
        return events


class Meter:
    def __init__(self, log: list[str]) -> None:
        self.log = log

    async def __aenter__(self) -> Meter:
        self.log.append("meter enter")
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        self.log.append("meter exit")


class Plain: ...


class FromAsync: ...


class Generated: ...


class AsyncGenerated: ...


class Managed: ...


# -- shared state ---------------------------------------------------------------------------


async def test_one_state_object_is_shared_by_every_handler_and_closed_after_the_flush(
    autojump_clock, tmp_path
):
    path = tmp_path / "state.json"
    harness = AppHarness.create(store=JsonFileStore(path))
    app = harness.app
    log: list[str] = []
    durable_at_teardown: list[Any] = []

    @app.state
    def tally() -> Iterator[Tally]:
        log.append("tally open")
        yield Tally(log)
        # The final flush is done: the counter's last value is on disk already.
        durable_at_teardown.append(json.loads(path.read_text())["counter"])
        log.append("tally closed")

    @app.telemetry("counter", interval=10)
    async def counter(shared: Tally, store: DeviceStore) -> dict[str, int]:
        tallies.append(shared)
        store["n"] = store.get("n", 0) + 1
        return {"n": store["n"]}

    tallies: list[Tally] = []

    @app.telemetry("spy", interval=10)
    async def spy(shared: Tally) -> None:
        tallies.append(shared)

    await harness.run(cycles=2)
    assert log == ["tally open", "tally closed"]
    assert len(tallies) == 4
    assert len({id(t) for t in tallies}) == 1
    assert durable_at_teardown == [{"n": 2}]


async def test_state_factories_of_every_form_close_in_reverse_order(autojump_clock):
    harness = AppHarness.create()
    app = harness.app
    log: list[str] = []

    @app.state
    def plain() -> Plain:
        log.append("plain")
        return Plain()

    @app.state
    async def from_async() -> FromAsync:
        await trio.lowlevel.checkpoint()
        log.append("async")
        return FromAsync()

    @app.state
    def generated() -> Iterator[Generated]:
        log.append("generator open")
        yield Generated()
        log.append("generator closed")

    @app.state
    async def async_generated(meter: Meter, earlier: Generated) -> AsyncIterator[AsyncGenerated]:
        log.append(f"async generator open with {type(meter).__name__}")
        yield AsyncGenerated()
        await trio.lowlevel.checkpoint()
        log.append("async generator closed")

    @app.state
    async def managed() -> contextlib.AbstractAsyncContextManager[Managed]:
        @contextlib.asynccontextmanager
        async def opened() -> AsyncIterator[Managed]:
            log.append("manager open")
            yield Managed()
            log.append("manager closed")

        return opened()

    app.adapter(Meter, lambda: Meter(log))

    @app.telemetry("probe", interval=10)
    async def probe(a: Plain, b: FromAsync, c: Generated, d: AsyncGenerated, e: Managed) -> None:
        log.append("probe")

    await harness.run(cycles=1)
    assert log == [
        "meter enter",  # the adapters first: a state factory may take one
        "plain",
        "async",
        "generator open",
        "async generator open with Meter",
        "manager open",
        "probe",
        "manager closed",
        "async generator closed",
        "generator closed",
        "meter exit",
    ]


def test_a_state_factory_needs_a_return_annotation_and_one_per_type():
    app = App("bridge")

    def unannotated():
        return Tally([])

    with pytest.raises(RegistrationError, match="unannotated: needs a return annotation"):
        app.state(unannotated)

    @app.state
    def first() -> Tally:
        return Tally([])

    def second() -> Tally:
        return Tally([])

    with pytest.raises(RegistrationError, match="a state factory for Tally exists"):
        app.state(second)

    def generator() -> Plain:  # type: ignore[misc]  # a generator must say Iterator[T]
        yield Plain()

    with pytest.raises(RegistrationError, match=r"generator: a generator is annotated Iterator"):
        app.state(generator)

    def bare() -> Iterator:  # type: ignore[type-arg]
        yield Plain()

    with pytest.raises(RegistrationError, match=r"bare: a generator is annotated Iterator\[T\]"):
        app.state(bare)


async def test_a_state_factory_returning_another_type_stops_the_start(autojump_clock):
    harness = AppHarness.create()

    @harness.app.state
    def tally() -> Tally:
        return "not a tally"  # type: ignore[return-value]

    @harness.app.telemetry("probe", interval=10)
    async def probe(shared: Tally) -> None: ...

    with pytest.raises(RegistrationError, match=r"state Tally \(.*tally\): returned str"):
        await harness.run(cycles=1)


async def test_an_error_closing_state_is_logged_and_the_rest_still_close(autojump_clock, caplog):
    harness = AppHarness.create()
    app = harness.app
    log: list[str] = []
    app.adapter(Meter, lambda: Meter(log))

    @app.state
    def tally() -> Iterator[Tally]:
        yield Tally(log)
        raise OSError("the socket was gone already")

    @app.telemetry("probe", interval=10)
    async def probe(shared: Tally) -> None: ...

    await harness.run(cycles=1)
    assert log == ["meter enter", "meter exit"]
    failed = [r for r in caplog.records if "error while closing" in r.getMessage()]
    assert len(failed) == 1
    assert failed[0].levelno == logging.ERROR
    assert "state Tally" in failed[0].getMessage()
    assert "the socket was gone already" in str(failed[0].exc_info[1])


# -- reactors -------------------------------------------------------------------------------


async def test_a_reactor_gets_the_events_after_each_good_cycle_and_command(autojump_clock):
    harness = AppHarness.create()
    app = harness.app
    seen: list[tuple[str, list[str]]] = []

    @app.state
    def tally() -> Tally:
        return Tally([])

    @app.react(Tally)
    async def announce(events: list[str], ctx: DeviceContext) -> None:
        seen.append((ctx.name, events))

    @app.telemetry("meter", interval=10)
    async def meter(shared: Tally) -> dict[str, int]:
        shared.events.append("read")
        return {"v": 1}

    @app.command("valve")
    async def valve(shared: Tally, payload: str) -> None:
        shared.events.append(f"valve {payload}")

    async with harness.serving():
        await harness.command("valve", "open")
    assert ("meter", ["read"]) in seen
    assert ("valve", ["valve open"]) in seen


async def test_a_reactor_is_not_called_after_a_failed_cycle_or_without_events(autojump_clock):
    harness = AppHarness.create()
    app = harness.app
    calls: list[list[str]] = []
    cycle = 0

    @app.state
    def tally() -> Tally:
        return Tally([])

    @app.react(Tally, drain=lambda state: state.drain_events())
    async def react(events: list[str]) -> None:
        calls.append(events)

    @app.telemetry("meter", interval=10)
    async def meter(shared: Tally) -> None:
        nonlocal cycle
        cycle += 1
        if cycle == 2:
            shared.events.append("lost with the cycle")
            raise OSError("sensor away")
        if cycle == 3:
            shared.events.append("third")

    await harness.run(cycles=4)
    # The failed cycle's event is drained by the next good boundary, never lost.
    assert calls == [["lost with the cycle", "third"]]


async def test_a_reactor_that_raises_is_reported_like_the_handlers_error(autojump_clock):
    harness = AppHarness.create()
    app = harness.app
    states: list[int] = []

    @app.state
    def tally() -> Tally:
        return Tally([])

    @app.react(Tally)
    async def fragile(events: list[str]) -> None:
        raise RuntimeError(f"cannot forward {events}")

    @app.telemetry("meter", interval=10)
    async def meter(shared: Tally) -> dict[str, int]:
        shared.events.append("read")
        states.append(1)
        return {"v": 1}

    @app.command("valve")
    async def valve(shared: Tally) -> None:
        shared.events.append("turned")

    async with harness.serving():
        await harness.command("valve", "x")
        await harness.command("valve", "x")
    meter_errors = harness.errors("meter")
    assert meter_errors
    assert meter_errors[0]["type"] == "RuntimeError"
    assert "cannot forward ['read']" in meter_errors[0]["message"]
    assert harness.errors("valve")[0]["type"] == "RuntimeError"
    assert len(states) >= 1  # the telemetry loop went on


def test_a_reactor_must_be_async_and_of_registered_state():
    app = App("bridge")

    async def react(events: list[str]) -> None: ...

    with pytest.raises(RegistrationError, match="Tally is not shared state"):
        app.react(Tally)(react)

    @app.state
    def tally() -> Tally:
        return Tally([])

    def sync_react(events: list[str]) -> None: ...

    with pytest.raises(RegistrationError, match="must be an 'async def' function"):
        app.react(Tally)(sync_react)


# -- on_configure ---------------------------------------------------------------------------


async def test_a_configure_hook_registers_devices_from_the_settings(autojump_clock):
    harness = AppHarness.create()
    app = harness.app
    app.settings = Rooms(["kitchen", "hall"])
    app.adapter(Meter, lambda: Meter([]))
    order: list[str] = []

    @app.telemetry("static", interval=10)
    async def static() -> None: ...

    @app.on_configure
    async def add_rooms(rooms: Rooms, meter: Meter) -> None:
        order.append(f"hook with {type(meter).__name__}")
        for room in rooms.names:

            async def read(room: str = room) -> dict[str, str]:
                return {"room": room}

            app.telemetry(room, interval=10)(read)

        @app.state
        def tally() -> Tally:  # state may be registered here too
            order.append("state built after the hook")
            return Tally([])

    await harness.run(cycles=1)
    assert order == ["hook with Meter", "state built after the hook"]
    assert harness.states("kitchen") == [{"room": "kitchen"}]
    assert harness.states("hall") == [{"room": "hall"}]
    assert app.device_names == ["static"]  # what the hook registered lasted for its serve
    app.settings = Rooms(["attic"])
    async with harness.serving():
        assert app.device_names == ["static", "attic"]  # the hook ran again
        with pytest.raises(RegistrationError, match="devices must be declared before"):
            app.telemetry("late", interval=10)(_nothing)
    assert app.device_names == ["static"]


async def _nothing() -> None: ...


class Rooms:
    def __init__(self, names: list[str]) -> None:
        self.names = names


async def test_a_configure_hook_that_fails_stops_the_start(autojump_clock):
    harness = AppHarness.create()
    ran: list[str] = []

    @harness.app.on_configure
    def broken() -> None:
        raise ValueError("no rooms configured")

    @harness.app.telemetry("probe", interval=10)
    async def probe() -> None:
        ran.append("probe")

    with pytest.raises(ValueError, match="no rooms configured"):
        await harness.run(cycles=1)
    assert ran == []
    assert harness.app.registry.locked_by is None


# -- lifespan -------------------------------------------------------------------------------


class Session:
    def __init__(self, host: str) -> None:
        self.host = host


async def test_the_lifespan_object_is_injected_and_closed_after_the_flush(autojump_clock, tmp_path):
    path = tmp_path / "state.json"
    log: list[str] = []

    @contextlib.asynccontextmanager
    async def lifespan(ctx: AppContext) -> AsyncIterator[Session]:
        meter = ctx.adapter(Meter)
        log.append(f"lifespan open after {meter.log[0]}, settings {ctx.settings.names}")
        yield Session("bus")
        log.append(f"lifespan closed, on disk: {json.loads(path.read_text())['sensor']}")

    harness = AppHarness.create(store=JsonFileStore(path), lifespan=lifespan)
    harness.app.settings = Rooms(["a"])
    harness.app.adapter(Meter, lambda: Meter(log))

    @harness.app.telemetry("sensor", interval=10)
    async def sensor(session: Session, store: DeviceStore) -> None:
        store["host"] = session.host

    await harness.run(cycles=1)
    assert log[1] == "lifespan open after meter enter, settings ['a']"
    assert log[2] == "lifespan closed, on disk: {'host': 'bus'}"
    assert log[3] == "meter exit"


async def test_a_lifespan_object_clashing_with_an_adapter_stops_the_start(autojump_clock):
    @contextlib.asynccontextmanager
    async def lifespan(ctx: AppContext) -> AsyncIterator[Meter]:
        yield Meter([])

    harness = AppHarness.create(lifespan=lifespan)
    harness.app.adapter(Meter, lambda: Meter([]))

    @harness.app.telemetry("sensor", interval=10)
    async def sensor() -> None: ...

    with pytest.raises(RegistrationError, match="lifespan's object: something is already"):
        await harness.run(cycles=1)


async def test_ctx_adapter_names_a_missing_port(autojump_clock):
    harness = AppHarness.create()
    errors: list[str] = []

    @harness.app.telemetry("sensor", interval=10)
    async def sensor(ctx: DeviceContext) -> None:
        try:
            ctx.adapter(Meter)
        except LookupError as error:
            errors.append(str(error))

    await harness.run(cycles=1)
    assert errors
    assert "sensor: ctx.adapter() asks for Meter, which nothing provides" in errors[0]


# -- settings-decided options, ctx.settings, ctx.clock -------------------------------------


class Poll:
    def __init__(self, seconds: float) -> None:
        self.seconds = seconds


class PollSettings:
    def __init__(self, seconds: float) -> None:
        self.poll = Poll(seconds)


async def test_an_interval_read_from_the_settings_at_start(autojump_clock):
    harness = AppHarness.create()
    harness.app.settings = PollSettings(30.0)
    times: list[float] = []

    @harness.app.telemetry("sensor", interval=setting_ref("poll.seconds"))
    async def sensor(ctx: DeviceContext, settings: PollSettings) -> None:
        assert ctx.settings is settings
        times.append(ctx.clock.now())

    @harness.app.telemetry("twice", interval=lambda s: s.poll.seconds * 2)
    async def twice() -> None: ...

    await harness.run(cycles=3)
    assert [t - times[0] for t in times] == [0.0, 30.0, 60.0]
    assert harness.app.registry.specs["sensor"].interval is None  # decided per serve


@pytest.mark.parametrize("seconds", [0, -1, float("inf"), "soon"])
async def test_a_bad_interval_from_the_settings_names_the_device_and_option(
    autojump_clock, seconds
):
    harness = AppHarness.create()
    harness.app.settings = PollSettings(seconds)

    @harness.app.telemetry("sensor", interval=setting_ref("poll.seconds"))
    async def sensor() -> None: ...

    with pytest.raises(RegistrationError, match=r"^sensor: interval must be a positive"):
        await harness.run(cycles=1)


async def test_a_setting_ref_to_a_missing_field_names_the_device(autojump_clock):
    harness = AppHarness.create()
    harness.app.settings = PollSettings(1)

    @harness.app.telemetry("sensor", interval=setting_ref("poll.minutes"))
    async def sensor() -> None: ...

    with pytest.raises(RegistrationError, match=r"sensor: interval: .*no field 'minutes'"):
        await harness.run(cycles=1)


async def test_the_clock_sleeps_on_the_apps_time(autojump_clock):
    harness = AppHarness.create()
    slept: list[float] = []

    @harness.app.telemetry("sensor", interval=100)
    async def sensor(ctx: DeviceContext, clock: ClockPort) -> None:
        start = clock.now()
        await ctx.clock.sleep(5)
        slept.append(clock.now() - start)

    await harness.run(cycles=1)
    assert slept == [5.0]


async def test_a_teardown_that_hangs_is_cut_at_the_shutdown_deadline(autojump_clock, caplog):
    harness = AppHarness.create(shutdown_timeout=8)
    app = harness.app
    log: list[str] = []
    app.adapter(Meter, lambda: Meter(log))

    @app.state
    async def stuck() -> AsyncIterator[Tally]:
        yield Tally(log)
        await trio.sleep(3600)  # a close that never ends
        log.append("closed")

    @app.telemetry("probe", interval=10)
    async def probe(shared: Tally) -> None:
        app.shutdown()

    begun = trio.current_time()
    await harness.run(cycles=1)
    assert trio.current_time() - begun == pytest.approx(8)
    assert log == ["meter enter", "meter exit"]  # the adapter still closed
    assert any(
        "deadline passed while closing" in r.getMessage()
        for r in caplog.records
        if r.levelno == logging.ERROR
    )


async def test_a_reactor_that_keeps_failing_is_one_error_not_a_recovery_each_cycle(
    autojump_clock,
):
    harness = AppHarness.create()
    app = harness.app

    @app.state
    def tally() -> Tally:
        return Tally([])

    @app.react(Tally)
    async def broken(events: list[str]) -> None:
        raise RuntimeError("the forwarder is down")

    @app.telemetry("meter", interval=10)
    async def meter(shared: Tally) -> dict[str, int]:
        shared.events.append("read")
        return {"v": 1}  # published and confirmed each cycle

    await harness.run(cycles=4)
    assert harness.states("meter") == [{"v": 1}] * 4
    # The confirmed publish does not count as a recovery while its reactor failed, so the
    # same error is not news again each cycle.
    assert len(harness.errors("meter")) == 1


async def test_an_adapter_registered_by_a_configure_hook_is_built_and_closed(autojump_clock):
    harness = AppHarness.create()
    app = harness.app
    log: list[str] = []

    @app.on_configure
    def add_meter() -> None:
        app.adapter(Meter, lambda: Meter(log))

    @app.telemetry("gas", interval=10)
    async def gas(meter: Meter) -> None:
        log.append("read")

    await harness.run(cycles=1)
    assert log == ["meter enter", "read", "meter exit"]
    assert app.registry.adapters.ports == []  # registered for that serve only


# -- more bad input -------------------------------------------------------------------------


def test_a_lifespan_or_hook_that_is_not_callable_is_refused():
    with pytest.raises(RegistrationError, match=r"^lifespan: must be a function"):
        App("bridge", lifespan="not callable")  # type: ignore[arg-type]
    with pytest.raises(RegistrationError, match=r"not callable \(use @app.on_configure"):
        App("bridge").on_configure(42)  # type: ignore[type-var]

    def loose(settings) -> None: ...

    with pytest.raises(RegistrationError, match=r"parameter 'settings' needs an annotation"):
        App("bridge").on_configure(loose)


async def test_a_state_factory_asking_for_what_nothing_provides_is_named(autojump_clock):
    harness = AppHarness.create()

    @harness.app.state
    def tally(meter: Meter) -> Tally:
        return Tally(meter.log)

    @harness.app.telemetry("probe", interval=10)
    async def probe(shared: Tally) -> None: ...

    with pytest.raises(
        RegistrationError, match=r"state Tally \(.*tally\): parameter 'meter' asks for Meter"
    ):
        await harness.run(cycles=1)


async def test_a_drain_that_returns_no_list_is_reported(autojump_clock):
    harness = AppHarness.create()
    app = harness.app

    @app.state
    def tally() -> Tally:
        return Tally([])

    @app.react(Tally, drain=lambda state: "not a list")
    async def react(events: list[str]) -> None: ...

    @app.telemetry("meter", interval=10)
    async def meter() -> None: ...

    await harness.run(cycles=1)
    [error] = harness.errors("meter")
    assert error["type"] == "TypeError"
    assert "a drain must return a list of events" in error["message"]


async def test_a_reactor_takes_the_store_of_the_device_at_the_boundary(autojump_clock):
    harness = AppHarness.create(store=MemoryStore())
    app = harness.app

    @app.state
    def tally() -> Tally:
        return Tally([])

    @app.react(Tally)
    async def count(events: list[str], store: DeviceStore) -> None:
        store["events"] = store.get("events", 0) + len(events)

    @app.telemetry("meter", interval=10)
    async def meter(shared: Tally, store: DeviceStore) -> None:
        shared.events.extend(["a", "b"])

    await harness.run(cycles=3)
    assert app.store is not None
    assert app.store.load("meter") == {"events": 6}
