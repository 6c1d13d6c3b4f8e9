"""triolette: IoT-to-MQTT bridges as supervised trio actors, with durable device state.

``triolette.Settings`` (the base of an app's pydantic settings) is imported on first use: it
needs the ``settings`` extra, which ``import triolette`` never imports.
"""

from typing import TYPE_CHECKING, Any

from triolette.actors.device import DeviceContext as DeviceContext
from triolette.actors.paho import PahoTransport as PahoTransport
from triolette.actors.stream_buffer import Stream as Stream
from triolette.actors.transport import Confirmed as Confirmed
from triolette.actors.transport import Transport as Transport
from triolette.actors.triggers import TriggerPayload as TriggerPayload
from triolette.core.backoff import Backoff as Backoff
from triolette.core.breaker import CircuitBreaker as CircuitBreaker
from triolette.core.commands import Command as Command
from triolette.core.cron import CronSchedule as CronSchedule
from triolette.core.deferred import setting_ref as setting_ref
from triolette.core.errors import ConnectError as ConnectError
from triolette.core.errors import FlushIncompleteError as FlushIncompleteError
from triolette.core.errors import HandlerTimeoutError as HandlerTimeoutError
from triolette.core.errors import HeartbeatMissedError as HeartbeatMissedError
from triolette.core.errors import KeyInUseError as KeyInUseError
from triolette.core.errors import LeaseHeldError as LeaseHeldError
from triolette.core.errors import LeaseLostError as LeaseLostError
from triolette.core.errors import PayloadValidationError as PayloadValidationError
from triolette.core.errors import PublishError as PublishError
from triolette.core.errors import RegistrationError as RegistrationError
from triolette.core.errors import RestartLimitError as RestartLimitError
from triolette.core.errors import ReturnValidationError as ReturnValidationError
from triolette.core.errors import SettingsError as SettingsError
from triolette.core.errors import StateMigrationError as StateMigrationError
from triolette.core.errors import StateNotJSONError as StateNotJSONError
from triolette.core.errors import StateVersionError as StateVersionError
from triolette.core.errors import StoreConflictError as StoreConflictError
from triolette.core.errors import StoreFencedError as StoreFencedError
from triolette.core.errors import StoreLockedError as StoreLockedError
from triolette.core.errors import StoreNotLoadedError as StoreNotLoadedError
from triolette.core.errors import StoreOpenError as StoreOpenError
from triolette.core.errors import StoreWriteError as StoreWriteError
from triolette.core.errors import StreamFullError as StreamFullError
from triolette.core.errors import TrioletteError as TrioletteError
from triolette.core.errors import UnknownDeviceError as UnknownDeviceError
from triolette.core.exports import claim_public_names
from triolette.core.messages import Message as Message
from triolette.core.policies import AllSavePolicy as AllSavePolicy
from triolette.core.policies import AnySavePolicy as AnySavePolicy
from triolette.core.policies import PersistPolicy as PersistPolicy
from triolette.core.policies import SaveAtMostEvery as SaveAtMostEvery
from triolette.core.policies import SaveOnChange as SaveOnChange
from triolette.core.policies import SaveOnPublish as SaveOnPublish
from triolette.core.policies import SaveOnShutdown as SaveOnShutdown
from triolette.core.retry import ExponentialBackoff as ExponentialBackoff
from triolette.core.retry import FixedBackoff as FixedBackoff
from triolette.core.retry import LinearBackoff as LinearBackoff
from triolette.core.strategies import AllStrategy as AllStrategy
from triolette.core.strategies import AnyStrategy as AnyStrategy
from triolette.core.strategies import Every as Every
from triolette.core.strategies import OnChange as OnChange
from triolette.core.strategies import PublishStrategy as PublishStrategy
from triolette.core.stream import Backpressure as Backpressure
from triolette.core.stream import StreamablePort as StreamablePort
from triolette.runtime.app import App as App
from triolette.runtime.embedded import EmbeddedBroker as EmbeddedBroker
from triolette.runtime.health import AppStatistics as AppStatistics
from triolette.runtime.health_checks import HealthCheckable as HealthCheckable
from triolette.runtime.lifecycle import AppContext as AppContext
from triolette.runtime.notifier import EntityNotifier as EntityNotifier
from triolette.runtime.registration import Registration as Registration
from triolette.runtime.registry_view import build_registry_snapshot as build_registry_snapshot
from triolette.runtime.registry_view import format_registry_json as format_registry_json
from triolette.runtime.registry_view import format_registry_table as format_registry_table
from triolette.runtime.router import Router as Router
from triolette.runtime.settings import RunSettings as RunSettings
from triolette.runtime.supervisor import RestartLimit as RestartLimit
from triolette.stores.devicestore import DeviceStore as DeviceStore
from triolette.stores.jsonfile import JsonFileStore as JsonFileStore
from triolette.stores.memory import MemoryStore as MemoryStore
from triolette.stores.null import NullStore as NullStore
from triolette.stores.protocol import Store as Store
from triolette.stores.sqlite import SqliteStore as SqliteStore

