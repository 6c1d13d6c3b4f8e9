"""Storage backends for device state.

The backends themselves (``JsonFileStore``, ``SqliteStore``, ``MemoryStore``, ``NullStore``)
and the ``Store`` protocol are imported from ``triolette``; this package is the home of what a
backend author or operator needs beyond them. The server backends ``PostgresStore`` and
``RedisStore`` are imported from here on first use (``from triolette.stores import
PostgresStore``): they need the ``postgres`` or ``redis`` extra, which ``import triolette``
never does.
"""

from typing import TYPE_CHECKING, Any

from triolette.core.exports import claim_public_names
from triolette.stores._encoded import QuarantineReport as QuarantineReport
from triolette.stores._remote import StoredRecord as StoredRecord
from triolette.stores.lease import Lease as Lease
from triolette.stores.lease import LeasedStore as LeasedStore
from triolette.stores.lease import LeaseOwner as LeaseOwner
from triolette.stores.protocol import BatchStore as BatchStore
from triolette.stores.protocol import EncodedBatchStore as EncodedBatchStore

if TYPE_CHECKING:
    from triolette.stores.postgres import PostgresStore as PostgresStore
    from triolette.stores.redis import RedisStore as RedisStore

__all__ = [
    "BatchStore",
    "EncodedBatchStore",
    "Lease",
    "LeaseOwner",
    "LeasedStore",
    "PostgresStore",
    "QuarantineReport",
    "RedisStore",
    "StoredRecord",
]
_LAZY = {"PostgresStore": "postgres", "RedisStore": "redis"}
claim_public_names({**globals(), "__all__": [name for name in __all__ if name not in _LAZY]})
del claim_public_names


def __getattr__(name: str) -> Any:
    """Import a server backend when it is first asked for (its client is an optional extra)."""
    if name in _LAZY:
        import importlib

        value = getattr(importlib.import_module(f"triolette.stores.{_LAZY[name]}"), name)
        value.__module__ = __name__
        globals()[name] = value
        return value
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
