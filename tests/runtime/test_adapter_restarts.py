"""Adapters that keep failing their health checks are restarted, within a budget."""

from __future__ import annotations

import asyncio
import json
import logging
from collections.abc import AsyncIterator
from typing import Any, ClassVar

import pytest
import sniffio
import trio
import trio.lowlevel
import trio.testing

from triolette import App, RegistrationError, Stream, StreamablePort
from triolette.testing import AppHarness

INTERVAL = 30.0
COOLDOWN = 5.0


class Meters:
    """Builds the meters (async context managers); the test says which ones are sick."""

    def __init__(self) -> None:
        self.events: list[tuple[str, int, float]] = []
        self.sick: set[int] = set()
        self.fail_entering: set[int] = set()
        self.built = 0

    def build(self) -> Meter:
        self.built += 1
        return Meter(self, self.built)

    def at(self, what: str) -> list[tuple[int, float]]:
        return [(number, when) for event, number, when in self.events if event == what]


class Meter:
    def __init__(self, meters: Meters, number: int) -> None:
        self.meters, self.number = meters, number
        self.probes = 0

    async def __aenter__(self) -> Meter:
        if self.number in self.meters.fail_entering:
            raise OSError(f"meter {self.number} does not answer")
        self.meters.events.append(("enter", self.number, trio.current_time()))
        return self

    async def __aexit__(self, *exc_info: Any) -> None:
        self.meters.events.append(("exit", self.number, trio.current_time()))

    async def health_check(self) -> bool:
        self.probes += 1
        return self.number not in self.meters.sick

    def read(self) -> int:
        return self.number


def meter_harness(meters: Meters, **options: Any) -> AppHarness:
    options = {"restart_after_failures": 2, "restart_cooldown": COOLDOWN, **options}
    harness = AppHarness.create(health_check_interval=INTERVAL, **options)
    harness.app.adapter(Meter, meters.build)

    @harness.app.telemetry("gas", interval=10)
    async def gas(meter: Meter) -> dict[str, int]:
        return {"meter": meter.read()}

    return harness


def availability(harness: AppHarness, device: str) -> list[str]:
    return harness.broker.payloads(f"{harness.app.topics.prefix}/{device}/availability")


def adapter_states(harness: AppHarness) -> dict[str, str]:
    return dict(harness.app.statistics().adapters)


def messages(caplog: pytest.LogCaptureFixture, level: int) -> list[str]:
    return [r.getMessage() for r in caplog.records if r.levelno == level]


async def test_a_failing_adapter_is_exited_and_entered_again_after_the_cooldown(
    autojump_clock, caplog
):
    caplog.set_level(logging.INFO, logger="triolette.health")
    meters = Meters()
    harness = meter_harness(meters)
    async with harness.serving():
        ((_, start),) = meters.at("enter")  # probed at once, then every 30 s
        await trio.sleep_until(start + 1)
        meters.sick.add(1)
        await trio.sleep_until(start + INTERVAL + 1)  # one failed probe: offline
        assert availability(harness, "gas") == ["online", "offline"]
        assert meters.at("exit") == []
        await trio.sleep_until(start + 2 * INTERVAL + 1)  # the second one: restarting
        assert meters.at("exit") == [(1, start + 2 * INTERVAL)]
        assert adapter_states(harness) == {"Meter": "restarting"}
        assert availability(harness, "gas") == ["online", "offline"]
        assert harness.state("gas") == {"meter": 1}
        await trio.sleep_until(start + 2 * INTERVAL + COOLDOWN + 1)
        assert meters.at("enter") == [(1, start), (2, start + 2 * INTERVAL + COOLDOWN)]
        assert adapter_states(harness) == {"Meter": "unhealthy"}  # until the next probe
        await trio.sleep_until(start + 3 * INTERVAL + 1)
        assert harness.state("gas") == {"meter": 2}  # the handler's next call got the new one
        assert availability(harness, "gas") == ["online", "offline", "online"]
        assert adapter_states(harness) == {"Meter": "ok"}
    assert meters.at("exit")[-1][0] == 2  # the serve closed the instance entered last
    assert len(meters.at("exit")) == 2
    assert "restarting adapter Meter (1 of 3): gas offline meanwhile" in messages(
        caplog, logging.WARNING
    )
    assert "adapter Meter restarted" in messages(caplog, logging.INFO)


