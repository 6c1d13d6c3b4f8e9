"""The examples run as the README says, and their state carries over between runs."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

EXAMPLES = Path(__file__).parents[1] / "examples"


def run_example(name: str, *args: str) -> str:
    done = subprocess.run(
        [sys.executable, str(EXAMPLES / name), *args],
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
    )
    return done.stdout


def test_the_stores_tour_continues_its_counters(tmp_path: Path):
    first = run_example("stores_tour.py", str(tmp_path))
    second = run_example("stores_tour.py", str(tmp_path))
    assert "JsonFileStore" in first
    assert first.count("10 impulses = 0.10 m3, saved") == 2
    assert second.count("20 impulses = 0.20 m3, saved") == 2
    assert 'refused, nothing written: probe: ["calibrated"] is a datetime' in second
    assert (tmp_path / "state.json").exists()
    assert (tmp_path / "state.db").exists()
