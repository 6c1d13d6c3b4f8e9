"""The composition root: the App, its adapters, its shared state, its router."""

from __future__ import annotations

from pathlib import Path

from triolette import App, JsonFileStore

from examples.boiler_bridge.ports import BoilerPort
from examples.boiler_bridge.routers import router
from examples.boiler_bridge.settings import BoilerSettings
from examples.boiler_bridge.state import heating

STORE_PATH = Path("data") / "boiler2mqtt.json"

app = App(
    "boiler2mqtt",
    "1.0.0",
    description="A heating boiler on MQTT, through ebusd",
    settings_class=BoilerSettings,
    store=JsonFileStore(STORE_PATH),
    adapters={
        BoilerPort: (
            "examples.boiler_bridge.adapters:EbusdBoiler",
            "examples.boiler_bridge.adapters:SimulatedBoiler",
        )
    },
)
app.state(heating)
app.include_router(router)
