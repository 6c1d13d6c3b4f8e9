"""Watch a broker: print every message on some topics, for ``triolette watch`` and the examples.

A plain paho client on its own thread (it is a tool for people, not part of an app), so it
works next to a trio app in the same process and needs no ``mosquitto_sub``.
"""

from __future__ import annotations

import ssl
import sys
import threading
import uuid
from collections.abc import Callable, Sequence
from types import TracebackType
from typing import Any, TextIO

import paho.mqtt.client as paho
from paho.mqtt.enums import CallbackAPIVersion, MQTTErrorCode


class _Client(paho.Client):
    """A paho client that tells why a connection attempt failed (paho's callback does not)."""

    def __init__(self, on_error: Callable[[OSError], None], **kwargs: Any) -> None:
        super().__init__(CallbackAPIVersion.VERSION2, **kwargs)
        self._on_error = on_error

    def reconnect(self) -> MQTTErrorCode:
        try:
            return super().reconnect()
        except OSError as error:
            self._on_error(error)
            raise


class Watch:
    """Prints ``topic payload`` (and ``(retained)``) for each message on ``topics``.

    ``start()`` connects in the background and returns at once; a broker that is not there
    yet is retried (after ``retry_delays[0]`` seconds, doubling up to ``retry_delays[1]``).
    ``stop()`` disconnects. Errors never reach the caller: each connection, refusal, failure
    and loss is said on the output as a ``(watch: ...)`` line, a failure once until its cause
    changes or a connection succeeds; ``on_failure`` (called on paho's thread) hears every
    one. ``username``, ``password`` and ``tls`` (an ``SSLContext``) are for the broker.
    """

    def __init__(
        self,
        host: str,
        port: int,
        topics: Sequence[str] = ("#",),
        *,
        username: str | None = None,
        password: str | None = None,
        tls: ssl.SSLContext | None = None,
        out: TextIO | None = None,
        prefix: str = "",
        retry_delays: tuple[int, int] = (1, 5),
        on_failure: Callable[[str], object] | None = None,
    ) -> None:
        self.host = host
        self.port = port
        self.topics = list(topics)
        self._out = out or sys.stdout
        self._prefix = prefix
        self._lock = threading.Lock()
        self._last_failure: str | None = None
        self._on_failure = on_failure
        self._client = _Client(
            self._on_connect_error, client_id=f"triolette-watch-{uuid.uuid4().hex[:8]}"
        )
        if username is not None:
            self._client.username_pw_set(username, password)
        if tls is not None:
            self._client.tls_set_context(tls)
        self._client.on_connect = self._on_connect
        self._client.on_disconnect = self._on_disconnect
        self._client.on_message = self._on_message
        self._client.reconnect_delay_set(*retry_delays)

    @property
    def address(self) -> str:
        """``HOST:PORT`` (``[HOST]:PORT`` for an IPv6 address), as the output shows it."""
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"{host}:{self.port}"

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

    def _failed(self, cause: str) -> None:
        """Say a failure once: again only when its cause changes or after a connection."""
        if self._on_failure is not None:
            self._on_failure(cause)
        if cause != self._last_failure:
            self._last_failure = cause
            self._print(f"(watch: {cause}; retrying)")

    def _on_connect_error(self, error: OSError) -> None:
        self._failed(f"cannot connect to {self.address}: {_reason(error)}")

    def _on_connect(self, client: Any, userdata: Any, flags: Any, reason: Any, props: Any) -> None:
        if reason.is_failure:
            self._failed(f"the broker at {self.address} refused: {reason}")
            return
        self._last_failure = None
        self._print(f"(watch: connected to {self.address})")
        client.subscribe([(topic, 1) for topic in self.topics])

    def _on_disconnect(
        self, client: Any, userdata: Any, flags: Any, reason: Any, props: Any
    ) -> None:
        if reason.is_failure and self._last_failure is None:
            self._failed(f"lost the connection to {self.address}: {reason}")

    def _on_message(self, client: Any, userdata: Any, message: Any) -> None:
        payload = message.payload.decode("utf-8", errors="replace")
        self._print(f"{message.topic} {payload}{' (retained)' if message.retain else ''}")


def _reason(error: OSError) -> str:
    if isinstance(error, ssl.SSLError):
        return f"TLS: {error.reason or error}"
    if error.strerror:
        return error.strerror
    return str(error) or type(error).__name__
