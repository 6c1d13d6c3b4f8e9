"""A bridge whose TLS setting may not match its broker's port, run by the broker link tests.

    python link_bridge_process.py HOST PORT PREFIX tls|plain

It serves with ``app.run()``; its exit status and stderr tell how it ended.
"""

from __future__ import annotations

import ssl
import sys

from triolette import App, PahoTransport


def main() -> None:
    host, port, prefix, mode = sys.argv[1], int(sys.argv[2]), sys.argv[3], sys.argv[4]
    tls = None
    if mode == "tls":
        tls = ssl.create_default_context()
        tls.check_hostname = False
        tls.verify_mode = ssl.CERT_NONE
    transport = PahoTransport(host, port, tls=tls, keepalive=1, connect_timeout=1)
    app = App(prefix, transport=transport, log_statistics_every=None)

    @app.telemetry("meter", interval=0.1)
    async def meter() -> dict[str, object]:
        return {"ok": True}

    app.run([])


if __name__ == "__main__":
    main()
