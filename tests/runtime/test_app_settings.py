"""An app's own settings (``triolette.Settings``): loading, errors, precedence, injection."""

from __future__ import annotations

import argparse
import importlib
import io
import json
import logging
import os
import subprocess
import sys
from pathlib import Path

import pytest
from pydantic import BaseModel, SecretStr
from pydantic_settings import SettingsConfigDict

import triolette
from tests.helpers import doc_blocks
from triolette import App, DeviceContext, Settings, SettingsError
from triolette.runtime import launch, wiring
from triolette.runtime.app_settings import MqttSettings
from triolette.runtime.launch import resolve_settings
from triolette.runtime.logs import configure_logging
from triolette.runtime.wiring import apply_settings, embedded_broker_for, transport_for
from triolette.testing import AppHarness, make_settings

SECRET = "s3cret-Pa55word"


class PollSettings(BaseModel):
    seconds: float = 30.0


class GasSettings(Settings):
    model_config = SettingsConfigDict(env_prefix="GAS_", env_nested_delimiter="__", env_file=".env")
    poll: PollSettings = PollSettings()
    serial_port: str = "/dev/ttyUSB0"


@pytest.fixture
def clean_env(monkeypatch, tmp_path):
    """No GAS_/TRIOLETTE_ variables from the outside, and a folder without a .env."""
    for name in list(os.environ):
        if name.startswith(("GAS_", "TRIOLETTE_", "MQTT", "LOGGING")):
            monkeypatch.delenv(name)
    monkeypatch.chdir(tmp_path)
    monkeypatch.setattr(launch, "configure_logging", lambda *args: None)
    return tmp_path


def test_a_subclass_reads_its_prefix_nested_variables_and_the_env_file(clean_env, monkeypatch):
    (clean_env / ".env").write_text("GAS_SERIAL_PORT=/dev/ttyACM0\nGAS_POLL__SECONDS=5\n")
    monkeypatch.setenv("GAS_MQTT__HOST", "broker.lan")
    monkeypatch.setenv("GAS_POLL__SECONDS", "7")  # a real variable beats the env file
    settings = GasSettings()
    assert (settings.mqtt.host, settings.serial_port, settings.poll.seconds) == (
        "broker.lan",
        "/dev/ttyACM0",
        7.0,
    )
    assert settings.mqtt.tls is False  # off by default (cosalette: on)


def test_the_app_builds_its_settings_at_construction_for_decorator_arguments(
    clean_env, monkeypatch
):
    monkeypatch.setenv("GAS_POLL__SECONDS", "12")
    app = App("gas", settings_class=GasSettings)
    assert isinstance(app.settings, GasSettings)
    assert app.settings.poll.seconds == 12.0
    assert app.settings_error is None


async def test_settings_that_fail_at_construction_are_raised_by_the_serve(
    clean_env, monkeypatch, autojump_clock
):
    monkeypatch.setenv("GAS_MQTT__PORT", "0")
    harness = AppHarness.create(settings_class=GasSettings)
    assert harness.app.settings is None
    assert harness.app.settings_error is not None

    @harness.app.telemetry("gas", interval=1)
    async def gas() -> None: ...

    with pytest.raises(SettingsError, match=r"^GAS_MQTT__PORT \(mqtt.port\): "):
        await harness.run(cycles=1)


def test_a_validation_error_is_one_line_naming_the_variable_never_the_value(clean_env, monkeypatch):
    monkeypatch.setenv("GAS_MQTT__PORT", SECRET)
    monkeypatch.setenv("GAS_POLL__SECONDS", "often")
    with pytest.raises(SettingsError) as raised:
        resolve_settings(argparse.Namespace(), app=App("gas", settings_class=GasSettings))
    message = str(raised.value)
    assert "\n" not in message
    assert message.startswith("GAS_MQTT__PORT (mqtt.port): Input should be a valid integer")
    assert message.endswith("(and 1 more)")
    assert SECRET not in message


