"""What settings build (transport, store, embedded broker) and how they configure an ``App``.

:mod:`triolette.runtime.settings` holds the values; this module turns them into objects.
:func:`store_for_location` is the one mapping from a location (a path, or a URL such as
``sqlite:./state.db`` or ``postgresql://bridge@db/state``) to a store, shared by ``--store``
and the ``triolette store`` commands. Nothing here opens a file or a connection: a store reads its
file when the app loads its devices, a transport connects when the app serves.
"""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING

from triolette.actors.paho import PahoTransport
from triolette.actors.transport import LogTransport
from triolette.core.errors import SettingsError
from triolette.core.topics import Topics
from triolette.runtime.embedded import (
    INSTALL_HINT,
    EmbeddedBroker,
    broker_installed,
    usual_port_or_free,
)
from triolette.runtime.setting_checks import StoreLocation, split_location
from triolette.runtime.settings import SECRET, RunSettings
from triolette.stores.jsonfile import JsonFileStore
from triolette.stores.memory import MemoryStore
from triolette.stores.null import NullStore
from triolette.stores.sqlite import SqliteStore

if TYPE_CHECKING:
    from triolette.runtime.app import App
    from triolette.stores.protocol import BatchStore, Store

logger = logging.getLogger("triolette.settings")

# Connection settings that mean nothing without a broker host.
_CONNECTION = (
    "client_id", "username", "password", "tls", "tls_ca_file", "tls_cert_file",
    "tls_key_file", "tls_insecure", "keepalive",
)  # fmt: skip


def store_for_location(location: StoreLocation, source: str = "--store") -> BatchStore:
    """A new store for ``location``: JSON for ``json:PATH`` or a ``.json`` path, SQLite for
    ``sqlite:PATH`` or a ``.db``, ``.sqlite``, ``.sqlite3`` path, :class:`PostgresStore` for
    ``postgresql://`` (or ``postgres://``), :class:`RedisStore` for ``redis://`` or
    ``rediss://``. Raises :class:`~triolette.SettingsError` naming ``source`` for anything
    else, or when the server store's client library (an extra) is not installed. Nothing is
    opened or connected yet."""
    kind, where = split_location(location, source)
    if kind == "json":
        return JsonFileStore(where)
    if kind == "sqlite":
        return SqliteStore(where)
    extra = "postgres" if kind == "postgresql" else "redis"
    try:
        if kind == "postgresql":
            from triolette.stores.postgres import PostgresStore

            return PostgresStore(str(where))
        from triolette.stores.redis import RedisStore

        return RedisStore(str(where))
    except ImportError as error:
        raise SettingsError(
            source, f"a {kind} store needs pip install 'triolette[{extra}]' ({error})"
        ) from None
    except ValueError as error:
        raise SettingsError(source, str(error)) from None


store_for_path = store_for_location
"""The name :func:`store_for_location` had when stores were only files."""


def transport_for(settings: RunSettings, app_name: str) -> PahoTransport | LogTransport:
    """A ``PahoTransport`` to the configured broker; a ``LogTransport`` when no host is
    given, or in a dry run unless a host was asked for explicitly (``--host``, a variable)."""
    if settings.mqtt_host is None or _no_broker(settings):
        return LogTransport()
    return PahoTransport(
        settings.mqtt_host,
        settings.port,
        client_id=settings.effective_client_id(app_name),
        username=settings.username,
        password=settings.password,
        tls=settings.ssl_context,
        keepalive=settings.keepalive,
    )


def embedded_broker_for(settings: RunSettings) -> EmbeddedBroker | None:
    """The broker to embed when none is configured: on ``--port`` (or a port variable) if
    given, else on 1883 when that is free, else on a free port (a settings class's default
    port counts as not given). ``None`` (a dry run, with a warning saying what to
    install) without the ``broker`` extra."""
    if not broker_installed():
        logger.warning(
            "no broker host given, and the embedded broker is not installed (%s): "
            "publishes are only logged",
            INSTALL_HINT,
        )
        return None
    source = settings.sources.get("mqtt_port", "settings default ")
    port = settings.mqtt_port
    if port is None or source.startswith("settings default "):
        port = usual_port_or_free()
    return EmbeddedBroker(port=port)


