"""Turning raw setting values (text typed by an operator) into checked ones, for ``Settings``.

Every function raises :class:`~triolette.SettingsError` naming ``source`` (the flag or variable
the value came from). Nothing here echoes a value read for a password setting: the callers
pass ``secret=True`` for those, and the message then says what is wrong without the value.
"""

from __future__ import annotations

import os
import ssl
from collections.abc import Callable
from pathlib import Path
from typing import Any, Literal

from triolette.core.errors import SettingsError

JSON_SUFFIXES = (".json",)
SQLITE_SUFFIXES = (".db", ".sqlite", ".sqlite3")
StoreKind = Literal["json", "sqlite", "postgresql", "redis"]
FILE_SCHEMES: dict[str, StoreKind] = {"json": "json", "sqlite": "sqlite"}
SERVER_SCHEMES: dict[str, StoreKind] = {
    "postgresql": "postgresql",
    "postgres": "postgresql",
    "redis": "redis",
    "rediss": "redis",
}
StoreLocation = Path | str
"""A store file's path, or a location written as a URL (``json:PATH``, ``redis://...``)."""

_TRUE = ("1", "true", "yes", "on")
_FALSE = ("0", "false", "no", "off")


def store_kind(location: StoreLocation, source: str) -> StoreKind:
    """The backend a location names: ``json:``/``sqlite:`` and server URLs by their scheme,
    other paths by suffix. A ``SettingsError`` for anything else (a URL shown without its
    password)."""
    return split_location(location, source)[0]


def split_location(location: StoreLocation, source: str) -> tuple[StoreKind, StoreLocation]:
    """The backend and, for a file, its ``Path``; for a server, the URL as given."""
    if isinstance(location, str):
        scheme, colon, rest = location.partition(":")
        scheme = scheme.lower()
        if colon and scheme in FILE_SCHEMES and rest:
            return FILE_SCHEMES[scheme], Path(rest)
        if colon and rest.startswith("//"):
            if scheme in SERVER_SCHEMES:
                return SERVER_SCHEMES[scheme], location
            raise SettingsError(
                source,
                f"{_shown(location)}: a store URL starts with postgresql://, redis:// or "
                "rediss:// (or json: or sqlite: and a path)",
            )
    path = Path(location)
    suffix = path.suffix.lower()
    if suffix in JSON_SUFFIXES:
        return "json", path
    if suffix in SQLITE_SUFFIXES:
        return "sqlite", path
    raise SettingsError(
        source,
        f"{path} must end in .json (a JSON file) or .db, .sqlite or .sqlite3 (SQLite), "
        "or be a URL: json:PATH, sqlite:PATH, postgresql://..., redis://...",
    )


def _shown(url: str) -> str:
    from triolette.stores._remote import safe_url

    return safe_url(url)


# -- conversion of raw values ---------------------------------------------------------------


def to_str(value: object, source: str) -> str:
    if not isinstance(value, str):
        raise SettingsError(source, f"must be a string, got {type(value).__name__}")
    if not value:
        raise SettingsError(source, "must not be empty")
    return value


def to_int(value: object, source: str) -> int:
    if isinstance(value, int) and not isinstance(value, bool):
        return value
    if isinstance(value, str):
        try:
            return int(value.strip())
        except ValueError:
            pass
    raise SettingsError(source, f"must be a whole number, got {value!r}")


def to_float(value: object, source: str) -> float:
    if isinstance(value, int | float) and not isinstance(value, bool):
        return float(value)
    if isinstance(value, str):
        try:
            return float(value.strip())
        except ValueError:
            pass
    raise SettingsError(source, f"must be a number of seconds, got {value!r}")


def to_path(value: object, source: str) -> Path:
    if isinstance(value, os.PathLike):
        value = os.fspath(value)
    return Path(to_str(value, source))


def to_bool(value: object, source: str) -> bool:
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


def to_store_location(value: object, source: str) -> StoreLocation:
    """A ``Path`` for a plain path (as before URLs), the text for a URL; checked."""
    if isinstance(value, os.PathLike):
        value = os.fspath(value)
    text = to_str(value, source)
    kind, where = split_location(text, source)
    return where if kind in SERVER_SCHEMES.values() else (text if ":" in text else Path(text))


