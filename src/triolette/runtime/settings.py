"""Operator settings (broker, TLS, store, logs), ``RunSettings``, and where each value came from.

Each setting has a command-line flag and an environment variable. Precedence, highest first:
the flag, the ``TRIOLETTE_*`` variable, the app's settings object (``App(settings_class=...)``:
its own variables such as ``MYAPP_MQTT__HOST``, its env file, its defaults), the app's own code
(``defaults=``, and what the app set on its ``App``), the built-in default. An empty variable
counts as unset.

Every invalid value raises :class:`~triolette.SettingsError` naming the flag or variable it came
from, at settings time: TLS files are read and the ``ssl.SSLContext`` is built here, so a bad
file is reported before anything connects. Neither the password nor a password file's name
appears in ``repr``, ``str``, the start-up line or an error message.

This module holds the values only. What they build (transport, store, embedded broker) and
how they configure an ``App`` is :mod:`triolette.runtime.wiring`; turning a raw value into a
checked one is :mod:`triolette.runtime.setting_checks`.
"""

from __future__ import annotations

import argparse
import math
import os
import re
import socket
import ssl
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import attrs

from triolette.core.errors import RegistrationError, SettingsError
from triolette.core.topics import check_name
from triolette.runtime.setting_checks import (
    CONVERTERS,
    build_ssl_context,
    check_host,
    check_text,
    read_password_file,
    store_kind,
    to_str,
)

ENV_PREFIX = "TRIOLETTE_"
DEFAULT_PORT = 1883
DEFAULT_TLS_PORT = 8883
LOG_LEVELS = ("DEBUG", "INFO", "WARNING", "ERROR", "CRITICAL")
LOG_FORMATS = ("plain", "json")

_CLIENT_ID_UNSAFE = re.compile(r"[^A-Za-z0-9_.-]")
_CLIENT_ID_MAX = 64  # a default id stays short; MQTT 5 brokers accept up to 65535 bytes
SECRET = "***"


@attrs.frozen
class Option:
    """One setting's sources and documentation: its flag, its variable, its default."""

    name: str
    flag: str
    env: str
    help: str
    default: str
    kind: str = "str"  # "str", "int", "float", "path", "store", "bool" or "choice"
    metavar: str | None = None
    choices: tuple[str, ...] | None = None


