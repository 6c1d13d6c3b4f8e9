"""A bridge run as a real process by the signal and crash tests.

    python bridge_process.py STORE_PATH DEVICES INTERVAL

With ``BRIDGE_SLOW_WRITES=S`` in the environment each JSON write first waits S seconds and
prints ``writing``. With ``BRIDGE_STUCK=1`` one more device, ``stuck``, blocks in a worker
thread that cannot be cancelled (a hung sensor read) and prints ``stuck``.
``BRIDGE_SHUTDOWN_TIMEOUT`` sets the app's shutdown deadline.

Each telemetry device adds one to its stored counter every cycle (``SaveOnChange``) and prints
``<device> <count>`` after the change, so the test knows the last value each one produced.
It serves with ``app.run()``: SIGTERM and SIGINT stop it gracefully.
"""

from __future__ import annotations

import os
import sys
import time
from collections.abc import Mapping

import trio

from triolette import App, DeviceContext, DeviceStore, JsonFileStore, SaveOnChange, SqliteStore


class SlowJsonFileStore(JsonFileStore):
    """A JSON store on a slow card: every write waits ``slow`` seconds first (none by default)."""

    def __init__(self, path: str, slow: float) -> None:
        super().__init__(path)
        self.slow = slow

    def save_encoded(self, texts: Mapping[str, str]) -> None:
        if self.slow:
            print("writing", flush=True)
            time.sleep(self.slow)  # the worker thread stands in for a slow SD card
        super().save_encoded(texts)


def main() -> None:
    path, devices, interval = sys.argv[1], int(sys.argv[2]), float(sys.argv[3])
    slow = float(os.environ.get("BRIDGE_SLOW_WRITES", "0"))
    store = SqliteStore(path) if path.endswith(".db") else SlowJsonFileStore(path, slow)
    deadline = float(os.environ.get("BRIDGE_SHUTDOWN_TIMEOUT", "8"))
    app = App("bridge", store=store, log_statistics_every=None, shutdown_timeout=deadline)

    async def count(store: DeviceStore, ctx: DeviceContext) -> None:
        store["count"] = store.get("count", 0) + 1
        print(ctx.name, store["count"], flush=True)

    for index in range(devices):
        app.telemetry(f"d{index:03d}", interval=interval, persist=SaveOnChange())(count)
    if os.environ.get("BRIDGE_STUCK"):

        @app.device("stuck")
        async def stuck() -> None:
            print("stuck", flush=True)
            await trio.to_thread.run_sync(time.sleep, 3600)  # not abandoned on cancel

    print("ready", flush=True)
    app.run(["--dry-run"])


if __name__ == "__main__":
    main()
