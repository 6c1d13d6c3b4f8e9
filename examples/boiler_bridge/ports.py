"""What the handlers need from the boiler, whoever provides it."""

from __future__ import annotations

from typing import Protocol

import attrs


@attrs.frozen
class Temperatures:
    flow: float
    return_flow: float
    outdoor: float


class BoilerPort(Protocol):
    """A boiler's readings and its one setting. Raises ``OSError`` when the link fails."""

    async def read_temperatures(self) -> Temperatures: ...

    async def read_pressure(self) -> float: ...

    async def read_flow_target(self) -> float: ...

    async def set_flow_target(self, celsius: float) -> None: ...
