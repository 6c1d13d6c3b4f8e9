"""The persistence actor's counters and the snapshot of them it hands out."""

from __future__ import annotations

import attrs


@attrs.frozen
class PersistenceStatistics:
    """A snapshot of the persistence actor's counters."""

    mailbox_depth: int
    """Requests waiting in the mailbox now."""
    mailbox_peak: int
    """The most requests that ever waited in the mailbox at once."""
    mailbox_senders: int
    """Open mailbox handles (one per running device, plus the runtime's own)."""
    pending_keys: int
    """Devices whose newest snapshot is not yet being written."""
    pending_peak: int
    """The most devices that ever waited for a write at once."""
    saves: int
    """Snapshots submitted."""
    coalesced: int
    """Snapshots replaced by a newer one of the same device before they were written."""
    skipped_identical: int
    """Snapshots equal to what the backend already holds, so not written."""
    batches: int
    """Successful backend writes (one per group commit)."""
    keys_written: int
    """Device states written in those batches."""
    max_keys_per_batch: int
    bytes_written: int
    """Bytes of encoded state handed to the backend."""
    failures: int
    """Backend writes that raised (each is retried)."""
    last_error: str | None
    flush_waiters: int
    """Tasks waiting in ``flush()`` now."""
    outage_since: float | None = None
    """When the store began failing (``time.time()``), while it does; else ``None``."""

    @property
    def keys_per_batch(self) -> float:
        return self.keys_written / self.batches if self.batches else 0.0


@attrs.define
class Counters:
    saves: int = 0
    coalesced: int = 0
    skipped_identical: int = 0
    batches: int = 0
    keys_written: int = 0
    max_keys_per_batch: int = 0
    bytes_written: int = 0
    failures: int = 0
    pending_peak: int = 0
    last_error: str | None = None
