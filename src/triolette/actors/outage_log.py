"""The log of a backend outage: news at once, repeats counted, recovery told once."""

from __future__ import annotations

import logging
import time

REPEAT_EVERY = 60.0
"""Seconds between two log lines about the same error repeating."""


class OutageLog:
    """Logs failed backend writes so that a disk outage does not flood the log.

    The first failure, and any failure with another error than the one before, is one ERROR
    line with the keys and the retry delay. Repeats of that error are counted and summed up
    in at most one ERROR line per :data:`REPEAT_EVERY` seconds. The first success after
    failures is one INFO line saying how long the outage lasted and how many retries it took.
    Times are whatever clock the caller passes (the trio clock).
    """

    def __init__(self, logger: logging.Logger, *, repeat_every: float = REPEAT_EVERY) -> None:
        self._logger = logger
        self._repeat_every = repeat_every
        self._began: float | None = None
        self._failures = 0
        self._error = ""
        self._logged_at = 0.0
        self._unlogged = 0
        self.since: float | None = None
        """Wall-clock time (``time.time()``) of the outage's first failure; ``None``: none."""

    def failed(self, keys: list[str], error: str, retry_delay: float, now: float) -> None:
        """Note a failed write of ``keys`` (``error``: type and message) retried later."""
        if self._began is None:
            self._began = now
            self.since = time.time()
        self._failures += 1
        if error != self._error:
            self._error, self._logged_at, self._unlogged = error, now, 0
            self._logger.error(
                "could not save %s (%s); kept in memory, retrying in %.1f s",
                ", ".join(keys),
                error,
                retry_delay,
            )
        elif now - self._logged_at >= self._repeat_every:
            self._logger.error(
                "still could not save %s (%s): %d more failure(s) in the last %.0f s; "
                "kept in memory, retrying in %.1f s",
                ", ".join(keys),
                error,
                self._unlogged + 1,
                now - self._logged_at,
                retry_delay,
            )
            self._logged_at, self._unlogged = now, 0
        else:
            self._unlogged += 1

    def recovered(self, now: float) -> None:
        """Note a successful write; after failures, say so once."""
        if self._began is None:
            return
        self._logger.info(
            "the store works again: saved after %.1f s and %d failed attempt(s)",
            now - self._began,
            self._failures,
        )
        self._began, self._failures, self._error, self._unlogged = None, 0, "", 0
        self.since = None
