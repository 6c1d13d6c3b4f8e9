"""The whole loop: devices, persistence and a real mosquitto, in one process, as users run it.

    python bench/full_loop.py [--devices 1000,100,1] [--backends json,sqlite,memory]
                              [--seconds 5] [--warmup 2] [--dir PARENT]

For each device count and backend: an ``App`` with that many telemetry devices (interval
10 ms, ``SaveOnChange``, each cycle one more on a stored counter, returned as the state, so
published QoS 1 retained) on ``PahoTransport`` to a local mosquitto (started by this script,
loopback), the store ``JsonFileStore`` / ``SqliteStore`` / ``MemoryStore`` in a fresh folder.
After ``--warmup`` seconds the window opens for ``--seconds``; then a graceful shutdown.

Printed per run, over the window:

* **cycles/s**: handler calls; the offered load is devices / 10 ms.
* **confirmed/s**: publishes the broker acknowledged (``MqttStatistics.published``).
* **batches/s**: the persistence actor's backend writes (``PersistenceStatistics.batches``);
  near 0 would mean the store no longer keeps up and changes wait to become durable.
* **loop lag p99 / max**: a task that sleeps 5 ms and records how late it woke (what a
  command or a sensor deadline waits for the loop).
* **CPU s per 1,000 cycles**: ``getrusage`` user + system of this process, all threads.
* **shutdown s**: from ``app.shutdown()`` to ``serve()`` returning (final flush, ``offline``).

The machine may be shared: absolute figures move with its load; compare runs made together.
"""

from __future__ import annotations

import argparse
import resource
import shutil
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import trio
from benchtools import markdown_table, percentile

from triolette import (
    App,
    DeviceStore,
    JsonFileStore,
    MemoryStore,
    PahoTransport,
    SaveOnChange,
    SqliteStore,
)
from triolette.testing.mosquitto import Mosquitto

INTERVAL = 0.01
LAG_PERIOD = 0.005


def cpu_seconds() -> float:
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


def make_store(backend: str, folder: Path) -> Any:
    if backend == "json":
        return JsonFileStore(folder / "state.json")
    if backend == "sqlite":
        return SqliteStore(folder / "state.sqlite")
    return MemoryStore()


async def lag_monitor(samples: list[float]) -> None:
    while True:
        started = time.perf_counter()
        await trio.sleep(LAG_PERIOD)
        samples.append(time.perf_counter() - started - LAG_PERIOD)


async def run(broker: Mosquitto, devices: int, backend: str, folder: Path, args: Any) -> list[str]:
    cycles = 0

    async def tick(store: DeviceStore) -> dict[str, object]:
        nonlocal cycles
        cycles += 1
        store["count"] = value = int(store.get("count", 0)) + 1
        return {"count": value}

    transport = PahoTransport(broker.host, broker.port, client_id=f"loop-{devices}-{backend}")
    app = App("loop", store=make_store(backend, folder), transport=transport)
    for i in range(devices):
        app.telemetry(f"d{i:04d}", interval=INTERVAL, persist=SaveOnChange())(tick)
    lag: list[float] = []
    async with trio.open_nursery() as nursery:
        await nursery.start(app.serve)
        await trio.sleep(args.warmup)
        mqtt, stored = app.statistics().mqtt, app.statistics().persistence
        assert mqtt is not None
        assert stored is not None
        b0 = stored.batches
        c0, p0, cpu0, t0 = cycles, mqtt.published, cpu_seconds(), time.perf_counter()
        async with trio.open_nursery() as window:
            window.start_soon(lag_monitor, lag)
            await trio.sleep(args.seconds)
            window.cancel_scope.cancel()
        mqtt, stored = app.statistics().mqtt, app.statistics().persistence
        assert mqtt is not None
        assert stored is not None
        b1 = stored.batches
        c1, p1, cpu1, t1 = cycles, mqtt.published, cpu_seconds(), time.perf_counter()
        app.shutdown()
    stopped = time.perf_counter()
    span = t1 - t0
    done = max(1, c1 - c0)
    return [
        f"{devices:,}",
        backend,
        f"{done / span:,.0f}",
        f"{(p1 - p0) / span:,.0f}",
        f"{(b1 - b0) / span:,.0f}",
        f"{percentile(lag, 99) * 1e3:.1f} / {max(lag) * 1e3:.1f}",
        f"{(cpu1 - cpu0) / done * 1000:.3f}",
        f"{stopped - t1:.2f}",
    ]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--devices", default="1000,100,1")
    parser.add_argument("--backends", default="json,sqlite,memory")
    parser.add_argument("--seconds", type=float, default=5.0)
    parser.add_argument("--warmup", type=float, default=2.0)
    parser.add_argument("--dir", type=Path, default=None, help="parent of the store folders")
    args = parser.parse_args(argv)
    root = Path(tempfile.mkdtemp(prefix="full-loop-", dir=args.dir))
    rows = []
    try:
        with Mosquitto() as broker:
            for devices in (int(n) for n in args.devices.split(",")):
                for backend in args.backends.split(","):
                    folder = root / f"{devices}-{backend}"
                    folder.mkdir()
                    rows.append(trio.run(run, broker, devices, backend, folder, args))
                    print(" | ".join(rows[-1]), flush=True)
    finally:
        shutil.rmtree(root, ignore_errors=True)
    header = [
        "devices",
        "backend",
        "cycles/s",
        "confirmed/s",
        "batches/s",
        "loop lag p99 / max ms",
        "CPU s per 1,000 cycles",
        "shutdown s",
    ]
    print(markdown_table(header, rows))
    print("command: python " + " ".join(sys.argv))
    return 0


if __name__ == "__main__":
    sys.exit(main())
