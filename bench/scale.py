"""Scale benchmark: start-up, memory, cycle rate and final flush as the device count grows.

    python bench/scale.py [--devices 100,1000,10000] [--backend json|sqlite|all] [--seconds 3]

For each backend (``JsonFileStore`` / ``SqliteStore`` in a ``tempfile.mkdtemp`` folder) and each
device count N, one configuration runs in its own trio run, in a fresh Python process (so the
memory one configuration freed cannot be reused by the next and hide its cost):

1. The store file is seeded with every device's state (``{"n": 0}``) by the store's own
   ``save_many``, then ``close()``; a new store object then reads it in the run.
2. ``App("scale", store=store, log_statistics_every=None)`` with N
   ``@app.telemetry(f"d{i:05d}", interval=1.0)`` handlers taking ``store: DeviceStore``, each
   doing ``store["n"] = store.get("n", 0) + 1`` with the default policy (``SaveOnShutdown``:
   nothing is written until the shutdown, so every device is dirty when it comes).

Definitions:

* **start-up**: from calling ``await nursery.start(app.serve)`` (the persistence actor opens the
  store and loads every state in one batch) to the return of ``await app.wait_for_cycles(1)``
  (every device completed its first cycle, which runs at once).
* **memory per idle device**: ``VmRSS`` of ``/proc/self/status`` after start-up minus ``VmRSS``
  just before the store object and the app were made, divided by N. It includes each device's
  handler, actor, task and ``DeviceStore`` state, the loaded store contents, and the backend's
  fixed costs (for SQLite its page cache), which weigh most at small N.
* **cycles/s**: ``sum(app.statistics().cycles.values())`` delta over the wall time of a window
  of ``--seconds`` whole intervals, placed between ticks (it opens and closes 0.1 s before a
  tick of the 1 s metronome is due, when the previous tick's cycles are done), against the
  offered N devices/s.
* **final flush**: from ``app.shutdown()`` (called at the end of that window, devices idle) to
  ``serve()`` returning: every one of the N dirty states is durable then. Checked afterwards by
  a fresh store reading the file back: the sum of ``n`` must equal the cycles counted.
* **growth**: the value divided by the one at the previous device count, shown next to the
  device count ratio (for memory, per-device memory: linear cost keeps it near 1x).

Targets (from the issue), judged on the 10,000-device rows: start-up under 2 s, final flush
under 1 s, under 10 KiB per idle device, and linear cost: from the previous device count, start-up
and flush grow by at most 1.5 times the device ratio and memory per device by at most 1.5x.
"""

from __future__ import annotations

import argparse
import contextlib
import gc
import json
import math
import os
import shutil
import sqlite3
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import trio
from benchtools import count_up, file_system_of, verdict

from triolette import App, JsonFileStore, SqliteStore

INTERVAL = 1.0
PHASE = 0.9  # the measuring window opens and closes this far into an interval (0.1 s before a tick)
TARGET_STARTUP = 2.0
TARGET_FLUSH = 1.0
TARGET_BYTES_PER_DEVICE = 10 * 1024
TARGET_DEVICES = 10_000
LINEAR_SLACK = 1.5  # "linear": growth at most this times the device ratio

BACKENDS = {"json": ("JsonFileStore", "state.json"), "sqlite": ("SqliteStore", "state.db")}


def make_store(kind: str, path: Path) -> JsonFileStore | SqliteStore:
    return JsonFileStore(path) if kind == "json" else SqliteStore(path)


def device_name(index: int) -> str:
    return f"d{index:05d}"


def rss_bytes() -> int:
    """Resident set size of this process (``VmRSS``); 0 where ``/proc`` is missing."""
    with contextlib.suppress(OSError):
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) * 1024  # reported in kB
    return 0


# -- one configuration (runs in a child process) -----------------------------------------------


