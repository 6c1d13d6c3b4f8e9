"""Storage backends for device state.

The backends themselves (``JsonFileStore``, ``SqliteStore``, ``MemoryStore``, ``NullStore``)
and the ``Store`` protocol are imported from ``triolette``; this package is the home of what a
backend author or operator needs beyond them.
"""

from triolette.core.exports import claim_public_names
from triolette.stores._encoded import QuarantineReport as QuarantineReport
from triolette.stores.protocol import BatchStore as BatchStore
from triolette.stores.protocol import EncodedBatchStore as EncodedBatchStore

__all__ = ["BatchStore", "EncodedBatchStore", "QuarantineReport"]

claim_public_names(globals())
del claim_public_names
