"""The lease keeper: claims an app's devices in a shared store, renews the lease, tells its loss.

The timing rule, for a lease of ``L`` seconds: the keeper renews every ``L/3``; a renewal
that fails is retried every ``L/10`` until the keeper's own deadline, ``L - L/6`` after the
start of the last renewal that succeeded (the server's lease ends at least ``L`` after it).
At that deadline the lease counts as lost and the app stops its devices, before the server
lets anyone else claim them. A standby polls every ``L/3``, so it takes over at most
``L + L/3`` after the holder's last renewal (plus the time to load the state): 13.3 s for the
default 10 s. The epoch fences the writes whatever the timing (see :mod:`triolette.stores.lease`).
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING, TypeVar

import trio

from triolette.actors.worker_thread import WorkerThread
from triolette.core.errors import LeaseHeldError, LeaseLostError
from triolette.stores.lease import Lease, LeasedStore, LeaseOwner

if TYPE_CHECKING:
    from triolette.runtime.app import App

logger = logging.getLogger("triolette.lease")

DEFAULT_LEASE_SECONDS = 10.0
T = TypeVar("T")


def keeper_for(app: App, *, on_lost: Callable[[LeaseLostError], None]) -> LeaseKeeper | None:
    """The keeper of ``app``'s lease, if its store is shared; else ``None``."""
    store: object = app.store
    if not isinstance(store, LeasedStore):
        return None
    return LeaseKeeper(store, seconds=app.lease_seconds, standby=app.standby, on_lost=on_lost)


class LeaseKeeper:
    """Holds the lease of ``store`` on the keys :meth:`run` is given while the app serves.

    :meth:`run` claims (a standby waits for the holder's lease to end), makes the store
    carry the granted epoch, reports started, then renews until cancelled and releases the
    lease on the way out. ``on_lost`` is called once if the lease is lost meanwhile.
    """

    def __init__(
        self,
        store: LeasedStore,
        *,
        seconds: float = DEFAULT_LEASE_SECONDS,
        standby: bool = False,
        on_lost: Callable[[LeaseLostError], None],
        owner: LeaseOwner | None = None,
    ) -> None:
        self.store = store
        self.keys: list[str] = []
        self.seconds = seconds
        self.standby = standby
        self.renew_every = seconds / 3
        self.retry_every = seconds / 10
        self.margin = seconds / 6
        self.owner = owner or LeaseOwner.here()
        self.epoch: int | None = None
        """The epoch granted, once the lease is held."""
        self.lost: LeaseLostError | None = None
        self._on_lost = on_lost
        self._waiting = trio.CancelScope()
        self._worker = WorkerThread()

    def stop_waiting(self) -> None:
        """End a standby's wait: :meth:`run` then reports started without a lease."""
        self._waiting.cancel()

    async def _call(self, fn: Callable[..., T], *args: object) -> T:
        self._worker.hold_until = time.monotonic() + self.seconds
        result: T = await self._worker.run(fn, *args)
        return result

    async def run(
        self, keys: Sequence[str], *, task_status: trio.TaskStatus[bool] = trio.TASK_STATUS_IGNORED
    ) -> None:
        """Claim ``keys``, report ``started(True)``, renew until cancelled, release.

        ``started(False)`` when :meth:`stop_waiting` ended the claim first. Raises
        :class:`~triolette.LeaseHeldError` (not a standby) or
        :class:`~triolette.StoreOpenError` before reporting started.
        """
        self.keys = sorted(set(keys))
        lease = self.store.open_lease(self.owner, self.seconds)
        try:
            granted_at = await self._claim(lease)
            if granted_at is None:
                task_status.started(False)
                return
            self.store.fence(self.epoch)
            task_status.started(True)
            await self._keep(lease, granted_at)
        finally:
            if self.epoch is not None and self.lost is None:
                with trio.move_on_after(self.renew_every, shield=True):
                    try:
                        await self._call(lease.release)
                    except (OSError, LeaseLostError) as error:
                        logger.warning(
                            "could not release the lease (it expires by itself): %s", error
                        )
            if self._worker.idle.is_set():
                lease.close()

    async def _claim(self, lease: Lease) -> float | None:
        """Claim the keys; a standby waits. The trio time of the claim, ``None`` if stopped."""
        told = ""
        with self._waiting:
            while True:
                started = trio.current_time()
                try:
                    self.epoch = await self._call(lease.claim, self.keys)
                except LeaseHeldError as error:
                    if not self.standby:
                        raise
                    news = f"standby: {error.device!r} is held by {error.holder}"
                except OSError as error:
                    news = f"cannot claim the devices yet: {error}"
                else:
                    logger.info(
                        "holding the lease on %d device(s) in %s "
                        "(epoch %d, %g s long, renewed every %g s)",
                        len(self.keys),
                        lease.location,
                        self.epoch,
                        self.seconds,
                        self.renew_every,
                    )
                    return started
                if news != told:
                    logger.warning("%s; trying again every %g s", news, self.renew_every)
                    told = news
                await trio.sleep(self.renew_every)
        return None

    async def _keep(self, lease: Lease, renewed_at: float) -> None:
        """Renew every ``renew_every``; declare the lease lost at the keeper's deadline."""
        deadline = renewed_at + self.seconds - self.margin
        due = renewed_at + self.renew_every
        failing = ""
        while True:
            await trio.sleep_until(due)
            started = trio.current_time()
            if started >= deadline:  # a pause (SIGSTOP, a frozen VM) outlasted the lease
                self.lose(LeaseLostError(lease.location, self._overdue(failing)))
                return
            with trio.move_on_at(deadline):
                try:
                    await self._call(lease.renew)
                except LeaseLostError as error:
                    self.lose(error)
                    return
                except OSError as error:
                    if str(error) != failing:
                        logger.warning("could not renew the lease: %s; retrying", error)
                        failing = str(error)
                    due = min(deadline, trio.current_time() + self.retry_every)
                    continue
                if failing:
                    logger.info("renewed the lease again")
                    failing = ""
                deadline = started + self.seconds - self.margin
                due = started + self.renew_every
                continue
            self.lose(LeaseLostError(lease.location, self._overdue(failing)))
            return

    def _overdue(self, failing: str) -> str:
        cause = f" ({failing})" if failing else ""
        return f"not renewed within {self.seconds - self.margin:g} s{cause}"

    def lose(self, error: LeaseLostError) -> None:
        """Note the lease as lost (once) and tell ``on_lost``."""
        if self.lost is None:
            self.lost = error
            logger.critical("%s: stopping the devices", error)
            self._on_lost(error)