def apply_settings(settings: RunSettings, app: App) -> None:
    """Configure ``app`` with what was given; leave the rest as the app's code set it.

    Sets only ``app.transport``, ``app.embedded_broker``, ``app.store``, ``app.topics``,
    ``app.dry_run``, ``app.standby`` and ``app.lease_seconds``. The transport is replaced in a
    dry run and when a host is given, the store when a store path is given, the topic prefix
    when one is given. A dry run picks the adapters' dry-run twins and, unless a host was asked
    for explicitly, connects to no broker. Connection settings given without a host are
    ignored, with a warning.
    """
    if settings.dry_run:
        app.dry_run = True
    if settings.dry_run or settings.mqtt_host is not None:
        app.transport = transport_for(settings, app.name)
    else:
        stray = [settings.sources[name] for name in _CONNECTION if settings.given(name)]
        if stray:
            logger.warning("no broker host given: %s ignored", ", ".join(stray))
        if app.transport is None and app.embedded_broker is None:
            app.embedded_broker = embedded_broker_for(settings)
        elif settings.given("mqtt_port"):
            logger.warning(
                "no broker host given: %s ignored (the app set its own connection)",
                settings.sources["mqtt_port"],
            )
    if settings.store_path is not None:
        source = settings.sources.get("store_path", "store")
        app.store = store_for_location(settings.store_path, source)
        app.store_factory = None  # the location given at start wins over the app's factory
    if settings.topic_prefix is not None:
        app.topics = Topics(settings.topic_prefix)
    if "standby" in settings.sources:
        app.standby = settings.standby
    if settings.lease_seconds is not None:
        app.lease_seconds = settings.lease_seconds


def describe_settings(settings: RunSettings, app: App | None = None) -> str:
    """One line for the log: every setting in effect, the password shown as ``***``.

    With ``app`` (after :func:`apply_settings`), what the settings leave to the app
    (transport, store, prefix, client id) is shown as the app has it, in the same format.
    """
    parts = [f"broker={_describe_broker(settings, app)}"]
    if settings.mqtt_host is not None and not _no_broker(settings):
        parts.append(f"tls={_describe_tls(settings)}")
        client_id = settings.effective_client_id(app.name) if app is not None else None
        parts.append(f"client_id={client_id or settings.client_id or 'APP-HOSTNAME'}")
        parts.append(f"username={settings.username or '-'}")
        parts.append(f"password={SECRET if settings.password else '-'}")
        parts.append(f"keepalive={settings.keepalive:g}s")
    prefix = settings.topic_prefix or (app.topics.prefix if app is not None else "(the app's)")
    parts.append(f"topic_prefix={prefix}")
    if app is not None:
        parts.append(f"store={describe_store(app.store)}")
    elif settings.store_path is not None:
        parts.append(f"store={describe_store(store_for_location(settings.store_path))}")
    else:
        parts.append("store=(the app's)")
    parts.append(f"log={settings.log_level}/{settings.log_format}")
    return " ".join(parts)


def describe_store(store: Store | None) -> str:
    """``json:PATH``, ``sqlite:PATH``, a server store's URL without its password (its
    ``location``), ``memory``, ``none`` or the store's class name."""
    if isinstance(store, JsonFileStore | SqliteStore):
        return f"{'json' if isinstance(store, JsonFileStore) else 'sqlite'}:{store.path}"
    location = getattr(store, "location", None)
    if isinstance(location, str):
        return location
    if isinstance(store, MemoryStore):
        return "memory"
    if store is None or isinstance(store, NullStore):
        return "none"
    return type(store).__name__


def _no_broker(settings: RunSettings) -> bool:
    """A dry run without a host asked for explicitly connects to no broker."""
    return settings.dry_run and not settings.host_given


def _describe_broker(settings: RunSettings, app: App | None) -> str:
    if _no_broker(settings):
        return "none (dry run: publishes only logged)"
    if settings.mqtt_host is not None:
        host = f"[{settings.mqtt_host}]" if ":" in settings.mqtt_host else settings.mqtt_host
        return f"{host}:{settings.port}"
    if app is not None and app.transport is not None:
        return f"as the app set it ({type(app.transport).__name__})"
    if app is not None and app.embedded_broker is not None:
        broker = app.embedded_broker
        where = f"port {broker.port}" if broker.port else "a free port"
        host = "" if broker.host == "127.0.0.1" else f"{broker.host} "
        return f"embedded ({host}{where})"
    return "none (publishes only logged)"


def _describe_tls(settings: RunSettings) -> str:
    if not settings.tls_enabled:
        return "off"
    details = [f"ca={settings.tls_ca_file}" if settings.tls_ca_file else "ca=system"]
    if settings.tls_cert_file:
        details.append(f"cert={settings.tls_cert_file}")
    if settings.tls_insecure:
        details.append("insecure")
    return f"on({','.join(details)})"