def test_precedence_flag_then_triolette_variable_then_app_settings_then_default(
    clean_env, monkeypatch
):
    monkeypatch.setenv("GAS_MQTT__HOST", "from-app-settings")
    monkeypatch.setenv("GAS_MQTT__KEEPALIVE", "15")
    monkeypatch.setenv("GAS_MQTT__USERNAME", "app-user")
    monkeypatch.setenv("GAS_LOGGING__FORMAT", "json")
    monkeypatch.setenv("TRIOLETTE_MQTT_USERNAME", "operator")
    app = App("gas", settings_class=GasSettings)
    flags = argparse.Namespace(mqtt_host="from-flag")
    settings = resolve_settings(flags, app=app)
    assert settings.mqtt_host == "from-flag"
    assert settings.username == "operator"
    assert (settings.keepalive, settings.sources["keepalive"]) == (15.0, "GAS_MQTT__KEEPALIVE")
    assert settings.log_format == "json"
    assert settings.mqtt_port == 1883
    assert settings.sources["mqtt_port"] == "settings default mqtt.port"
    assert settings.tls is False
    without_flag = resolve_settings(argparse.Namespace(), app=app)
    assert without_flag.mqtt_host == "from-app-settings"


def test_an_invalid_value_from_the_app_settings_names_its_variable(clean_env, monkeypatch):
    monkeypatch.setenv("GAS_MQTT__TLS_CA_FILE", str(clean_env / "absent.pem"))
    app = App("gas", settings_class=GasSettings)
    with pytest.raises(SettingsError, match=r"^GAS_MQTT__TLS_CA_FILE: no such file"):
        resolve_settings(argparse.Namespace(), app=app)


def test_the_env_file_flag_feeds_the_settings_class(clean_env):
    (clean_env / ".env").write_text("GAS_SERIAL_PORT=/dev/from-dot-env\n")
    other = clean_env / "prod.env"
    other.write_text("GAS_SERIAL_PORT=/dev/from-flag\nTRIOLETTE_TOPIC_PREFIX=house\n")
    app = App("gas", settings_class=GasSettings)
    assert app.settings.serial_port == "/dev/from-dot-env"
    settings = resolve_settings(argparse.Namespace(env_file=str(other)), app=app)
    assert app.settings.serial_port == "/dev/from-flag"  # rebuilt by the run
    assert settings.topic_prefix == "house"


def test_the_password_is_a_secret_mapped_onto_the_connection(clean_env, monkeypatch):
    monkeypatch.setenv("GAS_MQTT__PASSWORD", SECRET)
    monkeypatch.setenv("GAS_MQTT__HOST", "broker.lan")
    app = App("gas", settings_class=GasSettings)
    assert isinstance(app.settings.mqtt.password, SecretStr)
    assert SECRET not in repr(app.settings)
    settings = resolve_settings(argparse.Namespace(), app=app)
    assert settings.password == SECRET
    assert SECRET not in repr(settings)
    transport = transport_for(settings, "gas")
    assert transport.host == "broker.lan"  # type: ignore[union-attr]


def test_a_dry_run_connects_only_to_a_host_given_explicitly(clean_env, monkeypatch):
    app = App("gas", settings_class=GasSettings)
    settings = resolve_settings(argparse.Namespace(dry_run=True), app=app)
    assert settings.mqtt_host == "localhost"  # the settings' default, as with cosalette
    assert not settings.host_given
    apply_settings(settings, app)
    assert app.dry_run is True
    assert type(app.transport).__name__ == "LogTransport"
    monkeypatch.setenv("GAS_MQTT__HOST", "broker.lan")
    app = App("gas", settings_class=GasSettings)
    settings = resolve_settings(argparse.Namespace(dry_run=True), app=app)
    assert settings.host_given
    apply_settings(settings, app)
    assert type(app.transport).__name__ == "PahoTransport"


class EmbeddedByDefault(Settings):
    model_config = SettingsConfigDict(env_prefix="EMB_", env_nested_delimiter="__")
    mqtt: MqttSettings = MqttSettings(host=None)


def test_a_settings_class_without_a_host_gets_the_embedded_broker(clean_env, monkeypatch):
    app = App("gas", settings_class=EmbeddedByDefault)
    settings = resolve_settings(argparse.Namespace(), app=app)
    assert settings.mqtt_host is None
    apply_settings(settings, app)
    assert app.transport is None
    assert app.embedded_broker is not None
    # The class's default port (1883) does not pin the broker: 1883 when free, else any.
    monkeypatch.setattr(wiring, "usual_port_or_free", lambda: 54321)
    assert embedded_broker_for(settings).port == 54321  # type: ignore[union-attr]
    monkeypatch.setenv("EMB_MQTT__PORT", "1999")
    app = App("gas", settings_class=EmbeddedByDefault)
    settings = resolve_settings(argparse.Namespace(), app=app)
    assert embedded_broker_for(settings).port == 1999  # type: ignore[union-attr]
    monkeypatch.setenv("EMB_MQTT__HOST", " broker.lan ")
    app = App("gas", settings_class=EmbeddedByDefault)
    settings = resolve_settings(argparse.Namespace(), app=app)
    apply_settings(settings, app)
    assert app.embedded_broker is None
    assert transport_for(settings, "gas").host == "broker.lan"  # type: ignore[union-attr]
    monkeypatch.setenv("EMB_MQTT__HOST", " ")
    with pytest.raises(SettingsError, match=r"EMB_MQTT__HOST \(mqtt.host\)"):
        resolve_settings(argparse.Namespace(), app=App("gas", settings_class=EmbeddedByDefault))