__version__ = "0.1.0"

__all__ = [
    "AllSavePolicy",
    "AllStrategy",
    "AnySavePolicy",
    "AnyStrategy",
    "App",
    "AppContext",
    "AppStatistics",
    "Backoff",
    "Backpressure",
    "CircuitBreaker",
    "Command",
    "Confirmed",
    "ConnectError",
    "CronSchedule",
    "DeviceContext",
    "DeviceStore",
    "EmbeddedBroker",
    "EntityNotifier",
    "Every",
    "ExponentialBackoff",
    "FixedBackoff",
    "FlushIncompleteError",
    "HandlerTimeoutError",
    "HealthCheckable",
    "HeartbeatMissedError",
    "JsonFileStore",
    "KeyInUseError",
    "LeaseHeldError",
    "LeaseLostError",
    "LinearBackoff",
    "LoggingSettings",
    "MemoryStore",
    "Message",
    "MqttSettings",
    "NullStore",
    "OnChange",
    "PahoTransport",
    "PayloadValidationError",
    "PersistPolicy",
    "PublishError",
    "PublishStrategy",
    "Registration",
    "RegistrationError",
    "RestartLimit",
    "RestartLimitError",
    "ReturnValidationError",
    "Router",
    "RunSettings",
    "SaveAtMostEvery",
    "SaveOnChange",
    "SaveOnPublish",
    "SaveOnShutdown",
    "Settings",
    "SettingsError",
    "SqliteStore",
    "StateMigrationError",
    "StateNotJSONError",
    "StateVersionError",
    "Store",
    "StoreConflictError",
    "StoreFencedError",
    "StoreLockedError",
    "StoreNotLoadedError",
    "StoreOpenError",
    "StoreWriteError",
    "Stream",
    "StreamFullError",
    "StreamablePort",
    "Transport",
    "TriggerPayload",
    "TrioletteError",
    "UnknownDeviceError",
    "build_registry_snapshot",
    "format_registry_json",
    "format_registry_table",
    "setting_ref",
]

if TYPE_CHECKING:
    from triolette.runtime.app_settings import LoggingSettings as LoggingSettings
    from triolette.runtime.app_settings import MqttSettings as MqttSettings
    from triolette.runtime.app_settings import Settings as Settings

_LAZY = {
    "LoggingSettings": "triolette.runtime.app_settings",
    "MqttSettings": "triolette.runtime.app_settings",
    "Settings": "triolette.runtime.app_settings",
}
claim_public_names({**globals(), "__all__": [name for name in __all__ if name not in _LAZY]})
del claim_public_names

SETTINGS_HINT = "pip install 'triolette[settings]'"


def __getattr__(name: str) -> Any:
    """Import ``Settings``, ``MqttSettings`` and ``LoggingSettings`` when first asked for
    (pydantic-settings is an extra), and ``MockMqttClient``, cosalette's spelling, from
    ``triolette.testing`` on use."""
    if name == "MockMqttClient":
        from triolette.testing import MockMqttClient

        return MockMqttClient
    if name in _LAZY:
        import importlib

        try:
            module = importlib.import_module(_LAZY[name])
        except ImportError as error:
            raise ImportError(
                f"triolette.{name} needs pydantic-settings: {SETTINGS_HINT} ({error})"
            ) from error
        value = getattr(module, name)
        value.__module__ = __name__
        globals()[name] = value
        return value
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