async def measure(kind: str, path: Path, devices: int, seconds: int) -> dict[str, Any]:
    gc.collect()
    rss_before = rss_bytes()
    store = make_store(kind, path)
    app = App("scale", store=store, log_statistics_every=None)
    for i in range(devices):
        app.telemetry(device_name(i), interval=INTERVAL)(count_up)

    result: dict[str, Any] = {}
    async with trio.open_nursery() as nursery:
        began = trio.current_time()
        await nursery.start(app.serve)  # store opened, every state loaded in one batch
        serving = trio.current_time()  # the metronome starts now (its tick k is due ~k s later)
        await app.wait_for_cycles(1)
        started = trio.current_time()
        result["startup"] = started - began
        result["load"] = serving - began
        gc.collect()
        result["rss_delta"] = rss_bytes() - rss_before

        # A window of whole intervals between ticks, so each tick's cycles fall in or out whole.
        first = serving + math.ceil(started - serving - PHASE + 1e-3) + PHASE
        await trio.sleep_until(first)
        cycles_before, wall_before = sum(app.statistics().cycles.values()), time.perf_counter()
        await trio.sleep_until(first + seconds * INTERVAL)
        cycles_after, wall_after = sum(app.statistics().cycles.values()), time.perf_counter()
        result["cycles_per_second"] = (cycles_after - cycles_before) / (wall_after - wall_before)

        flush_began = time.perf_counter()
        app.shutdown()
    # serve() returned (the nursery waited for it): every state is durable.
    result["flush"] = time.perf_counter() - flush_began
    stats = app.statistics()
    result["cycles"] = sum(stats.cycles.values())
    result["skipped_ticks"] = sum(stats.skipped_ticks.values())
    persistence = stats.persistence
    assert persistence is not None
    result["batches"] = persistence.batches
    result["keys_written"] = persistence.keys_written

    reader = make_store(kind, path)  # a fresh reader of what is on disk
    try:
        states = reader.load_all()
    finally:
        reader.close()
    result["persisted"] = sum(int(str(state.get("n", 0))) for state in states.values())
    return result


def run_child(kind: str, folder: Path, devices: int, seconds: int) -> dict[str, Any]:
    path = folder / BACKENDS[kind][1]
    seed = make_store(kind, path)
    seed.save_many({device_name(i): {"n": 0} for i in range(devices)})
    seed.close()
    return trio.run(measure, kind, path, devices, seconds)


# -- driver ----------------------------------------------------------------------------------------


def run_configuration(kind: str, root: Path, devices: int, seconds: int) -> dict[str, Any]:
    folder = Path(tempfile.mkdtemp(prefix=f"{kind}-{devices}-", dir=root))
    command = [sys.executable, __file__, "--child", kind, str(devices), str(folder)]
    command += ["--seconds", str(seconds)]
    done = subprocess.run(command, capture_output=True, text=True, check=False)
    shutil.rmtree(folder, ignore_errors=True)
    if done.returncode != 0:
        raise RuntimeError(f"{kind} with {devices} devices failed:\n{done.stderr}")
    result: dict[str, Any] = json.loads(done.stdout.strip().splitlines()[-1])
    return result


def growth(value: float, previous: float | None) -> str:
    if previous is None or previous <= 0 or math.isnan(value):
        return "-"
    return f"{value / previous:.2f}x"


def table(rows: list[list[str]], header: list[str]) -> None:
    widths = [max(len(row[i]) for row in [header, *rows]) for i in range(len(header))]
    for row in [header, *rows]:
        print(
            "  ".join(
                cell.rjust(w) if i else cell.ljust(w)
                for i, (cell, w) in enumerate(zip(row, widths, strict=True))
            ).rstrip()
        )


