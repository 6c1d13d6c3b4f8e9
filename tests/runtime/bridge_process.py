"""A bridge run as a real process by the signal and crash tests.

    python bridge_process.py STORE_PATH DEVICES INTERVAL

Each telemetry device adds one to its stored counter every cycle (``SaveOnChange``) and prints
``<device> <count>`` after the change, so the test knows the last value each one produced.
It serves with ``app.run()``: SIGTERM and SIGINT stop it gracefully.
"""

from __future__ import annotations

import sys

from triolette import App, DeviceContext, DeviceStore, JsonFileStore, SaveOnChange, SqliteStore


def main() -> None:
    path, devices, interval = sys.argv[1], int(sys.argv[2]), float(sys.argv[3])
    store = SqliteStore(path) if path.endswith(".db") else JsonFileStore(path)
    app = App("bridge", store=store, log_statistics_every=None)

    async def count(store: DeviceStore, ctx: DeviceContext) -> None:
        store["count"] = store.get("count", 0) + 1
        print(ctx.name, store["count"], flush=True)

    for index in range(devices):
        app.telemetry(f"d{index:03d}", interval=interval, persist=SaveOnChange())(count)
    print("ready", flush=True)
    app.run()


if __name__ == "__main__":
    main()
