"""The boiler's entities: two telemetry readings and the flow-target command."""

from __future__ import annotations

import json

from examples.boiler_bridge.models import FlowTargetState, PressureState, TemperaturesState
from examples.boiler_bridge.ports import BoilerPort
from examples.boiler_bridge.state import Heating
from triolette import (
    DeviceStore,
    ExponentialBackoff,
    OnChange,
    Router,
    TriggerPayload,
    setting_ref,
)

LOW_PRESSURE_BAR = 1.0
FLOW_TARGET_RANGE = (20.0, 80.0)

router = Router()


@router.telemetry(
    "temperatures",
    interval=setting_ref("poll.temperatures"),
    publish=OnChange(threshold={"flow": 0.5, "return_flow": 0.5, "outdoor": 0.5, "flow_target": 0}),
    retry=2,
    retry_on=OSError,
    backoff=ExponentialBackoff(base=1.0, max_delay=4.0),
    state_model=TemperaturesState,
    summary="Flow, return and outdoor temperatures; published when one moves by 0.5 °C",
)
async def temperatures(boiler: BoilerPort, heating: Heating) -> dict[str, object]:
    reading = await boiler.read_temperatures()
    return {
        "flow": reading.flow,
        "return_flow": reading.return_flow,
        "outdoor": reading.outdoor,
        "flow_target": heating.flow_target,
    }


@router.telemetry(
    "pressure",
    interval=setting_ref("poll.pressure"),
    triggerable=True,
    min_interval=1.0,
    state_model=PressureState,
    summary="Water pressure; a message on its set topic reads it at once",
)
async def pressure(
    boiler: BoilerPort, trigger: TriggerPayload, store: DeviceStore
) -> dict[str, object]:
    bar = await boiler.read_pressure()
    low = bar < LOW_PRESSURE_BAR
    if low and not store.get("low", False):
        store["low_episodes"] = store.get("low_episodes", 0) + 1
    store["low"] = low
    reason = trigger.get("reason", trigger.source) if trigger.is_triggered else "scheduled"
    return {"bar": bar, "low": low, "reason": str(reason)}


@router.command(
    "flow-target",
    state_model=FlowTargetState,
    summary='Set the flow temperature: {"celsius": 55}',
)
async def flow_target(
    payload: str, boiler: BoilerPort, heating: Heating, store: DeviceStore
) -> dict[str, object]:
    """A payload that is not ``{"celsius": <number in range>}`` is refused (a ValueError)."""
    request = json.loads(payload)
    if not isinstance(request, dict) or not isinstance(request.get("celsius"), int | float):
        raise ValueError(f'expected {{"celsius": <number>}}, got {payload!r}')
    celsius = float(request["celsius"])
    low, high = FLOW_TARGET_RANGE
    if not low <= celsius <= high:
        raise ValueError(f"celsius must be within {low:g}..{high:g}, got {celsius:g}")
    await boiler.set_flow_target(celsius)
    heating.flow_target = celsius
    store["celsius"] = celsius
    store["changes"] = store.get("changes", 0) + 1
    return {"celsius": celsius, "changes": store["changes"]}
