"""Health-checked adapters: probed at start and periodically; their devices offline meanwhile."""

from __future__ import annotations

import asyncio
import json
import logging
from typing import Any

import pytest
import sniffio
import trio
import trio.testing

from triolette import App, DeviceContext, HealthCheckable, RegistrationError
from triolette.testing import AppHarness


class GasMeter:
    """An adapter double whose health the test sets: a bool, an exception, or a hang."""

    def __init__(self, healthy: bool = True) -> None:
        self.answer: bool | Exception | None = healthy
        self.probes = 0

    async def health_check(self) -> bool:
        self.probes += 1
        if self.answer is None:
            await trio.sleep_forever()
        if isinstance(self.answer, Exception):
            raise self.answer
        return bool(self.answer)

    def read(self) -> int:
        return 42


class Thermometer:
    """An adapter without a health check."""


def metered_harness(meter: GasMeter, **options: Any) -> AppHarness:
    harness = AppHarness.create(**options)
    app = harness.app
    app.adapter(GasMeter, lambda: meter)
    app.adapter(Thermometer, Thermometer)

    @app.telemetry("gas", interval=10)
    async def gas(meter: GasMeter) -> dict[str, int]:
        return {"m3": meter.read()}

    @app.device("heating")
    async def heating(ctx: DeviceContext, thermometer: Thermometer) -> None:
        await trio.sleep_forever()

    return harness


def availability(harness: AppHarness, device: str) -> list[str]:
    return harness.broker.payloads(f"{harness.app.topics.prefix}/{device}/availability")


def test_health_checkable_is_a_runtime_protocol():
    assert isinstance(GasMeter(), HealthCheckable)
    assert not isinstance(Thermometer(), HealthCheckable)


@pytest.mark.parametrize("failure", [False, OSError("no answer from the meter"), None])
async def test_an_unhealthy_adapter_takes_its_devices_offline_and_back(
    autojump_clock, caplog, failure: bool | Exception | None
):
    caplog.set_level(logging.INFO, logger="triolette.health")
    meter = GasMeter()
    harness = metered_harness(meter)
    async with harness.serving():
        await trio.sleep(1)
        assert availability(harness, "gas") == ["online"]
        meter.answer = failure
        await trio.sleep(30 + 15)  # the next probe, and its timeout (half the interval)
        assert availability(harness, "gas") == ["online", "offline"]
        assert availability(harness, "heating") == ["online"]  # it does not use the meter
        assert harness.app.statistics().adapters == {"GasMeter": "unhealthy"}
        running = harness.app.running
        assert running is not None
        beat = json.loads(running._heartbeat())
        assert beat["adapters"] == {"GasMeter": "unhealthy"}
        assert beat["devices"]["gas"]["status"] == "unavailable"
        assert beat["devices"]["heating"] == {"status": "ok"}

        meter.answer = True
        await trio.sleep(30)
        assert availability(harness, "gas") == ["online", "offline", "online"]
        assert harness.app.statistics().adapters == {"GasMeter": "ok"}
    warnings = [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING]
    assert len(warnings) == 1  # one per episode, however many probes failed
    assert warnings[0].startswith("adapter GasMeter is unhealthy (")
    assert warnings[0].endswith("): gas offline")


async def test_an_adapter_unhealthy_at_start_keeps_its_devices_from_ever_showing_online(
    autojump_clock,
):
    meter = GasMeter(healthy=False)
    harness = metered_harness(meter)
    async with harness.serving():
        await trio.testing.wait_all_tasks_blocked()
        assert meter.probes == 1  # probed before the devices started
        assert availability(harness, "gas") == ["offline"]
        meter.answer = True
        await trio.sleep(31)  # the next probe
        assert availability(harness, "gas") == ["offline", "online"]


async def test_no_probes_when_the_interval_is_none(autojump_clock):
    meter = GasMeter(healthy=False)
    harness = metered_harness(meter, health_check_interval=None)
    async with harness.serving():
        await trio.sleep(100)
    assert meter.probes == 0
    assert availability(harness, "gas") == ["online", "offline"]
    assert harness.app.statistics().adapters == {}


@pytest.mark.parametrize("interval", [0, -1, float("inf"), "30", True])
def test_a_bad_interval_is_refused(interval: Any):
    with pytest.raises(RegistrationError, match="health_check_interval must be a positive"):
        App("bridge", health_check_interval=interval)


class AsyncioMeter:
    """An asyncio adapter: its probe runs in the app's trio-asyncio loop."""

    def __init__(self) -> None:
        self.loops: list[bool] = []

    async def health_check(self) -> bool:
        await asyncio.sleep(0)
        self.loops.append(sniffio.current_async_library() == "asyncio")
        return False


async def test_an_asyncio_adapter_is_probed_in_the_asyncio_loop():
    meter = AsyncioMeter()
    harness = AppHarness.create()
    harness.app.adapter(AsyncioMeter, lambda: meter, asyncio=True)

    @harness.app.device("lamp", asyncio=True)
    async def lamp(meter: AsyncioMeter) -> None:
        await asyncio.sleep(3600)

    async with harness.serving():
        await trio.testing.wait_all_tasks_blocked()
    assert meter.loops == [True]
    assert availability(harness, "lamp") == ["offline"]