OPTIONS: tuple[Option, ...] = (
    Option("mqtt_host", "--host", "TRIOLETTE_MQTT_HOST", "MQTT broker host name or address",
           "none: a broker embedded in the app (with the broker extra)", metavar="HOST"),
    Option("mqtt_port", "--port", "TRIOLETTE_MQTT_PORT",
           "MQTT broker port, 1 to 65535 (without --host: the embedded broker's)",
           "1883, or 8883 with TLS", "int", "PORT"),
    Option("client_id", "--client-id", "TRIOLETTE_MQTT_CLIENT_ID", "MQTT client id",
           "APP-HOSTNAME", metavar="ID"),
    Option("username", "--username", "TRIOLETTE_MQTT_USERNAME", "MQTT user name", "none",
           metavar="NAME"),
    Option("password", "--password", "TRIOLETTE_MQTT_PASSWORD",
           "MQTT password; a flag is visible to other users, prefer the variable or a file",
           "none", metavar="SECRET"),
    Option("password_file", "--password-file", "TRIOLETTE_MQTT_PASSWORD_FILE",
           "read the MQTT password from this file (one trailing newline is dropped)", "none",
           "path", "FILE"),
    Option("tls", "--tls", "TRIOLETTE_TLS",
           "connect with TLS, verifying the broker with the system's CA certificates", "off",
           "bool"),
    Option("tls_ca_file", "--tls-ca-file", "TRIOLETTE_TLS_CA_FILE",
           "PEM file of the CA certificates that verify the broker; turns TLS on",
           "the system's CA certificates", "path", "FILE"),
    Option("tls_cert_file", "--tls-cert-file", "TRIOLETTE_TLS_CERT_FILE",
           "PEM client certificate; turns TLS on", "none", "path", "FILE"),
    Option("tls_key_file", "--tls-key-file", "TRIOLETTE_TLS_KEY_FILE",
           "PEM private key of the client certificate, unencrypted", "in the certificate file",
           "path", "FILE"),
    Option("tls_insecure", "--tls-insecure", "TRIOLETTE_TLS_INSECURE",
           "TLS without verifying the broker's certificate or host name; turns TLS on", "off",
           "bool"),
    Option("keepalive", "--keepalive", "TRIOLETTE_MQTT_KEEPALIVE",
           "seconds between MQTT keep-alive pings", "60", "float", "SECONDS"),
    Option("topic_prefix", "--topic-prefix", "TRIOLETTE_TOPIC_PREFIX",
           "first level of every topic", "the app's, normally its name", metavar="PREFIX"),
    Option("store_path", "--store", "TRIOLETTE_STORE",
           "where device state is kept: a .json (JSON) or .db, .sqlite, .sqlite3 (SQLite) file, "
           "or a URL: json:PATH, sqlite:PATH, postgresql://USER@HOST/DB, redis://HOST:6379/0",
           "the app's", "store", "STORE"),
    Option("standby", "--standby", "TRIOLETTE_STANDBY",
           "with a shared store (PostgreSQL, Redis): wait while another bridge holds the "
           "devices, take over when its lease ends", "off", "bool"),
    Option("lease_seconds", "--lease-seconds", "TRIOLETTE_LEASE_SECONDS",
           "with a shared store: length of the lease on the devices, renewed every third",
           "10, or the app's", "float", "SECONDS"),
    Option("log_level", "--log-level", "TRIOLETTE_LOG_LEVEL", "least severe level logged",
           "INFO", "choice", "LEVEL", LOG_LEVELS),
    Option("log_format", "--log-format", "TRIOLETTE_LOG_FORMAT",
           "plain lines, or one JSON object per line", "plain", "choice", "FORMAT", LOG_FORMATS),
    Option("dry_run", "--dry-run", "TRIOLETTE_DRY_RUN",
           "use the adapters' dry-run twins; connect to no broker (publishes are only logged) "
           "unless a host is given explicitly", "off", "bool"),
)  # fmt: skip

_BY_NAME = {option.name: option for option in OPTIONS}


def _optional_path(value: str | os.PathLike[str] | None) -> Path | None:
    return None if value is None else Path(value)


def _optional_store(value: str | os.PathLike[str] | None) -> Path | str | None:
    """A plain path as a ``Path``; a location with a scheme (``redis://``, ``json:``) as text."""
    if isinstance(value, str) and ":" in value:
        return value
    return _optional_path(value)


def _show_store(value: Path | str | None) -> str:
    if isinstance(value, str) and "://" in value:
        from triolette.stores._remote import safe_url

        return repr(safe_url(value))
    return repr(value)


def _show_secret(value: str | None) -> str:
    return "None" if value is None else repr(SECRET)


