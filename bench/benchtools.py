"""What the benchmarks share: the file system under test, the device handler, verdicts."""

from __future__ import annotations

import contextlib
import os
from pathlib import Path

from triolette import DeviceStore


def file_system_of(folder: Path) -> str:
    """The type of the file system holding ``folder`` (longest mount point prefix)."""
    real = os.path.realpath(folder)
    best, kind = "", "unknown"
    with contextlib.suppress(OSError):
        for line in Path("/proc/mounts").read_text().splitlines():
            fields = line.split()
            if len(fields) < 3:
                continue
            point = fields[1].replace("\\040", " ")
            inside = real == point or real.startswith(point.rstrip("/") + "/")
            if inside and len(point) > len(best):
                best, kind = point, fields[2]
    return kind


async def count_up(store: DeviceStore) -> None:
    """The benchmarks' device: one more on its stored counter every cycle."""
    store["n"] = store.get("n", 0) + 1


def verdict(ok: bool) -> str:
    return "PASS" if ok else "FAIL"
