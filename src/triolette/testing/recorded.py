"""What the harness offers on the recorded publishes: snapshots and assertions, by full topic.

Topics are written as a ported cosalette test writes them, in full (``"myapp/sensor/state"``);
:meth:`Recorded.assert_state` also takes a device name (``"sensor"``).
"""

from __future__ import annotations

import json
from typing import Any

import trio.testing

from triolette.runtime.app import App

from .broker import topic_matches
from .mock_mqtt import MockMqttClient, Payload


class Recorded:
    """Snapshots of, and assertions on, what the app published through ``self.mqtt``."""

    app: App
    mqtt: MockMqttClient

    def published(self) -> list[tuple[str, Payload, bool, int]]:
        """Every recorded publish as ``(topic, payload, retain, qos)``, oldest first."""
        return list(self.mqtt.published)

    def messages_for(self, topic: str) -> list[tuple[Payload, bool, int]]:
        """``(payload, retain, qos)`` of every publish to ``topic``, oldest first."""
        return self.mqtt.get_messages_for(topic)

    def last_published(self) -> tuple[str, Payload, bool, int] | None:
        """The latest recorded publish, or ``None``."""
        return self.mqtt.published[-1] if self.mqtt.published else None

    def assert_state(self, topic: str, expected: Any, *, count: int | None = None) -> None:
        """Assert a retained JSON publish on ``topic`` contains ``expected``.

        Contains: dicts recurse (extra keys allowed), anything else (lists too) compares
        equal. ``topic`` is a full topic or a device name (its state topic). With ``count``,
        exactly that many retained publishes must match. ``AssertionError`` says what was
        published instead, or that the matching publish was not retained.
        """
        if "/" not in topic and topic in self.app.device_names:
            topic = self.app.topics.state(topic)
        messages = self.messages_for(topic)
        matching = [(p, r) for p, r, _ in messages if _contains(_json(p), expected)]
        retained = [p for p, r in matching if r]
        if matching and not retained:
            raise AssertionError(f"{topic}: a publish matches {expected!r} but was not retained")
        if not retained or (count is not None and len(retained) != count):
            wanted = "a retained publish" if count is None else f"{count} retained publishes"
            raise AssertionError(
                f"{topic}: expected {wanted} containing {expected!r}, {len(retained)} found; "
                f"published there: {[p for p, _, _ in messages]!r}{self._elsewhere(topic)}"
            )

    def assert_published(
        self, topic: str, *, contains: str | None = None, count: int | None = None
    ) -> None:
        """Assert ``topic`` got a publish (whose text has ``contains``), or exactly ``count``."""
        payloads = [_as_text(p) for p, _, _ in self.messages_for(topic)]
        found = [p for p in payloads if contains is None or contains in p]
        if (count is None and not found) or (count is not None and len(found) != count):
            wanted = "a publish" if count is None else f"{count} publishes"
            having = "" if contains is None else f" containing {contains!r}"
            raise AssertionError(
                f"{topic}: expected {wanted}{having}, {len(found)} found; "
                f"published there: {payloads!r}{self._elsewhere(topic)}"
            )

    def assert_subscribed(self, topic: str) -> None:
        """Assert the app subscribed to ``topic`` (that filter, or one matching it)."""
        filters = self.mqtt.subscriptions
        if topic not in filters and not any(topic_matches(f, topic) for f in filters):
            raise AssertionError(f"no subscription to {topic!r}; subscribed: {filters!r}")

    async def wait_for_publish_count(
        self, topic: str, count: int, *, max_rounds: int = 10_000
    ) -> None:
        """Wait until ``topic`` got at least ``count`` publishes; never moves time.

        Each round lets every task run until blocked; ``RuntimeError`` after ``max_rounds``.
        """
        for _ in range(max_rounds):
            if len(self.messages_for(topic)) >= count:
                return
            await trio.testing.wait_all_tasks_blocked()
        raise RuntimeError(
            f"{topic}: {len(self.messages_for(topic))} publishes after {max_rounds} rounds, "
            f"expected {count} (time does not move here: advance_time() does)"
        )

    def _elsewhere(self, topic: str) -> str:
        topics = sorted({t for t, _, _, _ in self.mqtt.published} - {topic})
        return f"; other topics: {topics!r}" if topics else ""


def _contains(actual: Any, expected: Any) -> bool:
    if isinstance(expected, dict):
        return isinstance(actual, dict) and all(
            key in actual and _contains(actual[key], value) for key, value in expected.items()
        )
    return bool(actual == expected)


def _json(payload: Payload) -> Any:
    try:
        return json.loads(payload)
    except ValueError:
        return _NOT_JSON


def _as_text(payload: Payload) -> str:
    return payload if isinstance(payload, str) else payload.decode("utf-8", errors="replace")


_NOT_JSON = object()
