"""How a running app tells about errors: the log, the error topics, and what is counted.

A handler error is logged at ERROR with its traceback and published on the device's error
topic; a repeat of the device's last error (same type and message, no clean cycle between)
is only counted. A command rejected for bad input from the network (a malformed payload) is
one WARNING line, its traceback at DEBUG; the same rejection again within
:data:`REJECTION_QUIET` seconds is counted, and the count is told with the next one logged
(or at the end of the serve).

Each report published carries a label, ``error_type``: ``"error"``, a framework label
(:data:`FRAMEWORK_LABELS`, ``"invalid_payload"`` for a rejected command,
``"invalid_state"`` for a state that did not match its model) or the one the app
maps the exception's exact class to (``App(error_type_map=...)``, which wins). Its correlation
``id`` is also in the log line. An error that keeps repeating is published again as a reminder
every ``remind_every`` seconds, with ``details`` ``{"count", "first_seen"}``.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Mapping
from datetime import UTC, datetime
from typing import Any

import attrs
import trio

from triolette.actors.mqtt import MqttActor
from triolette.core.errors import (
    HandlerTimeoutError,
    HeartbeatMissedError,
    PayloadValidationError,
    RegistrationError,
    ReturnValidationError,
    StreamFullError,
)
from triolette.core.repeats import RepeatFilter
from triolette.core.topics import error_body, new_error_id

logger = logging.getLogger("triolette.app")

REJECTION_QUIET = 60.0
"""Seconds during which a device's identical rejections are counted instead of logged."""


FRAMEWORK_LABELS: dict[type[BaseException], str] = {
    HandlerTimeoutError: "timeout",
    HeartbeatMissedError: "heartbeat_missed",
    json.JSONDecodeError: "invalid_json",
    StreamFullError: "stream_overflow",
    PayloadValidationError: "invalid_payload",
    ReturnValidationError: "invalid_state",
}
"""The ``error_type`` of triolette's own errors (exact class)."""
REJECTED = "invalid_payload"
"""The ``error_type`` of a command rejected for bad input."""


def check_error_type_map(mapping: object) -> dict[type[BaseException], str]:
    """``App(error_type_map=...)`` checked: Exception subclasses to non-empty labels."""
    if mapping is None:
        return {}
    if not isinstance(mapping, Mapping):
        raise RegistrationError(
            f"error_type_map must map exception classes to labels, got {mapping!r}"
        )
    for key, label in mapping.items():
        if not (isinstance(key, type) and issubclass(key, Exception)):
            raise RegistrationError(f"error_type_map: key {key!r} is not an Exception subclass")
        if not isinstance(label, str) or not label.strip():
            raise RegistrationError(
                f"error_type_map: the label of {key.__name__} must be a non-empty str, "
                f"got {label!r}"
            )
    return dict(mapping)


@attrs.define
class _Streak:
    """One error repeating on a device: since when, how often, and when last published."""

    first_seen: datetime
    published_at: float
    count: int = 1


@attrs.define
class _Rejection:
    kind: tuple[str, str]
    logged_at: float
    more: int = 0


class Reports:
    """Error reports of one serve: logs, the error topics, and the counters for statistics."""

    def __init__(
        self,
        app_name: str,
        mqtt: MqttActor,
        *,
        error_types: Mapping[type[BaseException], str] | None = None,
        publish_messages: bool = True,
        remind_every: float | None = None,
    ) -> None:
        self._app_name = app_name
        self._mqtt = mqtt
        self._labels = {**FRAMEWORK_LABELS, **(error_types or {})}
        self._publish_messages = publish_messages
        self._remind_every = remind_every
        self._streaks: dict[str | None, _Streak] = {}
        self._repeats = RepeatFilter()
        self._rejections: dict[str, _Rejection] = {}
        self.watchdog_firings = 0
        self.unsaved: dict[str, str] = {}
        """Devices whose final state is not durable, with why."""

    @property
    def errors_repeated(self) -> int:
        return self._repeats.suppressed

    def label(self, error: BaseException) -> str:
        """The ``error_type`` published for ``error`` (exact class match)."""
        return self._labels.get(type(error), "error")

    def report(self, device: str | None, error: BaseException) -> None:
        """Log ``error`` and publish it on the error topics; a repeat is only counted.

        A repeat is logged at DEBUG, without its traceback, unless it is due for a reminder.
        """
        if isinstance(error, HandlerTimeoutError | HeartbeatMissedError):
            self.watchdog_firings += 1
        name = device or self._app_name
        if not self._repeats.is_new(device, error):
            if not self._remind(device, error):
                logger.debug("%s: %s again (%s)", device, type(error).__name__, error)
            return
        first_seen = datetime.now(UTC)  # the report's timestamp is the streak's first_seen
        self._streaks[device] = _Streak(first_seen, trio.current_time())
        error_id = self._publish(device, error, when=first_seen)
        logger.error(
            "%s: %s: %s [error id %s]", name, type(error).__name__, error, error_id, exc_info=error
        )

    def _remind(self, device: str | None, error: BaseException) -> bool:
        """Count a repeat; publish it again if ``remind_every`` passed since the last time."""
        streak = self._streaks.get(device)
        if streak is None:
            return False
        streak.count += 1
        now = trio.current_time()
        if self._remind_every is None or now - streak.published_at < self._remind_every:
            return False
        streak.published_at = now
        details = {"count": streak.count, "first_seen": _iso(streak.first_seen)}
        error_id = self._publish(device, error, details=details)
        logger.warning(
            "%s: %s: %s, %d times since %s [error id %s]",
            device or self._app_name,
            type(error).__name__,
            error,
            streak.count,
            details["first_seen"],
            error_id,
        )
        return True

    def _publish(
        self,
        device: str | None,
        error: BaseException,
        *,
        label: str | None = None,
        details: Mapping[str, Any] | None = None,
        when: datetime | None = None,
    ) -> str:
        """Publish ``error`` on the error topics (stamped ``when``, default now); return its
        correlation id."""
        error_id = new_error_id()
        label = self._labels.get(type(error), label or "error")  # the app's map wins
        message = None if self._publish_messages else type(error).__name__
        body = error_body(
            error,
            device,
            when,
            error_type=label,
            error_id=error_id,
            message=message,
            details=details,
        )
        self._mqtt.report_error(device, error, body)
        return error_id

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
        error_id = ""
        if self._repeats.is_new(device, error):
            self._streaks.pop(device, None)
            error_id = f" [error id {self._publish(device, error, label=REJECTED)}]"
        logger.warning("%s: command rejected: %s: %s%s%s", device, *kind, since, error_id)
        logger.debug("%s: the rejected command's traceback", device, exc_info=error)
        self._rejections[device] = _Rejection(kind, now)

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
        self._streaks.pop(device, None)

    def unsaved_state(self, device: str, error: BaseException) -> None:
        self.unsaved[device] = str(error) or type(error).__name__
        self.report(device, error)

    def backend_failed(self, keys: list[str], error: BaseException) -> None:
        # The persistence actor logs each failure with its keys and retry delay itself.
        if self._repeats.is_new(None, error):
            self._publish(None, error)

    def backend_recovered(self) -> None:
        self._repeats.clear(None)  # the next backend error is news again


def _iso(when: datetime) -> str:
    return when.isoformat(timespec="milliseconds")
