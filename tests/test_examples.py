"""The examples run as the README says, and their state carries over between runs."""

from __future__ import annotations

import importlib.util
import json
import re
import signal
import subprocess
import sys
from functools import partial
from pathlib import Path
from types import ModuleType
from typing import Any

import pytest
import trio
import trio.testing

from tests.helpers import doc_blocks, pytest_in, run_blocks_as_tests
from triolette import MemoryStore
from triolette.testing import AppHarness, Observer
from triolette.testing.mosquitto import free_port

EXAMPLES = Path(__file__).parents[1] / "examples"
GAS_METER = [sys.executable, str(EXAMPLES / "gas_meter.py")]
STATE_LOGGED = re.compile(r"publish gas2mqtt/gas-meter/state (\{.*\}) \(retained\)")


def run_example(name: str, *args: str) -> str:
    return _run(name, *args).stdout


def _run(name: str, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, str(EXAMPLES / name), *args],
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
    )


def load_example(name: str) -> ModuleType:
    spec = importlib.util.spec_from_file_location(f"example_{Path(name).stem}", EXAMPLES / name)
    assert spec is not None
    assert spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def logged_states(log: str) -> list[dict[str, Any]]:
    """The gas meter's states as its log shows them, oldest first."""
    return [json.loads(found) for found in STATE_LOGGED.findall(log)]


def saved_meter(state_dir: Path) -> dict[str, Any]:
    document = json.loads((state_dir / "state.json").read_text())
    assert isinstance(document["gas-meter"], dict)
    return document["gas-meter"]


def test_the_stores_tour_continues_its_counters(tmp_path: Path):
    first = run_example("stores_tour.py", str(tmp_path))
    second = run_example("stores_tour.py", str(tmp_path))
    assert "JsonFileStore" in first
    assert first.count("10 impulses = 0.10 m3, saved") == 2
    assert second.count("20 impulses = 0.20 m3, saved") == 2
    assert 'refused, nothing written: probe: ["calibrated"] is a datetime' in second
    assert (tmp_path / "tour.json").exists()
    assert (tmp_path / "tour.db").exists()
    assert not (tmp_path / "state.json").exists(), "the gas meter example's file"


def test_the_gas_meter_counts_on_from_its_saved_total(tmp_path: Path):
    # An interval that does not divide --seconds keeps the stop away from a tick, so the last
    # logged state is the last change the run made.
    args = ("--state-dir", str(tmp_path), "--seconds", "1", "--interval", "0.15")
    first = _run("gas_meter.py", *args).stderr
    after_first = saved_meter(tmp_path)
    second = _run("gas_meter.py", *args).stderr
    after_second = saved_meter(tmp_path)

    assert f"state lives in {tmp_path / 'state.json'}" in first
    first_states, second_states = logged_states(first), logged_states(second)
    assert len(first_states) >= 3
    assert len(second_states) >= 3
    # The first run starts from nothing and its graceful stop saves what it published last.
    assert first_states[0]["impulses"] == first_states[0]["new_impulses"]
    last = first_states[-1]
    assert after_first == {
        "impulses": last["impulses"],
        "m3": last["m3"],
        "calibration": {"m3_per_impulse": 0.01},
    }
    # The second run continues from that file, then saves its own last state.
    resumed = second_states[0]
    assert resumed["impulses"] - resumed["new_impulses"] == after_first["impulses"]
    assert resumed["m3"] == pytest.approx(after_first["m3"] + 0.01 * resumed["new_impulses"])
    assert after_second["impulses"] == second_states[-1]["impulses"]
    assert after_second["m3"] == second_states[-1]["m3"]


async def _run_until_interrupted(args: list[str], states: int) -> str:
    """Run the gas meter until it logged ``states`` states, then Ctrl-C it; return its log."""
    process = await trio.lowlevel.open_process([*GAS_METER, *args], stderr=subprocess.PIPE)
    assert process.stderr is not None
    log = ""
    try:
        with trio.fail_after(30):
            async for chunk in process.stderr:
                log += chunk.decode()
                if len(logged_states(log)) >= states:
                    break
            process.send_signal(signal.SIGINT)
            async for chunk in process.stderr:
                log += chunk.decode()
            assert await process.wait() == 0, log
    finally:
        if process.returncode is None:
            process.kill()
        with trio.CancelScope(shield=True):
            await process.wait()
            await process.stderr.aclose()
    return log


async def test_the_gas_meter_saves_its_last_total_on_ctrl_c(tmp_path: Path):
    # The next reading is half a second away: the signal lands between two cycles.
    log = await _run_until_interrupted(["--state-dir", str(tmp_path), "--interval", "0.5"], 1)

    assert "SIGINT: stopping" in log
    states = logged_states(log)
    assert states
    saved = saved_meter(tmp_path)
    assert saved["impulses"] == states[-1]["impulses"]
    assert saved["m3"] == states[-1]["m3"]