CONVERTERS: dict[str, Callable[[object, str], Any]] = {
    "str": to_str,
    "int": to_int,
    "float": to_float,
    "path": to_path,
    "store": to_store_location,
    "bool": to_bool,
}


# -- checks ---------------------------------------------------------------------------------


def check_host(host: str, source: str) -> None:
    if not isinstance(host, str) or not host or host != host.strip() or " " in host:
        raise SettingsError(source, f"must be a host name or address, got {host!r}")
    if "://" in host:
        raise SettingsError(source, f"give a host name, not a URL, got {host!r}")
    if host.count(":") == 1:
        raise SettingsError(source, f"give the port separately, not in the host {host!r}")


def check_text(value: object, source: str, *, limit: int) -> None:
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


def read_file(path: Path, source: str, *, secret: bool = False) -> bytes:
    """The file's bytes, or a ``SettingsError`` saying why it cannot be read.

    With ``secret`` (the path came from a password setting, and may be a password put there by
    mistake) the message says "the file it names" instead of the path.
    """
    shown = "the file it names" if secret else str(path)
    try:
        return Path(path).read_bytes()
    except FileNotFoundError:
        problem = "names no file" if secret else f"no such file: {path}"
    except IsADirectoryError:
        problem = f"{shown} is a directory, not a file"
    except PermissionError:
        problem = f"cannot read {shown}: permission denied"
    except OSError as error:
        problem = f"cannot read {shown}: {os.strerror(error.errno) if error.errno else 'error'}"
    except ValueError:  # a NUL byte in the path
        problem = "is not a usable file name"
    raise SettingsError(source, problem)


def read_password_file(path: Path, source: str) -> str:
    """The password in ``path``: UTF-8 text, one trailing newline dropped, never empty.

    Errors never show the path nor the content (either may be a password).
    """
    raw = read_file(path, source, secret=True)
    try:
        text = raw.decode("utf-8", errors="strict")
    except UnicodeDecodeError:
        raise SettingsError(source, "the file it names is not UTF-8 text") from None
    if text.endswith("\n"):
        text = text[:-1].removesuffix("\r")
    if not text:
        raise SettingsError(source, "the file it names is empty")
    return text


# -- TLS ------------------------------------------------------------------------------------


def build_ssl_context(
    ca: Path | None,
    cert: Path | None,
    key: Path | None,
    *,
    insecure: bool,
    source: Callable[[str], str],
) -> ssl.SSLContext:
    """An ``SSLContext`` from these files, each read and checked first.

    ``source(name)`` gives the flag or variable that set the setting ``name``, for errors.
    """
    if ca is not None:
        read_file(ca, source("tls_ca_file"))
        try:
            context = ssl.create_default_context(cafile=str(ca))
        except ssl.SSLError as error:
            raise SettingsError(
                source("tls_ca_file"),
                f"{ca} holds no usable PEM CA certificate ({_reason(error)})",
            ) from None
    else:
        context = ssl.create_default_context()
    if cert is not None:
        _load_client_certificate(context, cert, key, source)
    if insecure:
        context.check_hostname = False
        context.verify_mode = ssl.CERT_NONE
    return context


def _load_client_certificate(
    context: ssl.SSLContext, cert: Path, key: Path | None, source: Callable[[str], str]
) -> None:
    cert_source = source("tls_cert_file")
    cert_text = read_file(cert, cert_source)
    if b"-----BEGIN CERTIFICATE-----" not in cert_text:
        raise SettingsError(cert_source, f"{cert} holds no PEM certificate")
    key_source = source("tls_key_file") if key is not None else cert_source
    key_text = read_file(key, key_source) if key is not None else cert_text
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
            key_source,
            f"cannot use the certificate {cert} with the key {key_path} ({_reason(error)})",
        ) from None


def _reason(error: Exception) -> str:
    reason = getattr(error, "reason", None) or getattr(error, "strerror", None)
    return str(reason or error)


def _no_password() -> bytes:
    return b""  # never prompt on a terminal for an encrypted key