async def test_handlers_get_the_settings_by_their_class_or_the_base(autojump_clock):
    settings = make_settings(GasSettings, serial_port="/dev/test", poll__seconds=3)
    harness = AppHarness.create()
    harness.app.settings = settings
    seen: list[object] = []

    @harness.app.telemetry("gas", interval=triolette.setting_ref("poll.seconds"))
    async def gas(own: GasSettings, base: Settings, ctx: DeviceContext) -> None:
        seen.extend([own, base, ctx.settings])

    await harness.run(cycles=1)
    assert seen == [settings, settings, settings]
    assert all(item is settings for item in seen)


def test_make_settings_ignores_the_environment_and_env_files(clean_env, monkeypatch):
    (clean_env / ".env").write_text("GAS_SERIAL_PORT=/dev/from-dot-env\n")
    monkeypatch.setenv("GAS_MQTT__HOST", "from-env")
    monkeypatch.setenv("MQTT__HOST", "from-env")
    settings = make_settings(GasSettings, mqtt={"port": 1884})
    assert type(settings) is GasSettings
    assert (settings.mqtt.host, settings.mqtt.port) == ("localhost", 1884)
    assert settings.serial_port == "/dev/ttyUSB0"
    base = make_settings(mqtt__host="test-broker")
    assert type(base) is Settings
    assert base.mqtt.host == "test-broker"


def test_make_settings_refuses_unknown_names_and_bad_values():
    with pytest.raises(TypeError, match="GasSettings has no field 'serial'"):
        make_settings(GasSettings, serial="/dev/x")
    with pytest.raises(SettingsError, match=r"^GAS_POLL__SECONDS \(poll.seconds\)"):
        make_settings(GasSettings, poll__seconds="never")
    with pytest.raises(TypeError, match=r"not a subclass of triolette\.Settings"):
        make_settings(dict)  # type: ignore[type-var]


# -- in a real process ------------------------------------------------------------------------

SCRIPT = """\
from pydantic_settings import SettingsConfigDict

from triolette import App, Settings


class GasSettings(Settings):
    model_config = SettingsConfigDict(env_prefix="GAS_", env_nested_delimiter="__")
    serial_port: str = "/dev/ttyUSB0"


app = App("gas", settings_class=GasSettings)


@app.telemetry("gas", interval=1)
async def gas(settings: GasSettings) -> dict[str, str]:
    app.shutdown()
    return {"port": settings.serial_port}


if __name__ == "__main__":
    app.run()
"""


def _run(folder: Path, *args: str, **env: str) -> subprocess.CompletedProcess[str]:
    (folder / "gasapp.py").write_text(SCRIPT)
    clean = {k: v for k, v in os.environ.items() if not k.startswith(("TRIOLETTE_", "GAS_"))}
    inherited = os.environ.get("PYTHONPATH", "")
    return subprocess.run(
        [sys.executable, *args],
        cwd=folder,
        env={**clean, **env, "PYTHONPATH": os.pathsep.join(filter(None, [str(folder), inherited]))},
        capture_output=True,
        text=True,
        timeout=60,
    )


@pytest.mark.parametrize("how", ["app.run()", "triolette run"])
def test_bad_app_settings_exit_3_with_one_line(tmp_path, how):
    args = ["gasapp.py"] if how == "app.run()" else ["-m", "triolette", "run", "gasapp:app"]
    result = _run(tmp_path, *args, GAS_MQTT__PORT="70000")
    assert result.returncode == 3, result.stderr
    assert result.stderr == (
        "error: GAS_MQTT__PORT (mqtt.port): Input should be less than or equal to 65535\n"
    )


