"""``triolette registry``, run as a real process: the table, JSON, AsyncAPI, exit statuses.

Also the registry of the gas-meter example, compared with the table the registry guide shows.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

from tests.runtime.test_registry_view import app
from triolette import build_registry_snapshot, format_registry_table

ROOT = Path(__file__).resolve().parents[2]
APP = "tests.runtime.test_registry_view:app"
GUIDE = ROOT / "docs" / "registry.md"


def triolette(*args: str, cwd: Path = ROOT, **env: str) -> subprocess.CompletedProcess[str]:
    """``python -m triolette ARGS``; ``env`` is added to ours (``PYTHONPATH`` in front)."""
    environment = {k: v for k, v in os.environ.items() if not k.startswith("TRIOLETTE_")}
    if "PYTHONPATH" in env:
        env["PYTHONPATH"] += os.pathsep + environment.get("PYTHONPATH", "")
    return subprocess.run(
        [sys.executable, "-m", "triolette", *args],
        cwd=cwd,
        env={**environment, **env},
        capture_output=True,
        text=True,
        timeout=60,
    )


def test_the_table_is_printed_by_default():
    result = triolette("registry", APP)
    assert (result.returncode, result.stderr) == (0, "")
    assert result.stdout == format_registry_table(build_registry_snapshot(app)) + "\n"


def test_json_prints_the_snapshot():
    result = triolette("registry", APP, "--json")
    assert (result.returncode, result.stderr) == (0, "")
    assert json.loads(result.stdout) == build_registry_snapshot(app)


def test_asyncapi_alone_prints_only_the_document():
    result = triolette("registry", APP, "--asyncapi")
    assert (result.returncode, result.stderr) == (0, "")
    assert json.loads(result.stdout) == app.asyncapi()


def test_asyncapi_with_a_file_writes_it_and_prints_the_table(tmp_path):
    target = tmp_path / "house.asyncapi.json"
    result = triolette("registry", APP, "--asyncapi", str(target), "--json")
    assert (result.returncode, result.stderr) == (0, "")
    assert json.loads(target.read_text()) == app.asyncapi()
    assert json.loads(result.stdout)["app"]["name"] == "house"


def test_an_asyncapi_file_that_cannot_be_written_exits_1(tmp_path):
    target = tmp_path / "missing" / "doc.json"
    result = triolette("registry", APP, "--asyncapi", str(target))
    assert result.returncode == 1
    assert result.stderr.startswith(f"error: cannot write {target}: ")
    assert len(result.stderr.splitlines()) == 1


@pytest.mark.parametrize(
    ("reference", "env", "message"),
    [
        (
            "tests.runtime.cli_app:app",
            {"CLI_APP_MODE": "import"},
            "error: tests.runtime.cli_app:app: importing tests.runtime.cli_app failed: "
            "RuntimeError: cli_app was told to fail",
        ),
        (
            "tests.runtime.test_registry_view:nothing",
            {},
            "error: tests.runtime.test_registry_view:nothing: module "
            "'tests.runtime.test_registry_view' has no attribute 'nothing'",
        ),
        ("no_such_module:app", {}, "error: no_such_module:app: no module named 'no_such_module'"),
        (
            "tests.runtime.test_registry_view:Tick",
            {},
            "error: tests.runtime.test_registry_view:Tick: 'Tick' is not a triolette App "
            "(found type)",
        ),
    ],
)
def test_an_app_that_cannot_be_loaded_is_one_line_and_exit_3(reference, env, message):
    result = triolette("registry", reference, **env)
    assert (result.returncode, result.stdout) == (3, "")
    assert result.stderr == message + "\n"


def test_a_usage_error_exits_3():
    result = triolette("registry")
    assert result.returncode == 3
    assert "error: the following arguments are required: MODULE[:ATTR]" in result.stderr


# -- the example bridges -----------------------------------------------------------------------


def guide_block(after: str) -> str:
    """The first fenced block of the registry guide after the line starting with ``after``."""
    text = GUIDE.read_text()
    start = text.index(after)
    match = re.search(r"```[a-z]*\n(.*?)```", text[start:], re.DOTALL)
    assert match is not None, f"no code block after {after!r} in {GUIDE.name}"
    return match.group(1)


def test_the_gas_meter_registry_is_the_table_the_guide_shows(tmp_path):
    (tmp_path / "gas_registry.py").write_text(guide_block("```python\n# gas_registry.py"))
    result = triolette(
        "registry", "gas_registry.py", cwd=tmp_path, PYTHONPATH=str(ROOT / "examples")
    )
    assert (result.returncode, result.stderr) == (0, "")
    assert result.stdout == guide_block("<!-- registry-table")


def test_the_gas_meter_asyncapi_names_its_topics(tmp_path):
    (tmp_path / "gas_registry.py").write_text(guide_block("```python\n# gas_registry.py"))
    result = triolette(
        "registry", "gas_registry.py", "--asyncapi", cwd=tmp_path, PYTHONPATH=str(ROOT / "examples")
    )
    assert result.returncode == 0, result.stderr
    channels = json.loads(result.stdout)["channels"]
    addresses = {key: channel["address"] for key, channel in channels.items()}
    assert addresses["gas-meter.state"] == "gas2mqtt/gas-meter/state"
    assert addresses["gas-meter-calibration.set"] == "gas2mqtt/gas-meter-calibration/set"
    assert "gas-meter.set" not in addresses


MULTI_MODULE = ROOT / "examples" / "boiler_bridge" / "app.py"


@pytest.mark.skipif(not MULTI_MODULE.exists(), reason="the multi-module example is not here yet")
def test_the_multi_module_example_prints_its_registry():
    result = triolette("registry", "examples.boiler_bridge.app:app")
    assert (result.returncode, result.stderr) == (0, "")
    assert "NAME" in result.stdout.splitlines()[3]
    asyncapi = triolette("registry", "examples.boiler_bridge.app:app", "--asyncapi")
    assert asyncapi.returncode == 0, asyncapi.stderr
    assert json.loads(asyncapi.stdout)["asyncapi"] == "3.0.0"


def test_an_env_file_gives_the_settings_that_name_the_devices(tmp_path):
    env_file = tmp_path / "house.env"
    env_file.write_text('ROOMS=["attic", "cellar"]\nPOLL__SECONDS=12\n')
    result = triolette("registry", APP, "--json", "--env-file", str(env_file))
    assert (result.returncode, result.stderr) == (0, "")
    found = {entity["name"]: entity for entity in json.loads(result.stdout)["entities"]}
    assert "attic" in found
    assert "kitchen" not in found
    assert found["cellar"]["topics"]["state"] == "house/cellar/state"
    assert found["meter"]["schedule"]["interval"] == 12.0


def test_a_missing_env_file_or_bad_settings_in_it_exit_3(tmp_path):
    missing = triolette("registry", APP, "--env-file", str(tmp_path / "nope.env"))
    assert (missing.returncode, missing.stdout) == (3, "")
    assert missing.stderr == f"error: --env-file: no such file: {tmp_path / 'nope.env'}\n"
    env_file = tmp_path / "bad.env"
    env_file.write_text("POLL__SECONDS=soon\n")
    bad = triolette("registry", APP, "--env-file", str(env_file))
    assert (bad.returncode, bad.stdout) == (3, "")
    assert bad.stderr.startswith("error: ")
    assert "POLL__SECONDS" in bad.stderr
    assert len(bad.stderr.splitlines()) == 1
