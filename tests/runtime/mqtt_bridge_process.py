"""A bridge on a real broker, run as a process by the MQTT signal and start-up tests.

    python mqtt_bridge_process.py HOST PORT PREFIX CLIENT_ID

Two telemetry devices, ``alpha`` and ``beta``, publish a count every 50 ms. It serves with
``app.run()``: SIGTERM stops it gracefully, and its exit status tells how it ended.
"""

from __future__ import annotations

import sys

from triolette import App, Backoff, DeviceContext, PahoTransport


def main() -> None:
    host, port, prefix, client_id = sys.argv[1], int(sys.argv[2]), sys.argv[3], sys.argv[4]
    transport = PahoTransport(host, port, client_id=client_id, keepalive=1, connect_timeout=1)
    app = App(
        prefix,
        "2.0.0",
        transport=transport,
        reconnect_backoff=Backoff(initial=0.2, maximum=1.0, jitter=0.5),
        log_statistics_every=None,
    )
    cycles = {"alpha": 0, "beta": 0}

    async def count(ctx: DeviceContext) -> dict[str, object]:
        cycles[ctx.name] += 1
        return {"count": cycles[ctx.name]}

    for name in cycles:
        app.telemetry(name, interval=0.05)(count)
    app.run([])  # the app names its broker: no flags


if __name__ == "__main__":
    main()
