"""``python -m examples.boiler_bridge`` as a user runs it: embedded broker, no setup."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
from pathlib import Path

import trio

from triolette.testing import Observer, publish_once
from triolette.testing.mosquitto import free_port

ROOT = Path(__file__).parents[3]


def environment() -> dict[str, str]:
    """This environment, with the repository on the path (the bridge is ``examples.…``) and no
    variable of the bridge's own."""
    env = {name: value for name, value in os.environ.items() if not name.startswith("BOILER_")}
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(ROOT), env.get("PYTHONPATH")]))
    return env


async def test_the_bridge_runs_with_an_embedded_broker_and_takes_a_command(tmp_path: Path):
    port = free_port()
    process = await trio.lowlevel.open_process(
        [sys.executable, "-m", "examples.boiler_bridge", "--port", str(port)],
        cwd=tmp_path,
        env=environment(),
        stderr=subprocess.PIPE,
    )
    assert process.stderr is not None
    observer = Observer("127.0.0.1", port, ["boiler2mqtt/#"])
    log = ""
    try:
        with trio.fail_after(30):
            async for chunk in process.stderr:  # the first state is out: the broker is up
                log += chunk.decode()
                if "publish boiler2mqtt/temperatures/state" in log:
                    break
            await trio.to_thread.run_sync(observer.start)
            await trio.to_thread.run_sync(
                publish_once, "127.0.0.1", port, "boiler2mqtt/flow-target/set", '{"celsius": 52}'
            )
            await observer.until(
                lambda ms: any(m.topic == "boiler2mqtt/flow-target/state" for m in ms)
            )
    finally:
        await trio.to_thread.run_sync(observer.close)
        process.send_signal(signal.SIGINT)
        with trio.CancelScope(shield=True), trio.move_on_after(30):
            async for chunk in process.stderr:
                log += chunk.decode()
            await process.wait()
        if process.returncode is None:
            process.kill()
            await process.wait()
        await process.stderr.aclose()

    assert process.returncode == 0, log
    assert "no BOILER_EBUSD__HOST: the boiler is simulated" in log
    assert f"embedded MQTT broker at mqtt://127.0.0.1:{port}" in log
    assert "triolette watch --port" in log
    state = next(m for m in observer.messages if m.topic == "boiler2mqtt/flow-target/state")
    assert json.loads(state.payload) == {"celsius": 52.0, "changes": 1}
    temperatures = [m for m in observer.messages if m.topic == "boiler2mqtt/temperatures/state"]
    assert temperatures
    assert temperatures[0].retain
    saved = json.loads((tmp_path / "data" / "boiler2mqtt.json").read_text())
    assert saved["flow-target"] == {"celsius": 52.0, "changes": 1}
    assert "stopped; the state is saved in" in log
