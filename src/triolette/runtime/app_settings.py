"""The app's own settings: a pydantic-settings base class, ``triolette.Settings``.

A bridge subclasses :class:`Settings` with its fields and an env prefix, the way cosalette
bridges do::

    class MySettings(Settings):
        model_config = SettingsConfigDict(
            env_prefix="MYAPP_", env_nested_delimiter="__", env_file=".env"
        )
        poll_seconds: float = 30.0

and passes ``App(settings_class=MySettings)``. The base's ``mqtt`` and ``logging`` fields
configure the connection and the logs (below the command-line flags and the ``TRIOLETTE_*``
variables: see :func:`run_settings_layer`). This module needs the ``settings`` extra
(pydantic-settings); ``import triolette`` never imports it.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, SecretStr, ValidationError, field_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

from triolette.core.errors import SettingsError


class MqttSettings(BaseModel):
    """The broker connection. TLS is off by default (cosalette turns it on)."""

    model_config = ConfigDict(extra="ignore")

    host: str | None = "localhost"
    """``None`` (a subclass's default): no broker configured, so ``app.run()`` starts the
    embedded one unless a host is given (``--host``, ``TRIOLETTE_MQTT_HOST``, the variable)."""
    port: int = Field(default=1883, ge=1, le=65535)
    username: str | None = None
    password: SecretStr | None = None
    tls: bool = False
    tls_ca_file: Path | None = None
    tls_cert_file: Path | None = None
    tls_key_file: Path | None = None
    tls_insecure: bool = False
    client_id: str = ""
    """Empty: ``{app name}-{host name}``."""
    keepalive: float = Field(default=60.0, gt=0)
    topic_prefix: str = ""
    """Empty: the app's prefix (normally its name)."""

    @field_validator("host")
    @classmethod
    def _host_not_blank(cls, value: str | None) -> str | None:
        if value is None:
            return None
        value = value.strip()
        if not value:
            raise ValueError("must not be empty")
        return value

    @field_validator("topic_prefix")
    @classmethod
    def _strip_slashes(cls, value: str) -> str:
        return value.strip().strip("/")


class LoggingSettings(BaseModel):
    """The log output: level and format (``text`` or ``json``; ``plain`` means ``text``), and
    optionally a rotating log file besides stderr."""

    model_config = ConfigDict(extra="ignore")

    level: Literal["DEBUG", "INFO", "WARNING", "ERROR", "CRITICAL"] = "INFO"
    format: Literal["text", "json"] = "text"
    file: Path | None = None
    """Also write the log here, in the same format, rotated at ``max_file_size_mb``."""
    max_file_size_mb: float = Field(default=10.0, gt=0)
    backup_count: int = Field(default=3, ge=0)

    @field_validator("level", mode="before")
    @classmethod
    def _level_any_case(cls, value: Any) -> Any:
        return value.strip().upper() if isinstance(value, str) else value

    @field_validator("format", mode="before")
    @classmethod
    def _format_any_case(cls, value: Any) -> Any:
        if not isinstance(value, str):
            return value
        word = value.strip().lower()
        return "text" if word == "plain" else word


class Settings(BaseSettings):
    """Base of an app's settings: ``mqtt`` and ``logging``, read from the environment.

    No env prefix (subclasses set one), ``__`` between nested names, ``.env`` read when it
    exists, unknown variables ignored: ``MYAPP_MQTT__HOST=broker`` sets ``mqtt.host``.
    """

    model_config = SettingsConfigDict(
        env_nested_delimiter="__",
        env_file=".env",
        env_file_encoding="utf-8",
        extra="ignore",
    )

    mqtt: MqttSettings = Field(default_factory=MqttSettings)
    logging: LoggingSettings = Field(default_factory=LoggingSettings)


def load_settings(settings_class: type[Settings], env_file: Path | None = None) -> Settings:
    """A validated ``settings_class`` from the environment and its env file (``env_file``
    instead of the class's own, when given).

    Raises :class:`~triolette.SettingsError` naming the first invalid field by its
    environment variable, never echoing the value (it may be a password).
    """
    try:
        if env_file is not None:
            return settings_class(_env_file=env_file)  # type: ignore[call-arg]
        return settings_class()
    except ValidationError as error:
        raise settings_error(settings_class, error) from None


def settings_error(settings_class: type[BaseSettings], error: ValidationError) -> SettingsError:
    """One line for ``error``: the first field's variable and dotted name, what is wrong."""
    problems = error.errors(include_url=False, include_input=False)
    first = problems[0]
    path = [str(part) for part in first["loc"]]
    more = f" (and {len(problems) - 1} more)" if len(problems) > 1 else ""
    source = f"{env_name(settings_class, path)} ({'.'.join(path)})"
    return SettingsError(source, f"{first['msg']}{more}")


def env_name(settings_class: type[BaseSettings], path: list[str]) -> str:
    """The environment variable that sets the field at ``path`` (``MYAPP_MQTT__HOST``)."""
    config = settings_class.model_config
    delimiter = config.get("env_nested_delimiter") or "__"
    name = f"{config.get('env_prefix', '')}{delimiter.join(path)}"
    return name if config.get("case_sensitive") else name.upper()


_RUN_FIELDS = (
    ("mqtt_host", "mqtt", "host"),
    ("mqtt_port", "mqtt", "port"),
    ("username", "mqtt", "username"),
    ("password", "mqtt", "password"),
    ("tls", "mqtt", "tls"),
    ("tls_ca_file", "mqtt", "tls_ca_file"),
    ("tls_cert_file", "mqtt", "tls_cert_file"),
    ("tls_key_file", "mqtt", "tls_key_file"),
    ("tls_insecure", "mqtt", "tls_insecure"),
    ("client_id", "mqtt", "client_id"),
    ("keepalive", "mqtt", "keepalive"),
    ("topic_prefix", "mqtt", "topic_prefix"),
    ("log_level", "logging", "level"),
    ("log_format", "logging", "format"),
)
"""Operator setting name, and where the app's settings hold it."""


def run_settings_layer(settings: Settings) -> dict[str, tuple[object, str]]:
    """The operator settings ``settings`` gives, each with the source errors name.

    Empty text counts as not given (``client_id``, ``topic_prefix``). A value set explicitly
    (its variable, the env file, the constructor) is named by its variable; a default of the
    class by ``settings default mqtt.host``, which does not count as "given" for
    ``--dry-run`` (see :func:`explicit`).
    """
    layer: dict[str, tuple[object, str]] = {}
    for name, group, field in _RUN_FIELDS:
        section = getattr(settings, group)
        value = getattr(section, field)
        if isinstance(value, SecretStr):
            value = value.get_secret_value()
        if value is None or value == "":
            continue
        if name == "log_format":
            value = "plain" if value == "text" else value
        explicit = group in settings.model_fields_set and field in section.model_fields_set
        source = (
            env_name(type(settings), [group, field])
            if explicit
            else f"settings default {group}.{field}"
        )
        layer[name] = (value, source)
    return layer


def explicit(source: str) -> bool:
    """Whether a value from :func:`run_settings_layer` was set, not a class default."""
    return not source.startswith("settings default ")
