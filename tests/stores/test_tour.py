"""The stores tour keeps to its own files: it shares ./data with the gas meter example."""

from __future__ import annotations

import importlib.util
import json
from pathlib import Path

from triolette import JsonFileStore

TOUR = Path(__file__).parents[2] / "examples" / "stores_tour.py"


def test_the_tour_leaves_the_gas_meter_state_alone(tmp_path, capsys):
    meter = JsonFileStore(tmp_path / "state.json")  # as examples/gas_meter.py keeps it
    meter.save("gas-meter", {"impulses": 1234, "m3": 12.34})
    meter.close()
    before = {name.name: name.read_bytes() for name in tmp_path.iterdir()}
    spec = importlib.util.spec_from_file_location("stores_tour", TOUR)
    assert spec is not None
    assert spec.loader is not None
    tour = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(tour)

    tour.main(tmp_path)

    assert "10 impulses" in capsys.readouterr().out
    for name, content in before.items():
        assert (tmp_path / name).read_bytes() == content, f"the tour changed {name}"
    assert json.loads((tmp_path / "state.json").read_bytes())["gas-meter"]["impulses"] == 1234
