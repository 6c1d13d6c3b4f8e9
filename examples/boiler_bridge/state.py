"""The heating demand, one object per run, shared by the command and the telemetry."""

from __future__ import annotations

import attrs

from examples.boiler_bridge.ports import BoilerPort


@attrs.define
class Heating:
    """The flow temperature asked of the boiler, as this run last knew it."""

    flow_target: float


async def heating(boiler: BoilerPort) -> Heating:
    """The ``@app.state`` factory: the demand starts as the boiler reports it."""
    return Heating(flow_target=await boiler.read_flow_target())
