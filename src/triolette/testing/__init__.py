"""Helpers for testing triolette apps and backends."""

from triolette.core.exports import claim_public_names
from triolette.testing.broker import MemoryBroker as MemoryBroker
from triolette.testing.broker import MemoryTransport as MemoryTransport
from triolette.testing.conformance import check_store as check_store
from triolette.testing.harness import AppHarness as AppHarness
from triolette.testing.mosquitto import Mosquitto as Mosquitto
from triolette.testing.observer import Observer as Observer
from triolette.testing.observer import publish_once as publish_once
from triolette.testing.settings import make_settings as make_settings
from triolette.testing.transport_conformance import check_transport as check_transport

__all__ = [
    "AppHarness",
    "MemoryBroker",
    "MemoryTransport",
    "Mosquitto",
    "Observer",
    "check_store",
    "check_transport",
    "make_settings",
    "publish_once",
]

claim_public_names(globals())
del claim_public_names
