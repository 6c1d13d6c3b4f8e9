"""Settings: what an operator configures (broker, TLS, store, logs) and where each value came from.

Each setting has a command-line flag and an environment variable. Precedence, highest first:
the flag, the ``TRIOLETTE_*`` variable, the app's own code (``defaults=``, and what the app set
on its ``App``), the built-in default. An empty variable counts as unset.

Every invalid value raises :class:`~triolette.SettingsError` naming the flag or variable it came
from, at settings time: TLS files are read and the ``ssl.SSLContext`` is built here, so a bad
file is reported before anything connects. The password never appears in ``repr``, ``str``,
:meth:`Settings.describe` or an error message.
"""

from __future__ import annotations

import argparse
import logging
import math
import os
import re
import socket
import ssl
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any

import attrs

from triolette.actors.mqtt import LogTransport
from triolette.actors.paho import PahoTransport
from triolette.core.errors import RegistrationError, SettingsError
from triolette.core.topics import Topics, check_name
from triolette.runtime.embedded import (
    INSTALL_HINT,
    EmbeddedBroker,
    broker_installed,
    usual_port_or_free,
)
from triolette.stores.jsonfile import JsonFileStore
from triolette.stores.sqlite import SqliteStore

if TYPE_CHECKING:
    from triolette.runtime.app import App

logger = logging.getLogger("triolette.settings")

ENV_PREFIX = "TRIOLETTE_"
DEFAULT_PORT = 1883
DEFAULT_TLS_PORT = 8883
LOG_LEVELS = ("DEBUG", "INFO", "WARNING", "ERROR", "CRITICAL")
LOG_FORMATS = ("plain", "json")
JSON_SUFFIXES = (".json",)
SQLITE_SUFFIXES = (".db", ".sqlite", ".sqlite3")

_TRUE = ("1", "true", "yes", "on")
_FALSE = ("0", "false", "no", "off")
_CLIENT_ID_UNSAFE = re.compile(r"[^A-Za-z0-9_.-]")
_CLIENT_ID_MAX = 64  # a default id stays short; MQTT 5 brokers accept up to 65535 bytes
_SECRET = "***"


@attrs.frozen
class Option:
    """One setting's sources and documentation: its flag, its variable, its default."""

    name: str
    flag: str
    env: str
    help: str
    default: str
    kind: str = "str"  # "str", "int", "float", "path", "bool" or "choice"
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
           "device state file: .json for a JSON file, .db, .sqlite or .sqlite3 for SQLite",
           "the app's", "path", "PATH"),
    Option("log_level", "--log-level", "TRIOLETTE_LOG_LEVEL", "least severe level logged",
           "INFO", "choice", "LEVEL", LOG_LEVELS),
    Option("log_format", "--log-format", "TRIOLETTE_LOG_FORMAT",
           "plain lines, or one JSON object per line", "plain", "choice", "FORMAT", LOG_FORMATS),
    Option("dry_run", "--dry-run", "TRIOLETTE_DRY_RUN",
           "connect to no broker: publishes are only logged", "off", "bool"),
)  # fmt: skip

_BY_NAME = {option.name: option for option in OPTIONS}


def _optional_path(value: str | os.PathLike[str] | None) -> Path | None:
    return None if value is None else Path(value)


def _show_secret(value: str | None) -> str:
    return "None" if value is None else repr(_SECRET)


