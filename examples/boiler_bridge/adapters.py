"""The boiler through an ebusd daemon, and a simulated boiler for dry runs.

ebusd (the eBUS daemon most Vaillant and Wolf boiler bridges use) answers one command per
line on its TCP port: ``read -c bai FlowTemp`` is answered by ``45.5`` and an empty line,
a failure by ``ERR: ...``.
"""

from __future__ import annotations

import math
import random
import time
from types import TracebackType

import trio

from examples.boiler_bridge.ports import Temperatures
from examples.boiler_bridge.settings import BoilerSettings

REPLY_TIMEOUT = 5.0


class EbusdError(OSError):
    """ebusd answered ``ERR: ...``, or the connection broke."""


class EbusdBoiler:
    """The boiler behind ebusd. An async context manager: the connection is opened on entry
    and closed on exit. One request at a time; a reply is awaited at most ``REPLY_TIMEOUT``
    seconds (then ``EbusdError``)."""

    def __init__(self, settings: BoilerSettings) -> None:
        if settings.ebusd.host is None:
            raise ValueError("BOILER_EBUSD__HOST is not set: there is no ebusd to talk to")
        self.host, self.port = settings.ebusd.host, settings.ebusd.port
        self.circuit = settings.ebusd.circuit
        self._stream: trio.SocketStream | None = None
        self._buffer = b""
        self._lock = trio.Lock()

    async def __aenter__(self) -> EbusdBoiler:
        self._stream = await trio.open_tcp_stream(self.host, self.port)
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        if self._stream is not None:
            await self._stream.aclose()

    async def read_temperatures(self) -> Temperatures:
        return Temperatures(
            flow=await self._read("FlowTemp"),
            return_flow=await self._read("ReturnTemp"),
            outdoor=await self._read("OutdoorstempSensor"),
        )

    async def read_pressure(self) -> float:
        return await self._read("WaterPressure")

    async def read_flow_target(self) -> float:
        return await self._read("FlowTempDesired")

    async def set_flow_target(self, celsius: float) -> None:
        await self._ask(f"write -c {self.circuit} FlowTempDesired {celsius:g}")

    async def _read(self, field: str) -> float:
        reply = await self._ask(f"read -c {self.circuit} {field}")
        try:
            return float(reply.split(";")[0])
        except ValueError:
            raise EbusdError(f"ebusd: {field} is not a number: {reply!r}") from None

    async def _ask(self, command: str) -> str:
        if self._stream is None:
            raise EbusdError("ebusd: not connected")
        async with self._lock:
            await self._stream.send_all(command.encode() + b"\n")
            with trio.move_on_after(REPLY_TIMEOUT) as waited:
                while b"\n\n" not in self._buffer:
                    chunk = await self._stream.receive_some()
                    if not chunk:
                        raise EbusdError("ebusd closed the connection")
                    self._buffer += chunk
            if waited.cancelled_caught:
                raise EbusdError(f"ebusd: no reply to {command!r}")
            reply, self._buffer = self._buffer.split(b"\n\n", 1)
        text = reply.decode().strip()
        if text.startswith("ERR:"):
            raise EbusdError(f"ebusd: {text}")
        return text


class SimulatedBoiler:
    """A boiler that warms its flow towards the target, for ``--dry-run`` and demos."""

    def __init__(self, settings: BoilerSettings) -> None:
        self.target = settings.flow_target_default
        self.flow = 20.0
        self._since = time.monotonic()

    async def read_temperatures(self) -> Temperatures:
        now = time.monotonic()
        step = 1 - math.exp(-(now - self._since) / 20)  # a 20 s time constant
        self._since = now
        self.flow += (self.target - self.flow) * step + random.uniform(-0.2, 0.2)
        return Temperatures(
            flow=round(self.flow, 1),
            return_flow=round(self.flow - 8 + random.uniform(-0.2, 0.2), 1),
            outdoor=round(7 + random.uniform(-0.3, 0.3), 1),
        )

    async def read_pressure(self) -> float:
        return round(random.uniform(1.1, 1.8), 2)

    async def read_flow_target(self) -> float:
        return self.target

    async def set_flow_target(self, celsius: float) -> None:
        self.target = celsius
