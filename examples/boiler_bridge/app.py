"""The composition root: the App, its adapters, its shared state, its router."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

from examples.boiler_bridge.ports import BoilerPort
from examples.boiler_bridge.routers import router
from examples.boiler_bridge.settings import BoilerSettings
from examples.boiler_bridge.state import heating
from triolette import App, JsonFileStore, Store

STORE_PATH = Path("data") / "boiler2mqtt.json"

REAL_AND_SIMULATED = (
    "examples.boiler_bridge.adapters:EbusdBoiler",
    "examples.boiler_bridge.adapters:SimulatedBoiler",
)


def create_app(store: Store | None = None, boiler: str | Callable[..., Any] | None = None) -> App:
    """The bridge, its state in ``store`` (default: ``./data/boiler2mqtt.json``), the boiler
    from ``boiler`` (default: ebusd, or the simulated boiler in a dry run)."""
    app = App(
        "boiler2mqtt",
        "1.0.0",
        description="A heating boiler on MQTT, through ebusd",
        settings_class=BoilerSettings,
        store=store if store is not None else JsonFileStore(STORE_PATH),
        adapters={BoilerPort: boiler if boiler is not None else REAL_AND_SIMULATED},
    )
    app.state(heating)
    app.include_router(router)
    app.discovery()  # Home Assistant finds every field that carries consumer metadata
    return app


app = create_app()