def report(kind: str, results: list[tuple[int, dict[str, Any]]]) -> list[str]:
    """Print one backend's table; return the verdict lines for its target rows."""
    name = BACKENDS[kind][0]
    print(f"\n== {name}, telemetry every {INTERVAL:g} s, default policy (save at shutdown) ==")
    header = [
        "devices",
        "start-up",
        "(load)",
        "growth",
        "KiB/device",
        "growth",
        "cycles/s",
        "offered/s",
        "final flush",
        "growth",
        "durable check",
    ]
    rows: list[list[str]] = []
    verdicts: list[str] = []
    previous: tuple[int, dict[str, Any]] | None = None
    for devices, r in results:
        per_device = r["rss_delta"] / devices
        prev = previous[1] if previous else None
        ratio = f" (devices {devices / previous[0]:g}x)" if previous else ""
        prev_per_device = prev["rss_delta"] / previous[0] if previous and prev else None
        check = "ok" if r["persisted"] == r["cycles"] else f"MISMATCH {r['persisted']}"
        rows.append(
            [
                f"{devices:,}",
                f"{r['startup'] * 1000:,.0f} ms",
                f"{r['load'] * 1000:,.0f} ms",
                growth(r["startup"], prev["startup"] if prev else None),
                f"{per_device / 1024:,.2f}",
                growth(per_device, prev_per_device),
                f"{r['cycles_per_second']:,.0f}",
                f"{devices / INTERVAL:,.0f}",
                f"{r['flush'] * 1000:,.0f} ms",
                growth(r["flush"], prev["flush"] if prev else None),
                f"{check} ({r['cycles']:,} cycles)",
            ]
        )
        if devices == TARGET_DEVICES:
            linear = [
                ("start-up", r["startup"], prev["startup"] if prev else None),
                ("final flush", r["flush"], prev["flush"] if prev else None),
            ]
            verdicts.append(
                f"{name} {devices:,}: start-up {r['startup']:.3f} s < {TARGET_STARTUP:g} s: "
                + verdict(r["startup"] < TARGET_STARTUP)
            )
            verdicts.append(
                f"{name} {devices:,}: final flush {r['flush']:.3f} s < {TARGET_FLUSH:g} s: "
                + verdict(r["flush"] < TARGET_FLUSH)
            )
            verdicts.append(
                f"{name} {devices:,}: {per_device / 1024:.2f} KiB per idle device < "
                f"{TARGET_BYTES_PER_DEVICE // 1024} KiB: "
                + verdict(per_device < TARGET_BYTES_PER_DEVICE)
            )
            if previous is None or prev is None:
                verdicts.append(f"{name} {devices:,}: linear growth: n/a (no smaller count run)")
            else:
                device_ratio = devices / previous[0]
                parts, ok = [], True
                for label, value, before in linear:
                    factor = value / before if before else math.inf
                    ok = ok and factor <= LINEAR_SLACK * device_ratio
                    parts.append(f"{label} {factor:.2f}x")
                mem_factor = per_device / prev_per_device if prev_per_device else math.inf
                ok = ok and mem_factor <= LINEAR_SLACK
                parts.append(f"memory/device {mem_factor:.2f}x")
                verdicts.append(
                    f"{name} {devices:,}: linear growth{ratio}: {', '.join(parts)} "
                    f"(limits {LINEAR_SLACK * device_ratio:g}x, {LINEAR_SLACK:g}x): " + verdict(ok)
                )
        previous = (devices, r)
    table(rows, header)
    for devices, r in results:
        if r["skipped_ticks"]:
            print(f"  note: {devices:,} devices skipped {r['skipped_ticks']:,} ticks (overran)")
        print(
            f"  {devices:,}: persistence batches={r['batches']} keys_written={r['keys_written']:,}"
        )
    return verdicts


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--devices", default="100,1000,10000", help="comma-separated counts")
    parser.add_argument("--backend", choices=["json", "sqlite", "all"], default="all")
    parser.add_argument("--seconds", type=int, default=3, help="cycle-rate window (intervals)")
    parser.add_argument("--child", nargs=3, metavar=("KIND", "N", "FOLDER"), help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.seconds < 1:
        parser.error("--seconds must be at least 1")

    if args.child is not None:
        kind, count, folder = args.child
        print(json.dumps(run_child(kind, Path(folder), int(count), args.seconds)))
        return 0

    try:
        counts = [int(part) for part in args.devices.split(",") if part.strip()]
    except ValueError:
        parser.error("--devices takes comma-separated integers")
    if not counts or min(counts) < 1:
        parser.error("--devices must be positive")
    kinds = list(BACKENDS) if args.backend == "all" else [args.backend]

    root = Path(tempfile.mkdtemp(prefix="triolette-scale-"))
    print(
        f"python {sys.version.split()[0]}, trio {trio.__version__}, sqlite {sqlite3.sqlite_version}"
        f", {os.cpu_count()} CPUs, load average {os.getloadavg()[0]:.2f}"
    )
    print(
        f"store folders under the system temp folder ({file_system_of(root)}); one process and"
        f" one trio run per configuration; cycle-rate window {args.seconds} s"
    )
    verdicts: list[str] = []
    try:
        for kind in kinds:
            results = [(n, run_configuration(kind, root, n, args.seconds)) for n in counts]
            verdicts += report(kind, results)
    finally:
        shutil.rmtree(root, ignore_errors=True)
    if verdicts:
        print("\ntargets (10,000-device rows):")
        for line in verdicts:
            print(f"  {line}")
    else:
        print(f"\ntargets: judged on {TARGET_DEVICES:,}-device rows only; none were run")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
