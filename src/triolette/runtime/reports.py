"""How a running app tells about errors: the log, the error topics, and what is counted.

A handler error is logged at ERROR with its traceback and published on the device's error
topic; a repeat of the device's last error (same type and message, no clean cycle between)
is only counted. A command rejected for bad input from the network (a malformed payload) is
one WARNING line, its traceback at DEBUG; the same rejection again within
:data:`REJECTION_QUIET` seconds is counted, and the count is told with the next one logged
(or at the end of the serve).
"""

from __future__ import annotations

import logging

import attrs
import trio

from triolette.actors.mqtt import MqttActor
from triolette.core.errors import HandlerTimeoutError, HeartbeatMissedError
from triolette.core.repeats import RepeatFilter

logger = logging.getLogger("triolette.app")

REJECTION_QUIET = 60.0
"""Seconds during which a device's identical rejections are counted instead of logged."""


@attrs.define
class _Rejection:
    kind: tuple[str, str]
    logged_at: float
    more: int = 0


class Reports:
    """Error reports of one serve: logs, the error topics, and the counters for statistics."""

    def __init__(self, app_name: str, mqtt: MqttActor) -> None:
        self._app_name = app_name
        self._mqtt = mqtt
        self._repeats = RepeatFilter()
        self._rejections: dict[str, _Rejection] = {}
        self.watchdog_firings = 0
        self.unsaved: dict[str, str] = {}
        """Devices whose final state is not durable, with why."""

    @property
    def errors_repeated(self) -> int:
        return self._repeats.suppressed

    def report(self, device: str | None, error: BaseException) -> None:
        """Log ``error`` and publish it on the error topics; a repeat is only counted.

        A repeat is logged at DEBUG, without its traceback.
        """
        if isinstance(error, HandlerTimeoutError | HeartbeatMissedError):
            self.watchdog_firings += 1
        if not self._repeats.is_new(device, error):
            logger.debug("%s: %s again (%s)", device, type(error).__name__, error)
            return
        name = device or self._app_name
        logger.error("%s: %s: %s", name, type(error).__name__, error, exc_info=error)
        self._mqtt.report_error(device, error)

    def rejected(self, device: str, error: BaseException) -> None:
        """A command handler refused its input: one WARNING line, identical ones counted."""
        kind = (type(error).__name__, str(error))
        now = trio.current_time()
        last = self._rejections.get(device)
        if last is not None and last.kind == kind and now - last.logged_at < REJECTION_QUIET:
            last.more += 1
            logger.debug("%s: command rejected again: %s: %s", device, *kind)
            return
        if last is not None and last.kind != kind:
            self._tell_counted(device, last)
        since = ""
        if last is not None and last.more and last.kind == kind:
            since = f" ({last.more} more like this in the last {now - last.logged_at:.0f} s)"
        logger.warning("%s: command rejected: %s: %s%s", device, *kind, since)
        logger.debug("%s: the rejected command's traceback", device, exc_info=error)
        self._rejections[device] = _Rejection(kind, now)
        if self._repeats.is_new(device, error):
            self._mqtt.report_error(device, error)

    def tell_counted(self) -> None:
        """Log the rejections counted but not told yet (at the end of a serve)."""
        for device, last in self._rejections.items():
            self._tell_counted(device, last)
        self._rejections.clear()

    @staticmethod
    def _tell_counted(device: str, last: _Rejection) -> None:
        if last.more:
            logger.warning("%s: %d more command(s) rejected: %s: %s", device, last.more, *last.kind)

    def recovered(self, device: str) -> None:
        self._repeats.clear(device)

    def unsaved_state(self, device: str, error: BaseException) -> None:
        self.unsaved[device] = str(error) or type(error).__name__
        self.report(device, error)

    def backend_failed(self, keys: list[str], error: BaseException) -> None:
        # The persistence actor logs each failure with its keys and retry delay itself.
        if self._repeats.is_new(None, error):
            self._mqtt.report_error(None, error)

    def backend_recovered(self) -> None:
        self._repeats.clear(None)  # the next backend error is news again
