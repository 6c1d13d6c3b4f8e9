"""The ebusd adapter against a server speaking ebusd's line protocol, on a real socket; the
simulated boiler, as a dry run uses it."""

from __future__ import annotations

from collections.abc import Mapping
from functools import partial

import pytest
import trio
import trio.testing
from examples.boiler_bridge.adapters import EbusdBoiler, EbusdError, SimulatedBoiler
from examples.boiler_bridge.ports import BoilerPort, Temperatures

from .conftest import settings


async def ebusd(answers: Mapping[str, str], heard: list[str], stream: trio.SocketStream) -> None:
    """One ebusd connection: each line's answer (or ``ERR: element not found``), then an empty
    line; ``write`` commands are remembered and answered ``done``."""
    buffer = b""
    async with stream:
        while chunk := await stream.receive_some():
            buffer += chunk
            while b"\n" in buffer:
                line, buffer = buffer.split(b"\n", 1)
                command = line.decode()
                heard.append(command)
                answer = "done" if command.startswith("write") else answers.get(command)
                await stream.send_all(f"{answer or 'ERR: element not found'}\n\n".encode())


async def serve(nursery: trio.Nursery, answers: Mapping[str, str]) -> tuple[int, list[str]]:
    heard: list[str] = []
    [listener] = await nursery.start(
        partial(trio.serve_tcp, partial(ebusd, answers, heard), 0, host="127.0.0.1")
    )
    return listener.socket.getsockname()[1], heard


ANSWERS = {
    "read -c bai FlowTemp": "45.5",
    "read -c bai ReturnTemp": "37.0",
    "read -c bai OutdoorstempSensor": "6.5;ok",
    "read -c bai WaterPressure": "1.42",
    "read -c bai FlowTempDesired": "48",
}


async def test_the_ebusd_boiler_reads_and_writes_over_the_line_protocol():
    async with trio.open_nursery() as nursery:
        port, heard = await serve(nursery, ANSWERS)
        boiler: BoilerPort
        async with EbusdBoiler(settings(ebusd={"host": "127.0.0.1", "port": port})) as boiler:
            assert await boiler.read_temperatures() == Temperatures(45.5, 37.0, 6.5)
            assert await boiler.read_pressure() == 1.42
            assert await boiler.read_flow_target() == 48.0
            await boiler.set_flow_target(52.5)
        nursery.cancel_scope.cancel()
    assert heard[-1] == "write -c bai FlowTempDesired 52.5"


async def test_an_ebusd_error_and_a_closed_connection_are_oserrors():
    async with trio.open_nursery() as nursery:
        port, _ = await serve(nursery, {"read -c bai FlowTemp": "warm"})
        async with EbusdBoiler(settings(ebusd={"host": "127.0.0.1", "port": port})) as boiler:
            with pytest.raises(EbusdError, match="FlowTemp is not a number: 'warm'"):
                await boiler.read_temperatures()
            with pytest.raises(EbusdError, match="ERR: element not found"):
                await boiler.read_pressure()
        nursery.cancel_scope.cancel()
    assert issubclass(EbusdError, OSError)  # what the telemetry's retry_on= retries


async def test_a_silent_ebusd_is_an_error_after_the_reply_timeout(
    autojump_clock: trio.testing.MockClock,
):
    async def silent(stream: trio.SocketStream) -> None:
        async with stream:
            await trio.sleep_forever()

    async with trio.open_nursery() as nursery:
        [listener] = await nursery.start(partial(trio.serve_tcp, silent, 0, host="127.0.0.1"))
        port = listener.socket.getsockname()[1]
        async with EbusdBoiler(settings(ebusd={"host": "127.0.0.1", "port": port})) as boiler:
            with pytest.raises(EbusdError, match="no reply to 'read -c bai WaterPressure'"):
                await boiler.read_pressure()
        nursery.cancel_scope.cancel()


def test_the_ebusd_boiler_needs_a_host():
    with pytest.raises(ValueError, match="BOILER_EBUSD__HOST is not set"):
        EbusdBoiler(settings())


async def test_the_simulated_boiler_keeps_its_target_and_reads_plausible_values():
    boiler: BoilerPort = SimulatedBoiler(settings(flow_target_default=60))
    assert await boiler.read_flow_target() == 60
    await boiler.set_flow_target(70)
    assert await boiler.read_flow_target() == 70
    reading = await boiler.read_temperatures()
    assert 19 <= reading.flow <= 70  # from 20 degrees towards the target
    assert reading.return_flow < reading.flow
    assert 1.0 < await boiler.read_pressure() < 2.0
