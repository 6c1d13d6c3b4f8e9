"""``triolette schema ha-discovery``: the Home Assistant guide's example, offline."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from .test_discovery_configs import check_config

GUIDE = Path(__file__).parents[2] / "docs" / "home-assistant.md"
EXPECTED = {
    "homeassistant/binary_sensor/greenhouse/bridge/config",
    "homeassistant/sensor/greenhouse/climate_celsius/config",
    "homeassistant/sensor/greenhouse/climate_humidity/config",
    "homeassistant/binary_sensor/greenhouse/climate_window_open/config",
    "homeassistant/sensor/greenhouse/vent_opening/config",
    "homeassistant/number/greenhouse/vent_opening_cmd/config",
}


def write_example(folder: Path) -> Path:
    """The guide's first Python block, as ``greenhouse.py`` in ``folder``."""
    block = re.findall(r"```python\n(.*?)```", GUIDE.read_text(), re.DOTALL)[0]
    path = folder / "greenhouse.py"
    path.write_text(block)
    return path


def schema_command(folder: Path, *args: str, **env: str) -> subprocess.CompletedProcess[str]:
    clean = {k: v for k, v in os.environ.items() if not k.startswith("TRIOLETTE_")}
    return subprocess.run(
        [sys.executable, "-m", "triolette", "schema", "ha-discovery", *args],
        cwd=folder,
        env={**clean, **env},
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


def test_the_guides_example_prints_its_configs_as_json(tmp_path: Path) -> None:
    write_example(tmp_path)
    result = schema_command(tmp_path, "greenhouse:app")
    assert result.returncode == 0, result.stderr
    configs: dict[str, Any] = json.loads(result.stdout)
    assert set(configs) == EXPECTED
    for topic, config in configs.items():
        check_config(topic, config)
    number = configs["homeassistant/number/greenhouse/vent_opening_cmd/config"]
    assert (number["min"], number["max"], number["unit_of_measurement"]) == (0, 100, "%")
    assert number["command_topic"] == "greenhouse/vent/set"
    window = configs["homeassistant/binary_sensor/greenhouse/climate_window_open/config"]
    assert window["device_class"] == "window"
    assert not (tmp_path / "greenhouse-state.json").exists()  # nothing opened


def test_the_prefix_and_an_output_file(tmp_path: Path) -> None:
    write_example(tmp_path)
    result = schema_command(tmp_path, "greenhouse:app", "--prefix", "ha", "--output", "out.json")
    assert result.returncode == 0, result.stderr
    assert result.stdout == ""
    configs = json.loads((tmp_path / "out.json").read_text())
    assert {topic.replace("ha/", "homeassistant/", 1) for topic in configs} == EXPECTED
    for topic, config in configs.items():
        check_config(topic, config, prefix="ha")


def test_the_topic_prefix_comes_from_the_environment(tmp_path: Path) -> None:
    write_example(tmp_path)
    result = schema_command(tmp_path, "greenhouse:app", TRIOLETTE_TOPIC_PREFIX="gh")
    assert result.returncode == 0, result.stderr
    configs = json.loads(result.stdout)
    celsius = configs["homeassistant/sensor/greenhouse/climate_celsius/config"]
    assert celsius["state_topic"] == "gh/climate/state"
    assert celsius["availability"][1]["topic"] == "gh/status"


def test_settings_from_an_env_file(tmp_path: Path) -> None:
    write_example(tmp_path)
    (tmp_path / "bridge.env").write_text("TRIOLETTE_TOPIC_PREFIX=fromfile\n")
    result = schema_command(tmp_path, "greenhouse:app", "--env-file", "bridge.env")
    assert result.returncode == 0, result.stderr
    configs = json.loads(result.stdout)
    vent = configs["homeassistant/number/greenhouse/vent_opening_cmd/config"]
    assert vent["command_topic"] == "fromfile/vent/set"


@pytest.mark.parametrize(
    ("args", "complaint"),
    [
        (["nowhere:app"], "no module named 'nowhere'"),
        (["greenhouse:app", "--prefix", "a/b"], "discovery prefix 'a/b'"),
        (["greenhouse:app", "--env-file", "missing.env"], "missing.env"),
    ],
)
def test_bad_input_is_one_line_and_status_3(tmp_path: Path, args: list[str], complaint: str):
    write_example(tmp_path)
    result = schema_command(tmp_path, *args)
    assert result.returncode == 3
    assert complaint in result.stderr