@attrs.frozen
class RunSettings:
    """Validated settings; build them with :meth:`from_sources`, or directly in code.

    ``sources`` maps a setting to the flag or variable it came from; errors name it (a
    setting built directly is named by its attribute). Construction validates everything and
    builds :attr:`ssl_context`, raising :class:`~triolette.SettingsError` for a bad value.
    """

    mqtt_host: str | None = None
    mqtt_port: int | None = None
    client_id: str | None = None
    username: str | None = None
    password: str | None = attrs.field(default=None, repr=_show_secret)
    tls: bool = False
    tls_ca_file: Path | None = attrs.field(default=None, converter=_optional_path)
    tls_cert_file: Path | None = attrs.field(default=None, converter=_optional_path)
    tls_key_file: Path | None = attrs.field(default=None, converter=_optional_path)
    tls_insecure: bool = False
    keepalive: float = 60.0
    topic_prefix: str | None = None
    store_path: Path | str | None = attrs.field(
        default=None, converter=_optional_store, repr=_show_store
    )
    standby: bool = False
    lease_seconds: float | None = None
    log_level: str = "INFO"
    log_format: str = "plain"
    dry_run: bool = False
    sources: Mapping[str, str] = attrs.field(factory=dict, repr=False, eq=False)
    unknown_variables: tuple[str, ...] = attrs.field(default=(), repr=False, eq=False)
    """``TRIOLETTE_*`` variables in the environment that name no setting (typos, usually)."""
    ssl_context: ssl.SSLContext | None = attrs.field(init=False, repr=False, eq=False)

    def __attrs_post_init__(self) -> None:
        self._validate()
        object.__setattr__(self, "ssl_context", self._build_ssl_context())

    # -- building ----------------------------------------------------------------------------

    @classmethod
    def from_sources(
        cls,
        flags: Mapping[str, object] | argparse.Namespace | None = None,
        environ: Mapping[str, str] | None = None,
        defaults: Mapping[str, object] | None = None,
        app_settings: Mapping[str, tuple[object, str]] | None = None,
    ) -> RunSettings:
        """Resolve every setting from ``flags``, then ``environ``, then ``app_settings``, then
        ``defaults``.

        ``flags`` maps setting names (the attribute names of :data:`OPTIONS`) to command-line
        values, ``None`` meaning not given; other keys are ignored (an ``argparse.Namespace``
        carries more). ``environ`` defaults to ``os.environ``. ``defaults`` are the app code's
        own values; an unknown name there is a ``SettingsError``. ``app_settings`` maps a
        setting to its value in the app's settings object and the source errors name (see
        :func:`triolette.runtime.app_settings.run_settings_layer`). Values may be strings (as
        typed by an operator) or already of the setting's type.
        """
        given = vars(flags) if isinstance(flags, argparse.Namespace) else dict(flags or {})
        env = os.environ if environ is None else environ
        for name in defaults or {}:
            if name not in _BY_NAME:
                raise SettingsError(f"app setting {name}", "no such setting")
        values: dict[str, Any] = {}
        sources: dict[str, str] = {}
        for option in OPTIONS:
            from_app = (app_settings or {}).get(option.name, (None, ""))
            layers = (
                (option.flag, given.get(option.name)),
                (option.env, env.get(option.env) or None),
                (from_app[1], from_app[0]),
                (f"app setting {option.name}", (defaults or {}).get(option.name)),
            )
            for source, raw in layers:
                if raw is not None:
                    values[option.name] = _convert(option, raw, source)
                    sources[option.name] = source
                    break
        _resolve_password(values, sources)
        known = {option.env for option in OPTIONS}
        unknown = sorted(k for k in env if k.startswith(ENV_PREFIX) and k not in known)
        return cls(**values, sources=sources, unknown_variables=tuple(unknown))

    # -- what the settings give -------------------------------------------------------------

    @property
    def tls_enabled(self) -> bool:
        """TLS is on when ``tls`` or any other TLS setting is given."""
        return any(
            (self.tls, self.tls_ca_file, self.tls_cert_file, self.tls_key_file, self.tls_insecure)
        )

    @property
    def port(self) -> int:
        """The broker port: the one given, else 8883 with TLS and 1883 without."""
        if self.mqtt_port is not None:
            return self.mqtt_port
        return DEFAULT_TLS_PORT if self.tls_enabled else DEFAULT_PORT

    def effective_client_id(self, app_name: str) -> str:
        """The client id given, else ``{app_name}-{host name}`` with unsafe characters as ``-``."""
        if self.client_id is not None:
            return self.client_id
        default = f"{app_name}-{socket.gethostname()}"
        return _CLIENT_ID_UNSAFE.sub("-", default)[:_CLIENT_ID_MAX]

    def given(self, name: str) -> bool:
        """Whether the setting ``name`` came from a flag or a variable (not the app's code)."""
        return self.sources.get(name, "").startswith(("-", ENV_PREFIX))

    @property
    def host_given(self) -> bool:
        """Whether a broker host was asked for: by a flag, a variable (``TRIOLETTE_MQTT_HOST``
        or the app's own, such as ``MYAPP_MQTT__HOST``), not by a default or the app's code.

        A dry run connects only then (it always uses the adapters' dry-run twins).
        """
        source = self.sources.get("mqtt_host", "")
        return bool(source) and not source.startswith(("app setting ", "settings default "))

    # -- validation --------------------------------------------------------------------------

    def _source(self, name: str) -> str:
        return self.sources.get(name, name)

    def _validate(self) -> None:
        # Over 50 lines: one check per setting, each error naming the flag or variable it came from.
        if self.mqtt_host is not None:
            check_host(self.mqtt_host, self._source("mqtt_host"))
        if self.mqtt_port is not None and not (
            type(self.mqtt_port) is int and 1 <= self.mqtt_port <= 65535
        ):
            raise SettingsError(
                self._source("mqtt_port"), f"must be between 1 and 65535, got {self.mqtt_port!r}"
            )
        if not (
            isinstance(self.keepalive, int | float)
            and not isinstance(self.keepalive, bool)
            and 0 < self.keepalive < math.inf
        ):
            raise SettingsError(
                self._source("keepalive"),
                f"must be a positive number of seconds, got {self.keepalive!r}",
            )
        for name in ("client_id", "username"):
            value = getattr(self, name)
            if value is not None:
                check_text(value, self._source(name), limit=65535)
        if self.password is not None and not (isinstance(self.password, str) and self.password):
            raise SettingsError(self._source("password"), "must be a non-empty string")
        if self.topic_prefix is not None:
            try:
                check_name(self.topic_prefix, "")
            except (RegistrationError, TypeError) as error:
                raise SettingsError(self._source("topic_prefix"), str(error).strip()) from None
        if self.store_path is not None:
            store_kind(self.store_path, self._source("store_path"))
        if self.lease_seconds is not None and not (
            isinstance(self.lease_seconds, int | float)
            and not isinstance(self.lease_seconds, bool)
            and 0 < self.lease_seconds < math.inf
        ):
            raise SettingsError(
                self._source("lease_seconds"),
                f"must be a positive number of seconds, got {self.lease_seconds!r}",
            )
        if self.log_level not in LOG_LEVELS:
            raise SettingsError(
                self._source("log_level"),
                f"must be one of {', '.join(LOG_LEVELS)}, got {self.log_level!r}",
            )
        if self.log_format not in LOG_FORMATS:
            raise SettingsError(
                self._source("log_format"),
                f"must be plain or json, got {self.log_format!r}",
            )
        if self.tls_key_file is not None and self.tls_cert_file is None:
            raise SettingsError(
                self._source("tls_key_file"),
                f"a key needs its certificate ({_BY_NAME['tls_cert_file'].flag} or "
                f"{_BY_NAME['tls_cert_file'].env})",
            )

    def _build_ssl_context(self) -> ssl.SSLContext | None:
        if not self.tls_enabled:
            return None
        return build_ssl_context(
            self.tls_ca_file,
            self.tls_cert_file,
            self.tls_key_file,
            insecure=self.tls_insecure,
            source=self._source,
        )


def _convert(option: Option, value: object, source: str) -> Any:
    if option.choices is None:
        return CONVERTERS[option.kind](value, source)
    text = to_str(value, source).strip()
    for choice in option.choices:  # case does not matter; anything else fails validation
        if text.lower() == choice.lower():
            return choice
    return text


def _resolve_password(values: dict[str, Any], sources: dict[str, str]) -> None:
    """Fold ``password_file`` into ``password``: the higher source wins; a tie is an error."""
    path = values.pop("password_file", None)
    file_source = sources.pop("password_file", None)
    if path is None or file_source is None:
        return
    rank = _rank(file_source)
    if "password" in values:
        other = sources["password"]
        if _rank(other) == rank:
            raise SettingsError(file_source, f"give {other} or {file_source}, not both")
        if _rank(other) < rank:
            return
    values["password"] = read_password_file(path, file_source)
    sources["password"] = file_source


def _rank(source: str) -> int:
    """0 for a flag, 1 for a ``TRIOLETTE_*`` variable, 2 for the app's settings or code."""
    return 0 if source.startswith("-") else 1 if source.startswith(ENV_PREFIX) else 2
