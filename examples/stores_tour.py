"""A tour of triolette's persistence: run it twice and the counters continue.

    python examples/stores_tour.py [STATE_FOLDER]

It keeps a gas meter's impulse count and calibration in ``STATE_FOLDER/tour.json`` (default
``./data``) and a second copy in ``tour.db`` (SQLite), then shows what a save refuses. Its files
are its own: the gas meter example's ``state.json`` in the same folder is never touched.
"""

from __future__ import annotations

import datetime
import sys
from pathlib import Path

from triolette import (
    DeviceStore,
    JsonFileStore,
    SaveAtMostEvery,
    SaveOnChange,
    SqliteStore,
    StateNotJSONError,
)


def main(folder: Path) -> None:
    policy = SaveOnChange() & SaveAtMostEvery(60)  # SD-card friendly: one write a minute at most
    for backend in (JsonFileStore(folder / "tour.json"), SqliteStore(folder / "tour.db")):
        meter = DeviceStore(backend, "gas-meter")
        meter.load()
        meter["impulses"] = meter.get("impulses", 0) + 10
        meter.setdefault("calibration", {"m3_per_impulse": 0.01})
        total = meter["impulses"] * meter["calibration"]["m3_per_impulse"]
        due = policy.should_save(meter, published=False)
        if due:
            meter.save()
        print(f"{backend!r}: {meter['impulses']} impulses = {total:.2f} m3", end="")
        print(", saved" if due else ", not due yet")
        backend.close()

    probe = DeviceStore(JsonFileStore(folder / "tour-probe.json"), "probe")
    probe.load()
    probe["calibrated"] = datetime.datetime.now()
    try:
        probe.save()
    except StateNotJSONError as error:
        print(f"refused, nothing written: {error}")
    print(f"state lives in {folder.absolute()}; run again and the counts go on")


if __name__ == "__main__":
    main(Path(sys.argv[1] if len(sys.argv) > 1 else "data"))
