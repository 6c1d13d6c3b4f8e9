"""A scripted boiler and a harness around the bridge, for the bridge's own tests."""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

import attrs
import pytest
from examples.boiler_bridge.app import create_app
from examples.boiler_bridge.ports import Temperatures
from examples.boiler_bridge.settings import BoilerSettings

from triolette import App, MemoryStore
from triolette.testing import AppHarness, FakeClock, MockMqttClient, make_settings


@attrs.define
class ScriptedBoiler:
    """A boiler whose readings come from a script; ``failures`` reads raise ``OSError`` first."""

    flows: list[float] = attrs.Factory(lambda: [40.0])
    pressures: list[float] = attrs.Factory(lambda: [1.5])
    target: float = 45.0
    failures: int = 0
    reads: int = 0

    async def read_temperatures(self) -> Temperatures:
        self.reads += 1
        if self.failures:
            self.failures -= 1
            raise OSError("ebusd: no reply")
        flow = self.flows.pop(0) if len(self.flows) > 1 else self.flows[0]
        return Temperatures(flow=flow, return_flow=flow - 8, outdoor=7.0)

    async def read_pressure(self) -> float:
        return self.pressures.pop(0) if len(self.pressures) > 1 else self.pressures[0]

    async def read_flow_target(self) -> float:
        return self.target

    async def set_flow_target(self, celsius: float) -> None:
        self.target = celsius

    def script(self, flows: Iterable[float]) -> None:
        self.flows = list(flows)


def bridge(boiler: ScriptedBoiler, store: MemoryStore | None = None) -> App:
    return create_app(store=store if store is not None else MemoryStore(), boiler=lambda: boiler)


def settings(**overrides: Any) -> BoilerSettings:
    values: dict[str, Any] = {"poll__temperatures": 10, "poll__pressure": 60} | overrides
    return make_settings(BoilerSettings, **values)


@pytest.fixture
def boiler() -> ScriptedBoiler:
    return ScriptedBoiler()


@pytest.fixture
def harness(boiler: ScriptedBoiler, fake_clock: FakeClock) -> AppHarness:
    return AppHarness(
        app=bridge(boiler), mqtt=MockMqttClient(), clock=fake_clock, settings=settings()
    )