@attrs.frozen
class Settings:
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
    store_path: Path | None = attrs.field(default=None, converter=_optional_path)
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
    ) -> Settings:
        """Resolve every setting from ``flags``, then ``environ``, then ``defaults``.

        ``flags`` maps setting names (the attribute names of :data:`OPTIONS`) to command-line
        values, ``None`` meaning not given; other keys are ignored (an ``argparse.Namespace``
        carries more). ``environ`` defaults to ``os.environ``. ``defaults`` are the app code's
        own values; an unknown name there is a ``SettingsError``. Values may be strings (as
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
            layers = (
                (option.flag, given.get(option.name)),
                (option.env, env.get(option.env) or None),
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

    # -- what the settings make --------------------------------------------------------------

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

    def transport(self, app_name: str) -> PahoTransport | LogTransport:
        """A ``PahoTransport`` to the configured broker; a ``LogTransport`` in a dry run or when
        no host is given."""
        if self.dry_run or self.mqtt_host is None:
            return LogTransport()
        return PahoTransport(
            self.mqtt_host,
            self.port,
            client_id=self.effective_client_id(app_name),
            username=self.username,
            password=self.password,
            tls=self.ssl_context,
            keepalive=self.keepalive,
        )

    def embedded_broker(self) -> EmbeddedBroker | None:
        """The broker to embed when none is configured: on ``--port`` if given, else on 1883
        when that is free, else on a free port. ``None`` (a dry run, with a warning saying
        what to install) without the ``broker`` extra."""
        if not broker_installed():
            logger.warning(
                "no broker host given, and the embedded broker is not installed (%s): "
                "publishes are only logged",
                INSTALL_HINT,
            )
            return None
        port = self.mqtt_port if self.mqtt_port is not None else usual_port_or_free()
        return EmbeddedBroker(port=port)

    def store(self) -> JsonFileStore | SqliteStore | None:
        """A new store for :attr:`store_path` (chosen by its suffix), or ``None`` if not given.

        Nothing is opened: the file is read when the app loads its devices.
        """
        if self.store_path is None:
            return None
        if self.store_path.suffix.lower() in JSON_SUFFIXES:
            return JsonFileStore(self.store_path)
        return SqliteStore(self.store_path)

    def apply(self, app: App) -> None:
        """Configure ``app`` with what was given; leave the rest as the app's code set it.

        The transport is replaced in a dry run and when a host is given, the store when a store
        path is given, the topic prefix when one is given. Connection settings given without a
        host are ignored, with a warning.
        """
        if self.dry_run or self.mqtt_host is not None:
            app.transport = self.transport(app.name)
        else:
            stray = [
                self.sources.get(name, name)
                for name in ("client_id", "username", "password", "tls",
                             "tls_ca_file", "tls_cert_file", "tls_key_file", "tls_insecure",
                             "keepalive")
                if self.sources.get(name, "").startswith(("-", ENV_PREFIX))
            ]  # fmt: skip
            if stray:
                logger.warning("no broker host given: %s ignored", ", ".join(stray))
            if app.transport is None and app.embedded_broker is None:
                app.embedded_broker = self.embedded_broker()
            elif self.sources.get("mqtt_port", "").startswith(("-", ENV_PREFIX)):
                logger.warning(
                    "no broker host given: %s ignored (the app set its own connection)",
                    self.sources["mqtt_port"],
                )
        store = self.store()
        if store is not None:
            app.store = store
        if self.topic_prefix is not None:
            app.topics = Topics(self.topic_prefix)

    def describe(self, app: App | None = None) -> str:
        """One line for the log: every setting in effect, the password shown as ``***``.

        With ``app``, what the settings leave to the app (transport, store, prefix, client id)
        is shown as the app has it.
        """
        if self.dry_run:
            broker = "none (dry run: publishes only logged)"
        elif self.mqtt_host is not None:
            host = f"[{self.mqtt_host}]" if ":" in self.mqtt_host else self.mqtt_host
            broker = f"{host}:{self.port}"
        elif app is not None and app.transport is not None:
            broker = f"as the app set it ({app.transport!r})"
        elif app is not None and app.embedded_broker is not None:
            broker = f"embedded ({app.embedded_broker!r})"
        else:
            broker = "none (publishes only logged)"
        parts = [f"broker={broker}"]
        if self.mqtt_host is not None and not self.dry_run:
            parts.append(f"tls={self._describe_tls()}")
            client_id = self.effective_client_id(app.name) if app is not None else None
            parts.append(f"client_id={client_id or self.client_id or 'APP-HOSTNAME'}")
            parts.append(f"username={self.username or '-'}")
            parts.append(f"password={_SECRET if self.password else '-'}")
            parts.append(f"keepalive={self.keepalive:g}s")
        prefix = self.topic_prefix or (app.topics.prefix if app is not None else "(the app's)")
        parts.append(f"topic_prefix={prefix}")
        if self.store_path is not None:
            parts.append(f"store={self.store_path}")
        elif app is not None:
            parts.append(f"store={app.store!r}" if app.store is not None else "store=none")
        else:
            parts.append("store=(the app's)")
        parts.append(f"log={self.log_level}/{self.log_format}")
        return " ".join(parts)

    def _describe_tls(self) -> str:
        if not self.tls_enabled:
            return "off"
        details = [f"ca={self.tls_ca_file}" if self.tls_ca_file else "ca=system"]
        if self.tls_cert_file:
            details.append(f"cert={self.tls_cert_file}")
        if self.tls_insecure:
            details.append("insecure")
        return f"on({','.join(details)})"

    # -- validation --------------------------------------------------------------------------

    def _source(self, name: str) -> str:
        return self.sources.get(name, name)

    def _validate(self) -> None:
        if self.mqtt_host is not None:
            _check_host(self.mqtt_host, self._source("mqtt_host"))
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
                _check_text(value, self._source(name), limit=65535)
        if self.password is not None and not (isinstance(self.password, str) and self.password):
            raise SettingsError(self._source("password"), "must be a non-empty string")
        if self.topic_prefix is not None:
            try:
                check_name(self.topic_prefix, "")
            except (RegistrationError, TypeError) as error:
                raise SettingsError(self._source("topic_prefix"), str(error).strip()) from None
        if self.store_path is not None:
            suffix = Path(self.store_path).suffix.lower()
            if suffix not in JSON_SUFFIXES + SQLITE_SUFFIXES:
                raise SettingsError(
                    self._source("store_path"),
                    f"{self.store_path} must end in .json (a JSON file) or .db, .sqlite or "
                    ".sqlite3 (SQLite)",
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
        ca = self.tls_ca_file
        if ca is not None:
            source = self._source("tls_ca_file")
            _read_file(ca, source)
            try:
                context = ssl.create_default_context(cafile=str(ca))
            except ssl.SSLError as error:
                raise SettingsError(
                    source, f"{ca} holds no usable PEM CA certificate ({_reason(error)})"
                ) from None
        else:
            context = ssl.create_default_context()
        cert, key = self.tls_cert_file, self.tls_key_file
        if cert is not None:
            cert_source = self._source("tls_cert_file")
            cert_text = _read_file(cert, cert_source)
            if b"-----BEGIN CERTIFICATE-----" not in cert_text:
                raise SettingsError(cert_source, f"{cert} holds no PEM certificate")
            key_source = self._source("tls_key_file") if key is not None else cert_source
            key_text = _read_file(key, key_source) if key is not None else cert_text
            key_path = key if key is not None else cert
            if b"PRIVATE KEY-----" not in key_text:
                raise SettingsError(key_source, f"{key_path} holds no PEM private key")
            if b"ENCRYPTED" in key_text:
                raise SettingsError(
                    key_source, f"the private key in {key_path} is encrypted; give it unencrypted"
                )
            try:
                context.load_cert_chain(str(cert), str(key_path), password=_no_password)
            except (ssl.SSLError, ValueError) as error:
                raise SettingsError(
                    key_source if key is not None else cert_source,
                    f"cannot use the certificate {cert} with the key {key_path} ({_reason(error)})",
                ) from None
        if self.tls_insecure:
            context.check_hostname = False
            context.verify_mode = ssl.CERT_NONE
        return context


# -- conversion of raw values ---------------------------------------------------------------


def _to_str(value: object, source: str) -> str:
    if not isinstance(value, str):
        raise SettingsError(source, f"must be a string, got {type(value).__name__}")
    if not value:
        raise SettingsError(source, "must not be empty")
    return value


def _to_int(value: object, source: str) -> int:
    if isinstance(value, int) and not isinstance(value, bool):
        return value
    if isinstance(value, str):
        try:
            return int(value.strip())
        except ValueError:
            pass
    raise SettingsError(source, f"must be a whole number, got {value!r}")


def _to_float(value: object, source: str) -> float:
    if isinstance(value, int | float) and not isinstance(value, bool):
        return float(value)
    if isinstance(value, str):
        try:
            return float(value.strip())
        except ValueError:
            pass
    raise SettingsError(source, f"must be a number of seconds, got {value!r}")


def _to_path(value: object, source: str) -> Path:
    if isinstance(value, os.PathLike):
        value = os.fspath(value)
    return Path(_to_str(value, source))


def _to_bool(value: object, source: str) -> bool:
    if isinstance(value, bool):
        return value
    if isinstance(value, str):
        word = value.strip().lower()
        if word in _TRUE:
            return True
        if word in _FALSE:
            return False
    raise SettingsError(
        source, f"must be one of {'/'.join(_TRUE)} or {'/'.join(_FALSE)}, got {value!r}"
    )


def _convert(option: Option, value: object, source: str) -> Any:
    if option.choices is None:
        return _CONVERT[option.kind](value, source)
    text = _to_str(value, source).strip()
    for choice in option.choices:  # case does not matter; anything else fails validation
        if text.lower() == choice.lower():
            return choice
    return text


_CONVERT: dict[str, Callable[[object, str], Any]] = {
    "str": _to_str,
    "int": _to_int,
    "float": _to_float,
    "path": _to_path,
    "bool": _to_bool,
}


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
    text = _read_file(path, file_source).decode("utf-8", errors="strict")
    if text.endswith("\n"):
        text = text[:-1].removesuffix("\r")
    if not text:
        raise SettingsError(file_source, f"{path} is empty")
    values["password"] = text
    sources["password"] = file_source


def _rank(source: str) -> int:
    """0 for a flag, 1 for a variable, 2 for the app's code."""
    return 0 if source.startswith("-") else 1 if source.startswith(ENV_PREFIX) else 2


