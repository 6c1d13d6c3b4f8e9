"""A counting bridge on a shared store, run as a process by the lease tests.

    python lease_bridge_process.py STORE_URL DEVICES [triolette run flags...]

``DEVICES`` telemetry devices (``d0``, ``d1``, ...) each add one to a count in their store
every 20 ms, wait until it is durable, and then print ``DURABLE <device> <count>``: a line
is a count the store acknowledged. The flags (``--standby``, ``--lease-seconds``) are
``triolette run``'s. Logs go to stderr.
"""

from __future__ import annotations

import sys
from typing import Any

from triolette import App, DeviceStore
from triolette.actors.transport import LogTransport
from triolette.runtime.wiring import store_for_location


def main() -> None:
    url, devices, *flags = sys.argv[1:]
    app = App(
        "leased",
        "1.0.0",
        store=store_for_location(url),
        transport=LogTransport(),
        log_statistics_every=None,
        heartbeat_every=None,
        shutdown_timeout=3.0,
    )

    def counter(name: str) -> Any:
        async def count(store: DeviceStore) -> None:
            store["count"] = store.get("count", 0) + 1
            store.save()
            await store.flush()
            print(f"DURABLE {name} {store['count']}", flush=True)

        return count

    for index in range(int(devices)):
        name = f"d{index}"
        app.telemetry(name, interval=0.02)(counter(name))
    app.run(["--log-level", "INFO", *flags])


if __name__ == "__main__":
    main()
