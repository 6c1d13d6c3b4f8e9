"""Write amplification of the JSON store: bytes written per device save, by total state size.

    python bench/write_amplification.py [--seconds 3] [--devices 100] [--sizes 1e3,1e5,5e7]
                                        [--dir PARENT]

``JsonFileStore`` rewrites its whole file on every batch, however small the change. Here
``--devices`` telemetry devices (10 ms interval, ``SaveOnChange``, each cycle one more on a
counter) run in an ``App`` with no broker for ``--seconds``, next to ten devices' worth of
state that never changes (``bulk0`` .. ``bulk9``, written to the file before the start) that
brings the file to each total size of ``--sizes`` bytes. Each size runs twice: with the
store's default pacing (``rewrite_rate`` = ``REWRITE_RATE`` bytes/s: after a rewrite of ``n``
bytes the next waits ``n / rewrite_rate`` s, at most ``MAX_PAUSE``) and without
(``rewrite_rate=None``: every batch at once).

Printed per run: rewrites, bytes rewritten (the store's own counters, the bytes handed to
the OS; each rewrite is also fsynced), device saves (``store.save()`` calls that changed
content, from the persistence statistics), **bytes written per device save**, the rewrite rate
in MB/s, and the share of wall time spent rewriting (``rewrite_seconds``: render, write,
fsync, rename; the pauses not included). Wall time runs to the end of the final flush.
"""

from __future__ import annotations

import argparse
import shutil
import sys
import tempfile
import time
from pathlib import Path

import trio
from benchtools import count_up, file_system_of, markdown_table

from triolette import App, JsonFileStore, SaveOnChange
from triolette.stores.jsonfile import MAX_PAUSE, REWRITE_RATE

BULK_KEYS = 10


def prepare(path: Path, total: float) -> None:
    """Write the bulk: ``BULK_KEYS`` states that bring the file to about ``total`` bytes."""
    pad = "x" * max(1, int(total / BULK_KEYS) - 40)
    seed = JsonFileStore(path, rewrite_rate=None)
    seed.save_many({f"bulk{i}": {"pad": pad} for i in range(BULK_KEYS)})
    seed.close()


async def run(path: Path, devices: int, seconds: float, rate: float | None) -> dict[str, float]:
    store = JsonFileStore(path, rewrite_rate=rate)
    app = App("amplification", store=store, shutdown_timeout=60.0)
    for i in range(devices):
        app.telemetry(f"d{i:04d}", interval=0.01, persist=SaveOnChange())(count_up)
    async with trio.open_nursery() as nursery:
        await nursery.start(app.serve)
        started = time.perf_counter()
        await trio.sleep(seconds)
        app.shutdown()
    wall = time.perf_counter() - started  # the final flush included
    size = await trio.Path(path).stat()
    stats = app.statistics().persistence
    assert stats is not None
    return {
        "size": size.st_size,
        "rewrites": store.rewrites,
        "bytes": store.bytes_rewritten,
        "saves": stats.saves,
        "wall": wall,
        "writing": store.rewrite_seconds,
    }


def row(total: float, mode: str, r: dict[str, float]) -> list[str]:
    return [
        f"{r['size']:,.0f}",
        mode,
        f"{r['rewrites']:,.0f}",
        f"{r['bytes'] / 1e6:,.1f}",
        f"{r['saves']:,.0f}",
        f"{r['bytes'] / max(1, r['saves']):,.0f}",
        f"{r['bytes'] / r['wall'] / 1e6:,.1f}",
        f"{100 * r['writing'] / r['wall']:.0f} %",
    ]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--seconds", type=float, default=3.0)
    parser.add_argument("--devices", type=int, default=100)
    parser.add_argument("--sizes", default="1e3,1e5,5e7", help="total state sizes in bytes")
    parser.add_argument("--dir", type=Path, default=None, help="parent of the store folder")
    args = parser.parse_args(argv)
    root = Path(tempfile.mkdtemp(prefix="amplification-", dir=args.dir))
    print(f"store folder {root} on {file_system_of(root)}; {args.devices} devices at 10 ms")
    print(f"pacing: rewrite_rate {REWRITE_RATE / 1e6:g} MB/s, pause at most {MAX_PAUSE:g} s")
    rows = []
    try:
        for total in (float(size) for size in args.sizes.split(",")):
            for mode, rate in (("paced", REWRITE_RATE), ("unpaced", None)):
                path = root / f"{mode}-{total:.0f}" / "state.json"
                path.parent.mkdir()
                prepare(path, total)
                result = trio.run(run, path, args.devices, args.seconds, rate)
                rows.append(row(total, mode, result))
                shutil.rmtree(path.parent)
    finally:
        shutil.rmtree(root, ignore_errors=True)
    header = [
        "file bytes",
        "mode",
        "rewrites",
        "MB written",
        "device saves",
        "bytes per device save",
        "MB/s written",
        "time writing",
    ]
    print(markdown_table(header, rows))
    print("command: python " + " ".join(sys.argv))
    return 0


if __name__ == "__main__":
    sys.exit(main())
