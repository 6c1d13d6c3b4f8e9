"""The shapes of the published states and of the command's payload, with the metadata a
dashboard reads (``triolette.schema``: names, units, device classes; Home Assistant discovery
announces a field that carries it as an entity)."""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict, Field

from triolette import schema


class TemperaturesState(BaseModel):
    model_config = ConfigDict(extra="forbid")
    flow: float = Field(json_schema_extra=schema.temperature("Flow"))
    return_flow: float = Field(json_schema_extra=schema.temperature("Return"))
    outdoor: float = Field(json_schema_extra=schema.temperature("Outdoor"))
    flow_target: float = Field(json_schema_extra=schema.temperature("Flow target"))


class PressureState(BaseModel):
    model_config = ConfigDict(extra="forbid")
    bar: float = Field(
        json_schema_extra=schema.consumer(
            display_name="Water pressure",
            device_class="pressure",
            unit="bar",
            state_class="measurement",
        )
    )
    low: bool = Field(
        json_schema_extra=schema.consumer(display_name="Low pressure", device_class="problem")
    )
    reason: str


class FlowTargetState(BaseModel):
    model_config = ConfigDict(extra="forbid")
    celsius: float = Field(json_schema_extra=schema.temperature("Flow target set"))
    changes: int


class FlowTargetRequest(BaseModel):
    """What the flow-target command takes: ``{"celsius": 55}``, within the boiler's range."""

    model_config = ConfigDict(extra="forbid")
    celsius: float = Field(ge=20, le=80, json_schema_extra=schema.temperature("Flow target"))
