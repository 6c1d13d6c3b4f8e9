"""triolette: IoT-to-MQTT bridges as supervised trio actors, with durable device state."""

from triolette.actors.device import DeviceContext as DeviceContext
from triolette.actors.paho import PahoTransport as PahoTransport
from triolette.actors.transport import Confirmed as Confirmed
from triolette.actors.transport import Transport as Transport
from triolette.core.backoff import Backoff as Backoff
from triolette.core.errors import ConnectError as ConnectError
from triolette.core.errors import FlushIncompleteError as FlushIncompleteError
from triolette.core.errors import HandlerTimeoutError as HandlerTimeoutError
from triolette.core.errors import HeartbeatMissedError as HeartbeatMissedError
from triolette.core.errors import KeyInUseError as KeyInUseError
from triolette.core.errors import LeaseHeldError as LeaseHeldError
from triolette.core.errors import LeaseLostError as LeaseLostError
from triolette.core.errors import PublishError as PublishError
from triolette.core.errors import RegistrationError as RegistrationError
from triolette.core.errors import RestartLimitError as RestartLimitError
from triolette.core.errors import SettingsError as SettingsError
from triolette.core.errors import StateNotJSONError as StateNotJSONError
from triolette.core.errors import StoreConflictError as StoreConflictError
from triolette.core.errors import StoreFencedError as StoreFencedError
from triolette.core.errors import StoreLockedError as StoreLockedError
from triolette.core.errors import StoreNotLoadedError as StoreNotLoadedError
from triolette.core.errors import StoreOpenError as StoreOpenError
from triolette.core.errors import StoreWriteError as StoreWriteError
from triolette.core.errors import TrioletteError as TrioletteError
from triolette.core.exports import claim_public_names
from triolette.core.messages import Message as Message
from triolette.core.policies import AllSavePolicy as AllSavePolicy
from triolette.core.policies import AnySavePolicy as AnySavePolicy
from triolette.core.policies import PersistPolicy as PersistPolicy
from triolette.core.policies import SaveAtMostEvery as SaveAtMostEvery
from triolette.core.policies import SaveOnChange as SaveOnChange
from triolette.core.policies import SaveOnPublish as SaveOnPublish
from triolette.core.policies import SaveOnShutdown as SaveOnShutdown
from triolette.runtime.app import App as App
from triolette.runtime.embedded import EmbeddedBroker as EmbeddedBroker
from triolette.runtime.health import AppStatistics as AppStatistics
from triolette.runtime.settings import Settings as Settings
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
    "AnySavePolicy",
    "App",
    "AppStatistics",
    "Backoff",
    "Confirmed",
    "ConnectError",
    "DeviceContext",
    "DeviceStore",
    "EmbeddedBroker",
    "FlushIncompleteError",
    "HandlerTimeoutError",
    "HeartbeatMissedError",
    "JsonFileStore",
    "KeyInUseError",
    "LeaseHeldError",
    "LeaseLostError",
    "MemoryStore",
    "Message",
    "NullStore",
    "PahoTransport",
    "PersistPolicy",
    "PublishError",
    "RegistrationError",
    "RestartLimit",
    "RestartLimitError",
    "SaveAtMostEvery",
    "SaveOnChange",
    "SaveOnPublish",
    "SaveOnShutdown",
    "Settings",
    "SettingsError",
    "SqliteStore",
    "StateNotJSONError",
    "Store",
    "StoreConflictError",
    "StoreFencedError",
    "StoreLockedError",
    "StoreNotLoadedError",
    "StoreOpenError",
    "StoreWriteError",
    "Transport",
    "TrioletteError",
]

claim_public_names(globals())
del claim_public_names