async def test_a_restart_that_fails_to_enter_is_logged_and_tried_again(autojump_clock, caplog):
    meters = Meters()
    meters.fail_entering.add(2)
    harness = meter_harness(meters)
    async with harness.serving():
        ((_, start),) = meters.at("enter")
        meters.sick.add(1)
        await trio.sleep_until(start + 2 * INTERVAL + COOLDOWN + 1)
        assert meters.at("enter") == [(1, start)]  # meter 2 refused
        errors = [r for r in caplog.records if r.levelno == logging.ERROR]
        assert [r.getMessage() for r in errors] == ["adapter Meter: the restart failed"]
        assert errors[0].exc_info is not None
        assert "meter 2 does not answer" in str(errors[0].exc_info[1])
        await trio.sleep_until(start + 4 * INTERVAL + COOLDOWN + 1)  # two more failed probes
        assert [n for n, _ in meters.at("enter")] == [1, 3]
        await trio.sleep_until(start + 5 * INTERVAL + 1)
        assert availability(harness, "gas")[-1] == "online"
        assert harness.state("gas") == {"meter": 3}


class Modem:
    """An adapter that is not a context manager but can be reset."""

    def __init__(self) -> None:
        self.healthy = True
        self.resets: list[float] = []

    async def health_check(self) -> bool:
        return self.healthy

    def _recorded(self) -> None:
        self.resets.append(trio.current_time())
        self.healthy = True


class SyncModem(Modem):
    def reset(self) -> None:
        self._recorded()


class AsyncModem(Modem):
    async def reset(self) -> None:
        await trio.lowlevel.checkpoint()
        self._recorded()


@pytest.mark.parametrize("kind", [SyncModem, AsyncModem])
async def test_an_adapter_with_reset_is_reset_after_the_cooldown(autojump_clock, kind: type[Modem]):
    modem = kind()
    harness = AppHarness.create(
        health_check_interval=INTERVAL, restart_after_failures=2, restart_cooldown=COOLDOWN
    )
    harness.app.adapter(Modem, lambda: modem)

    @harness.app.telemetry("signal", interval=10)
    async def signal(modem: Modem) -> dict[str, int]:
        return {"resets": len(modem.resets)}

    async with harness.serving():
        await trio.testing.wait_all_tasks_blocked()  # the first probe
        start = trio.current_time()
        modem.healthy = False
        await trio.sleep(3 * INTERVAL + 1)
        assert modem.resets == [pytest.approx(start + 2 * INTERVAL + COOLDOWN, abs=1)]
        assert availability(harness, "signal") == ["online", "offline", "online"]
        assert harness.state("signal") == {"resets": 1}


async def test_a_spent_budget_leaves_the_adapter_and_its_devices_offline_for_good(
    autojump_clock, caplog
):
    meters = Meters()
    meters.sick.update(range(1, 10))
    harness = meter_harness(meters, max_restarts=1)
    async with harness.serving():
        await trio.sleep(10 * INTERVAL)
        assert meters.built == 2  # the first meter and one restart
        assert adapter_states(harness) == {"Meter": "failed"}
        assert availability(harness, "gas") == ["offline"]
        running = harness.app.running
        assert running is not None
        beat = json.loads(running._heartbeat())
        assert beat["adapters"] == {"Meter": "failed"}
        assert beat["devices"]["gas"]["status"] == "unavailable"
    assert messages(caplog, logging.CRITICAL) == [
        "adapter Meter failed again after 1 restarts: gas offline for good"
    ]


@pytest.mark.parametrize(("healthy_for", "restarted"), [(60.0, False), (150.0, True)])
async def test_the_restart_count_resets_after_sustained_health(
    autojump_clock, caplog, healthy_for: float, restarted: bool
):
    meters = Meters()
    harness = meter_harness(
        meters, restart_after_failures=1, max_restarts=1, sustained_health_reset=100.0
    )
    async with harness.serving():
        ((_, start),) = meters.at("enter")
        meters.sick.add(1)
        await trio.sleep_until(start + INTERVAL + COOLDOWN + 1)  # one failure, one restart
        assert meters.built == 2
        await trio.sleep(healthy_for)  # meter 2 is healthy meanwhile
        meters.sick.add(2)
        await trio.sleep(2 * INTERVAL + COOLDOWN)
    assert meters.built == (3 if restarted else 2)
    critical = messages(caplog, logging.CRITICAL)
    assert critical == ([] if restarted else [critical[0]])
    assert restarted or critical[0].startswith("adapter Meter failed again after 1 restarts")


class SealedMeter(Meter):
    restartable = False


