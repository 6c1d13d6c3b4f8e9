"""The process owner: serve an App in a new trio run until a signal, map the outcome to an exit.

A first SIGINT or SIGTERM starts the graceful shutdown; a second stops waiting for the flush.
If the shutdown was abandoned and serving still cannot end (a device blocked in a call that
cannot be cancelled), the process exits with ``os._exit`` after a grace period.
"""

from __future__ import annotations

import logging
import os
import signal
from typing import TYPE_CHECKING, Any

import trio

from triolette.core.errors import (
    ConnectError,
    FlushIncompleteError,
    LeaseLostError,
    RegistrationError,
    RestartLimitError,
    SettingsError,
    StateVersionError,
    StoreOpenError,
)
from triolette.runtime.running import Lifecycle, RunningApp

if TYPE_CHECKING:
    from triolette.runtime.app import App

logger = logging.getLogger("triolette.app")

STUCK_GRACE = 1.0
"""Seconds :func:`run_process` waits, after abandoning a shutdown, before it exits regardless."""

EXIT_STATUS: tuple[tuple[type[Exception], int], ...] = (
    (FlushIncompleteError, 1),
    (RestartLimitError, 2),
    (ConnectError, 3),  # retrying would not help
    (StoreOpenError, 3),  # locked by another process, or cannot be opened at all
    (SettingsError, 3),  # the app's settings could not be built
    (RegistrationError, 3),  # found at start: an adapter that does not import, a bad interval
    (StateVersionError, 3),  # a stored state newer than the code, or one that will not migrate
    (LeaseLostError, 4),  # another bridge took the devices over (or the lease ran out)
)
"""The exit status of each way serving can fail for good."""


def run_process(app: App) -> None:
    """Serve ``app`` in a new trio run until SIGINT or SIGTERM, then shut down gracefully.

    A second signal stops at once without waiting for the flush: a write already in a
    worker thread is not interrupted, but nothing waits for it either, and every device
    whose state is not known to be durable is reported by name.

    Raises ``SystemExit``: 1 if some device's state could not be saved, 2 if the restart limit
    stopped the app (the message names the device), 3 if at start-up the broker refused us for
    good (a host name that does not resolve, bad credentials) or the store cannot be opened
    (another process holds its lock, another bridge holds its devices' lease, a folder where
    the file should be, a foreign database), or what the app builds at start is wrongly
    declared (an adapter's ``"module:Class"`` that does not import, an interval from the
    settings that is not positive), or a device's stored state is newer than the code or
    cannot be migrated to its ``state_version`` (nothing stored is changed); 4 if the app
    lost the lease on its devices in a shared store while serving (it stopped them and wrote
    nothing more).
    Returns after a clean stop.
    """
    try:
        trio.run(_serve_until_signalled, app)
    except tuple(error for error, _ in EXIT_STATUS) as error:
        logger.critical("%s", error)
        status = next(code for kind, code in EXIT_STATUS if isinstance(error, kind))
        raise SystemExit(status) from error


async def _serve_until_signalled(app: App) -> None:
    failure: Exception | None = None
    with trio.open_signal_receiver(signal.SIGINT, signal.SIGTERM) as signals:
        async with trio.open_nursery() as nursery:
            nursery.start_soon(_watch_signals, app, signals)
            nursery.start_soon(_exit_if_stuck, app)
            try:
                await app.serve()
            except Exception as error:  # raised below, outside the nursery: not grouped
                failure = error
            nursery.cancel_scope.cancel()
    if failure is not None:
        raise failure


async def _watch_signals(app: App, signals: Any) -> None:
    count = 0
    async for signum in signals:
        count += 1
        if count == 1:
            logger.info("%s: stopping (flushing device state)", signal.Signals(signum).name)
            app.shutdown()
        else:
            logger.warning("second signal: stopping without waiting for the flush")
            (await app.current_run()).abandon()


async def _exit_if_stuck(app: App) -> None:
    """Once the shutdown was abandoned, end the process if serving cannot end.

    A device blocked in a call that cannot be cancelled (a worker thread reading a hung
    sensor) keeps the trio run open forever. After :data:`STUCK_GRACE` seconds this logs
    which devices are stuck, waits (as long again, at most) for a backend write already
    under way to finish, and exits with status 1 like a power cut would: the built-in
    stores replace state atomically, so what is on disk loads.
    """
    running: RunningApp = await app.current_run()
    await running.wait_for(Lifecycle.ABANDONING)
    if running.state is not Lifecycle.ABANDONING:
        return  # stopped cleanly
    await trio.sleep(STUCK_GRACE)
    logger.critical(
        "shutdown could not finish: %s did not stop (blocked in a call that cannot be "
        "cancelled?); exiting without them",
        ", ".join(sorted(running.supervisor.active)) or "a task",
    )
    if running.persistence is not None:
        await trio.to_thread.run_sync(
            running.persistence.backend_idle.wait, STUCK_GRACE, abandon_on_cancel=True
        )
    logging.shutdown()
    os._exit(1)
