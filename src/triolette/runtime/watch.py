"""Watch a broker: print every message on some topics, for ``triolette watch`` and the examples.

A plain paho client on its own thread (it is a tool for people, not part of an app), so it
works next to a trio app in the same process and needs no ``mosquitto_sub``.
"""

from __future__ import annotations

import sys
import threading
import uuid
from collections.abc import Sequence
from types import TracebackType
from typing import Any, TextIO

import paho.mqtt.client as paho
from paho.mqtt.enums import CallbackAPIVersion


class Watch:
    """Prints ``topic payload`` (and ``(retained)``) for each message on ``topics``.

    ``start()`` connects in the background and returns at once; a broker that is not there
    yet is retried every second. ``stop()`` disconnects. Errors never reach the caller:
    a lost connection is retried and said on the output.
    """

    def __init__(
        self,
        host: str,
        port: int,
        topics: Sequence[str] = ("#",),
        *,
        out: TextIO | None = None,
        prefix: str = "",
    ) -> None:
        self.host = host
        self.port = port
        self.topics = list(topics)
        self._out = out or sys.stdout
        self._prefix = prefix
        self._lock = threading.Lock()
        self._client = paho.Client(
            CallbackAPIVersion.VERSION2, client_id=f"triolette-watch-{uuid.uuid4().hex[:8]}"
        )
        self._client.on_connect = self._on_connect
        self._client.on_message = self._on_message
        self._client.reconnect_delay_set(1, 5)

    def start(self) -> Watch:
        self._client.connect_async(self.host, self.port, keepalive=30)
        self._client.loop_start()
        return self

    def stop(self) -> None:
        self._client.disconnect()
        self._client.loop_stop()

    def __enter__(self) -> Watch:
        return self.start()

    def __exit__(
        self,
        kind: type[BaseException] | None,
        error: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()

    def _print(self, line: str) -> None:
        with self._lock:
            print(f"{self._prefix}{line}", file=self._out, flush=True)

    def _on_connect(self, client: Any, userdata: Any, flags: Any, reason: Any, props: Any) -> None:
        if reason.is_failure:
            self._print(f"(watch: the broker refused: {reason})")
            return
        client.subscribe([(topic, 1) for topic in self.topics])

    def _on_message(self, client: Any, userdata: Any, message: Any) -> None:
        payload = message.payload.decode("utf-8", errors="replace")
        self._print(f"{message.topic} {payload}{' (retained)' if message.retain else ''}")