@pytest.mark.parametrize("options", [{"restartable": False}, {"restart_after_failures": 0}])
async def test_no_restart_when_opted_out_or_disabled(autojump_clock, caplog, options):
    meters = Meters()
    if "restartable" in options:
        meters.build = lambda: SealedMeter(meters, 1)  # type: ignore[method-assign]
        harness = meter_harness(meters)
    else:
        harness = meter_harness(meters, **options)
    async with harness.serving():
        await trio.testing.wait_all_tasks_blocked()  # the first probe
        for _ in range(2):  # two unhealthy episodes
            meters.sick.add(1)
            await trio.sleep(5 * INTERVAL)
            meters.sick.clear()
            await trio.sleep(2 * INTERVAL)
        assert meters.at("exit") == []
        assert availability(harness, "gas") == ["online", "offline", "online", "offline", "online"]
    refusals = [m for m in messages(caplog, logging.WARNING) if "is not restarted" in m]
    if "restartable" in options:
        assert refusals == ["adapter Meter is not restarted: it sets restartable = False"] * 2
    else:
        assert refusals == []
    assert len(meters.at("enter")) == 1


@pytest.mark.parametrize(
    ("option", "value", "message"),
    [
        ("restart_after_failures", -1, "whole number >= 0"),
        ("restart_after_failures", 2.5, "whole number >= 0"),
        ("max_restarts", True, "whole number >= 0"),
        ("max_restarts", "3", "whole number >= 0"),
        ("restart_cooldown", 0, "positive number of seconds"),
        ("restart_cooldown", float("nan"), "positive number of seconds"),
        ("sustained_health_reset", -5.0, "positive number of seconds"),
        ("sustained_health_reset", None, "positive number of seconds"),
    ],
)
def test_bad_restart_options_are_refused_by_name(option: str, value: Any, message: str):
    with pytest.raises(RegistrationError, match=f"^{option} must be a {message}, got"):
        App("bridge", **{option: value})


def test_the_restart_options_default_to_cosalettes():
    policy = App("bridge").adapter_restarts
    assert (policy.after_failures, policy.max_restarts) == (5, 3)
    assert (policy.cooldown, policy.sustained_health_reset) == (5.0, 300.0)


class ResettableRadio:
    """A stream's port that could be reset, but a stream holds it across its life."""

    def __init__(self) -> None:
        self.healthy = True
        self.resets = 0

    async def health_check(self) -> bool:
        return self.healthy

    def reset(self) -> None:
        self.resets += 1

    async def open(self) -> None: ...
    async def close(self) -> None: ...
    async def start_scan(self) -> None: ...
    async def stop_scan(self) -> None: ...
    def register_callback(self, callback: Any) -> None: ...


async def test_a_port_a_stream_reads_is_not_restarted(autojump_clock, caplog):
    radio = ResettableRadio()
    harness = AppHarness.create(health_check_interval=INTERVAL, restart_after_failures=1)
    harness.app.adapter(StreamablePort[int], lambda: radio)

    @harness.app.stream("radio")
    async def readings(stream: Stream[int]) -> AsyncIterator[dict[str, int]]:
        async for value in stream:
            yield {"value": value}

    async with harness.serving():
        await trio.testing.wait_all_tasks_blocked()
        radio.healthy = False
        await trio.sleep(3 * INTERVAL)
    assert radio.resets == 0
    assert [m for m in messages(caplog, logging.WARNING) if "not restarted" in m] == [
        "adapter StreamablePort[int] is not restarted: stream radio reads from it"
    ]


class AsyncioLink:
    """An asyncio adapter (a context manager): entered and exited in the asyncio loop."""

    built: ClassVar[list[AsyncioLink]] = []

    def __init__(self) -> None:
        self.loops: list[str] = []
        AsyncioLink.built.append(self)

    async def __aenter__(self) -> AsyncioLink:
        await asyncio.sleep(0)
        self.loops.append(f"enter in {sniffio.current_async_library()}")
        return self

    async def __aexit__(self, *exc_info: Any) -> None:
        await asyncio.sleep(0)
        self.loops.append(f"exit in {sniffio.current_async_library()}")

    async def health_check(self) -> bool:
        return self is not AsyncioLink.built[0]


async def test_an_asyncio_adapter_is_restarted_in_the_asyncio_loop(autojump_clock):
    AsyncioLink.built.clear()
    harness = AppHarness.create(
        health_check_interval=INTERVAL, restart_after_failures=1, restart_cooldown=COOLDOWN
    )
    harness.app.adapter(AsyncioLink, AsyncioLink, asyncio=True)

    @harness.app.device("link", asyncio=True)
    async def link(link: AsyncioLink) -> None:
        await asyncio.sleep(3600)

    async with harness.serving():
        await trio.sleep(2 * INTERVAL + 1)
        assert availability(harness, "link") == ["offline", "online"]
    first, second = AsyncioLink.built
    assert first.loops == ["enter in asyncio", "exit in asyncio"]
    assert second.loops == ["enter in asyncio", "exit in asyncio"]