# -- checks ---------------------------------------------------------------------------------


def _check_host(host: str, source: str) -> None:
    if not isinstance(host, str) or not host or host != host.strip() or " " in host:
        raise SettingsError(source, f"must be a host name or address, got {host!r}")
    if "://" in host:
        raise SettingsError(source, f"give a host name, not a URL, got {host!r}")
    if host.count(":") == 1:
        raise SettingsError(source, f"give the port separately, not in the host {host!r}")


def _check_text(value: object, source: str, *, limit: int) -> None:
    if not isinstance(value, str) or not value:
        raise SettingsError(source, "must be a non-empty string")
    if any(ord(char) < 32 for char in value):
        raise SettingsError(source, f"must not hold control characters, got {value!r}")
    try:
        size = len(value.encode("utf-8"))
    except UnicodeEncodeError:
        raise SettingsError(source, f"is not valid Unicode, got {value!r}") from None
    if size > limit:
        raise SettingsError(source, f"is longer than {limit} bytes")


def _read_file(path: Path, source: str) -> bytes:
    """The file's bytes, or a ``SettingsError`` saying why it cannot be read."""
    try:
        return Path(path).read_bytes()
    except FileNotFoundError:
        raise SettingsError(source, f"no such file: {path}") from None
    except IsADirectoryError:
        raise SettingsError(source, f"{path} is a directory, not a file") from None
    except PermissionError:
        raise SettingsError(source, f"cannot read {path}: permission denied") from None
    except OSError as error:
        raise SettingsError(source, f"cannot read {path}: {error.strerror or error}") from None


def _reason(error: Exception) -> str:
    reason = getattr(error, "reason", None) or getattr(error, "strerror", None)
    return str(reason or error)


def _no_password() -> bytes:
    return b""  # never prompt on a terminal for an encrypted key