def test_a_dry_run_of_a_settings_app_reads_its_variables(tmp_path):
    result = _run(tmp_path, "gasapp.py", "--dry-run", GAS_SERIAL_PORT="/dev/ttyACM3")
    assert result.returncode == 0, result.stderr
    assert 'publish gas/gas/state {"port":"/dev/ttyACM3"}' in result.stderr
    assert "broker=none (dry run" in result.stderr


def test_import_triolette_does_not_import_pydantic():
    code = "import sys, triolette; assert 'pydantic' not in sys.modules, 'imported'"
    subprocess.run([sys.executable, "-c", code], check=True, timeout=60)


def test_settings_without_the_extra_names_the_pip_command():
    code = (
        "import sys; sys.modules['pydantic_settings'] = None\n"
        "import triolette\n"
        "try:\n    triolette.Settings\n"
        "except ImportError as error:\n    print(error)\n"
    )
    result = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, timeout=60, check=True
    )
    assert "pip install 'triolette[settings]'" in result.stdout


def test_the_log_file_of_the_settings_gets_the_log_too(clean_env, monkeypatch):
    root = logging.getLogger()
    handlers, level = list(root.handlers), root.level
    stream = io.StringIO()
    monkeypatch.setattr(
        launch, "configure_logging", lambda lvl, fmt: configure_logging(lvl, fmt, stream=stream)
    )
    path = clean_env / "gas.log"
    monkeypatch.setenv("GAS_LOGGING__FILE", str(path))
    monkeypatch.setenv("GAS_LOGGING__FORMAT", "json")
    try:
        resolve_settings(argparse.Namespace(), app=App("gas", settings_class=GasSettings))
        logging.getLogger("triolette.test").warning("to the file too")
    finally:
        launch.log_to_file(make_settings().logging, root.handlers[0])  # closes the file
        root.handlers[:] = handlers
        root.setLevel(level)
    line = json.loads(path.read_text().splitlines()[-1])
    assert (line["message"], line["level"]) == ("to the file too", "WARNING")
    assert "to the file too" in stream.getvalue()


def test_a_log_file_that_cannot_be_opened_is_a_settings_error(clean_env, monkeypatch):
    monkeypatch.setenv("GAS_LOGGING__FILE", str(clean_env / "no" / "such" / "gas.log"))
    monkeypatch.setattr(launch, "configure_logging", lambda *args: logging.NullHandler())
    with pytest.raises(SettingsError, match=r"^logging\.file: cannot open .*gas\.log"):
        resolve_settings(argparse.Namespace(), app=App("gas", settings_class=GasSettings))


async def test_the_settings_example_of_the_runtime_page_runs(autojump_clock, tmp_path, monkeypatch):
    source = tmp_path / "docs_settings_example.py"
    source.write_text(doc_blocks("runtime.md", section="The app's settings")[0])
    monkeypatch.syspath_prepend(str(tmp_path))
    monkeypatch.chdir(tmp_path)  # no .env of the repository
    module = importlib.import_module("docs_settings_example")
    app = module.app
    assert isinstance(app, App)
    settings_class = module.GasSettings
    settings = make_settings(settings_class, serial_port="/dev/ttyACM0", poll__seconds=10)
    harness = AppHarness.create(app=app, settings=settings)
    await harness.run(cycles=2)
    states = harness.states("gas-meter")
    assert [s["port"] for s in states] == ["/dev/ttyACM0"] * 2
    assert states[1]["at"] - states[0]["at"] == 10


def test_a_bad_interval_from_the_settings_exits_3_naming_the_device(tmp_path):
    result = _run(tmp_path, "-c", BAD_INTERVAL, GAS_POLL="0")
    assert result.returncode == 3, result.stderr
    last = result.stderr.strip().splitlines()[-1]
    assert "CRITICAL" in last
    assert last.endswith(
        "gas: interval must be a positive number of seconds, got 0.0 from the settings"
    )
    assert "Traceback" not in result.stderr


BAD_INTERVAL = """\
from triolette import App, Settings, setting_ref
from pydantic_settings import SettingsConfigDict


class GasSettings(Settings):
    model_config = SettingsConfigDict(env_prefix="GAS_")
    poll: float = 30.0


app = App("gas", settings_class=GasSettings)


@app.telemetry("gas", interval=setting_ref("poll"))
async def gas() -> None: ...


app.run(["--dry-run"])
"""