async def test_the_first_run_embeds_a_broker_and_a_second_run_counts_on(tmp_path: Path):
    """The README's first command: no broker installed, Ctrl-C, run again."""
    args = ["--state-dir", str(tmp_path), "--interval", "0.3"]
    first = await _run_until_interrupted(args, states=3)
    assert "embedded MQTT broker at mqtt://127.0.0.1:" in first
    assert "triolette watch --port" in first  # it says how to look at what it publishes
    assert "stopped; every change is saved in" in first
    saved = saved_meter(tmp_path)
    assert saved["impulses"] == logged_states(first)[-1]["impulses"]

    second = await _run_until_interrupted(args, states=1)
    resumed = logged_states(second)[0]
    assert resumed["impulses"] - resumed["new_impulses"] == saved["impulses"]


async def test_a_subscriber_gets_the_examples_retained_state_from_the_embedded_broker(
    tmp_path: Path,
):
    port = free_port()
    process = await trio.lowlevel.open_process(
        [*GAS_METER, "--state-dir", str(tmp_path), "--interval", "0.2", "--port", str(port)],
        stderr=subprocess.PIPE,
    )
    assert process.stderr is not None
    observer = Observer("127.0.0.1", port, ["gas2mqtt/#"])
    log = ""
    try:
        with trio.fail_after(30):
            async for chunk in process.stderr:  # the first state is out: the broker is up
                log += chunk.decode()
                if logged_states(log):
                    break
            await trio.to_thread.run_sync(observer.start)
            await observer.until(
                lambda ms: any(m.topic == "gas2mqtt/gas-meter/state" and m.retain for m in ms)
            )
    finally:
        await trio.to_thread.run_sync(observer.close)
        process.send_signal(signal.SIGINT)
        with trio.CancelScope(shield=True):
            async for chunk in process.stderr:
                log += chunk.decode()
            await process.wait()
            await process.stderr.aclose()
    assert process.returncode == 0, log
    retained = next(m for m in observer.messages if m.topic == "gas2mqtt/gas-meter/state")
    assert json.loads(retained.payload) in logged_states(log)


async def test_a_calibration_command_changes_the_rate_and_is_saved_at_once(
    autojump_clock: trio.testing.MockClock,
):
    gas_meter = load_example("gas_meter.py")
    backend = MemoryStore({"gas-meter": {"impulses": 100, "m3": 1.0}})
    harness = AppHarness.create(store=backend, name="gas2mqtt")
    gas_meter.add_devices(harness.app, interval=10)

    async with trio.open_nursery() as nursery:
        nursery.start_soon(partial(harness.run, cycles=3))
        await harness.app.wait_for_cycles(1)
        await harness.command("gas-meter-calibration", "not json")
        await harness.command("gas-meter-calibration", '{"m3_per_impulse": 0.05}')
        await harness.app.wait_for_cycles(2)
        await harness.settle()
        # Saved by the handler when it took the calibration over, before the new impulses:
        # the policy alone would not write again within a minute.
        first = harness.states("gas-meter")[0]
        assert backend.load("gas-meter") == {
            "impulses": first["impulses"],
            "m3": first["m3"],
            "calibration": {"m3_per_impulse": 0.05},
        }

    states = harness.states("gas-meter")
    assert [state["m3_per_impulse"] for state in states] == [0.01, 0.05, 0.05]
    assert states[-1]["impulses"] == 100 + sum(state["new_impulses"] for state in states)
    used = sum(state["new_impulses"] * state["m3_per_impulse"] for state in states)
    assert states[-1]["m3"] == pytest.approx(1.0 + used)
    assert harness.state("gas-meter-calibration") == {"m3_per_impulse": 0.05}
    assert [error["type"] for error in harness.errors("gas-meter-calibration")] == [
        "JSONDecodeError"
    ]
    assert backend.load("gas-meter") == {
        "impulses": states[-1]["impulses"],
        "m3": states[-1]["m3"],
        "calibration": {"m3_per_impulse": 0.05},
    }


# -- the guides' code, run as a user would ------------------------------------------------------


def test_the_getting_started_bridge_and_its_test_pass_as_written(tmp_path):
    for body in doc_blocks("getting-started.md"):
        first_line = body.splitlines()[0]  # "# thermo.py"
        (tmp_path / first_line.removeprefix("# ")).write_text(body)
    [config] = doc_blocks("getting-started.md", "toml")
    (tmp_path / "pyproject.toml").write_text(config)

    result = pytest_in(tmp_path)

    assert result.returncode == 0, result.stdout + result.stderr
    assert "1 passed" in result.stdout
    assert not (tmp_path / "data").exists(), "the test touched the bridge's real state file"


def test_the_testing_guide_examples_pass_as_written(tmp_path):
    blocks = doc_blocks("testing.md")
    assert len(blocks) == 4
    run_blocks_as_tests(tmp_path, blocks)
