"""The boiler's entities: two telemetry readings and the flow-target command."""

from __future__ import annotations

from examples.boiler_bridge.models import (
    FlowTargetRequest,
    FlowTargetState,
    PressureState,
    TemperaturesState,
)
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
    payload_model=FlowTargetRequest,  # also in the registry and the AsyncAPI document
    summary='Set the flow temperature: {"celsius": 55}',
)
async def flow_target(
    payload: FlowTargetRequest, boiler: BoilerPort, heating: Heating, store: DeviceStore
) -> dict[str, object]:
    """A payload that is not ``{"celsius": <20..80>}`` is refused before this runs."""
    await boiler.set_flow_target(payload.celsius)
    heating.flow_target = payload.celsius
    store["celsius"] = payload.celsius
    store["changes"] = store.get("changes", 0) + 1
    return {"celsius": payload.celsius, "changes": store["changes"]}
