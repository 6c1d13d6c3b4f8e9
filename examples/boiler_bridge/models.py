"""The shapes of the published states, with the metadata a dashboard reads.

The field metadata is plain ``json_schema_extra``: unit and device class per field, as Home
Assistant names them.
"""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, ConfigDict, Field

CELSIUS: dict[str, Any] = {"unit": "°C", "device_class": "temperature"}


class TemperaturesState(BaseModel):
    model_config = ConfigDict(extra="forbid")
    flow: float = Field(json_schema_extra=CELSIUS)
    return_flow: float = Field(json_schema_extra=CELSIUS)
    outdoor: float = Field(json_schema_extra=CELSIUS)
    flow_target: float = Field(json_schema_extra=CELSIUS)


class PressureState(BaseModel):
    model_config = ConfigDict(extra="forbid")
    bar: float = Field(json_schema_extra={"unit": "bar", "device_class": "pressure"})
    low: bool = Field(json_schema_extra={"device_class": "problem"})
    reason: str


class FlowTargetState(BaseModel):
    model_config = ConfigDict(extra="forbid")
    celsius: float = Field(json_schema_extra=CELSIUS)
    changes: int


class FlowTargetRequest(BaseModel):
    """What the flow-target command takes: ``{"celsius": 55}``, within the boiler's range."""

    model_config = ConfigDict(extra="forbid")
    celsius: float = Field(ge=20, le=80, json_schema_extra=CELSIUS)
