"""Publish a device's state only once the batch that holds it is durable (``publish="durable"``).

A cycle saves its store (the snapshot gets a number from the persistence actor) and *offers*
its state with that number; it never waits. One task per device waits until the store is
durable up to that number, then queues the state as any state is queued (retained, the
latest per topic wins while the broker is away). A newer state offered meanwhile is sent
instead when it is durable too, so a slow disk costs publishes, never memory or cycles.
"""

from __future__ import annotations

import trio

from triolette.core.errors import FlushIncompleteError
from triolette.core.messages import Message

from .mqtt import MqttActor
from .persistence import PersistenceClient


class DurablePublisher:
    """Publishes the states offered by one device, each once its snapshot is durable."""

    def __init__(self, mqtt: MqttActor, client: PersistenceClient) -> None:
        self._mqtt = mqtt
        self._client = client
        self._offered: tuple[Message, int] | None = None  # the newest state and its snapshot
        self._wake = trio.Event()
        self._idle = trio.Event()
        self._idle.set()

    def offer(self, message: Message) -> None:
        """Publish ``message`` once the device's newest submitted snapshot is durable."""
        self._offered = (message, self._client.durability.latest(self._client.key))
        self._idle = trio.Event()
        self._wake.set()

    async def wait_idle(self) -> None:
        """Wait until the newest offered state was published and settled (or failed)."""
        await self._idle.wait()

    async def run(self) -> None:
        """Serve offers until cancelled; returns if the persistence actor stopped first."""
        durability = self._client.durability
        key = self._client.key
        while True:
            await self._wake.wait()
            self._wake = trio.Event()
            while self._offered is not None:
                message, target = self._offered
                try:
                    await durability.wait_for({key: target})
                except FlushIncompleteError:
                    return  # never durable: never published
                newest, newest_target = self._offered
                if newest_target <= durability.durable(key):
                    message = newest  # a newer state became durable in the same batch
                if self._offered[0] is message:
                    self._offered = None
                self._publish(message, last=self._offered is None)

    def _publish(self, message: Message, *, last: bool) -> None:
        idle = self._idle

        def settled(confirmed: bool) -> None:
            if last:
                idle.set()

        if not self._mqtt.publish_soon(message, settled):
            settled(False)
