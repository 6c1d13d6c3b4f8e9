"""The MQTT transport on paho-mqtt 2.x, driven by trio's socket waits (no paho thread)."""

from __future__ import annotations

import ssl


class PahoTransport:
    """A connection to the broker at ``host``:``port`` (skeleton: being built)."""

    def __init__(
        self,
        host: str,
        port: int = 1883,
        *,
        client_id: str | None = None,
        username: str | None = None,
        password: str | None = None,
        tls: ssl.SSLContext | None = None,
        keepalive: float = 60.0,
        connect_timeout: float = 5.0,
    ) -> None:
        self.host = host
        self.port = port
        self.client_id = client_id
        self.username = username
        self._password = password
        self.tls = tls
        self.keepalive = keepalive
        self.connect_timeout = connect_timeout

    def __repr__(self) -> str:  # never shows the password
        return f"PahoTransport({self.host!r}, {self.port}, client_id={self.client_id!r})"
