"""The bridge's settings: ``BOILER_*`` variables or ``.env``, nested fields with ``__``."""

from __future__ import annotations

from pydantic import BaseModel, Field
from pydantic_settings import SettingsConfigDict

from triolette import MqttSettings, Settings


class Ebusd(BaseModel):
    """Where the ebusd daemon listens (``BOILER_EBUSD__HOST``, ``BOILER_EBUSD__PORT``).

    No host: there is no boiler to talk to, and the bridge runs on the simulated one.
    """

    host: str | None = None
    port: int = Field(default=8888, ge=1, le=65535)
    circuit: str = "bai"


class Poll(BaseModel):
    """How often the boiler is read (``BOILER_POLL__TEMPERATURES``, ...), in seconds."""

    temperatures: float = Field(default=2.0, gt=0)
    pressure: float = Field(default=30.0, gt=0)


class BoilerSettings(Settings):
    model_config = SettingsConfigDict(
        env_prefix="BOILER_", env_nested_delimiter="__", env_file=".env", extra="ignore"
    )
    # No broker host by default: `python -m examples.boiler_bridge` starts an embedded one.
    # BOILER_MQTT__HOST (or --host) points the bridge at a real broker.
    mqtt: MqttSettings = MqttSettings(host=None)
    ebusd: Ebusd = Ebusd()
    poll: Poll = Poll()
    flow_target_default: float = Field(default=45.0, ge=20, le=80)
    """The flow temperature asked for until a command sets another."""
