"""A module-level app, as a user's ``thermo.py`` declares it, for the harness tests."""

from __future__ import annotations

import json

from triolette import App, DeviceStore, JsonFileStore, SaveOnChange

app = App("thermo", store=JsonFileStore("/nonexistent/thermo/state.json"))


@app.telemetry("sensor", interval=30, persist=SaveOnChange())
async def sensor(store: DeviceStore) -> dict[str, object]:
    store["reads"] = store.get("reads", 0) + 1
    return {"celsius": 21.5, "reads": store["reads"]}


@app.command("setpoint", persist=SaveOnChange())
async def setpoint(payload: str, store: DeviceStore) -> dict[str, object]:
    store["celsius"] = float(json.loads(payload)["celsius"])
    return {"celsius": store["celsius"]}
