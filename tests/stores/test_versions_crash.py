"""A real crash (SIGKILL of a bridge process) inside or right after a migration: the stored
state and its version are the old ones, and the next start simply migrates again."""

from __future__ import annotations

import json
import select
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.stores.crash_writer import open_store
from tests.stores.test_versions import V0, V3, Meter

BRIDGE = Path(__file__).with_name("migration_crash.py")
LINE_TIMEOUT = 30.0
"""The bridge failed when it prints nothing this long (it starts in well under a second)."""


@pytest.fixture(params=["json", "sqlite", "postgres", "redis"])
def location(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[tuple[str, str]]:
    backend = str(request.param)
    if backend in ("postgres", "redis"):
        yield backend, str(request.getfixturevalue(f"{backend}_url"))
    else:
        yield backend, str(tmp_path / ("state.json" if backend == "json" else "state.db"))


def _killed_at(path: str, mode: str, tmp_path: Path) -> str:
    """Start the bridge, wait for its first line, SIGKILL it; return that line."""
    errors = tmp_path / "bridge.err"
    with errors.open("wb") as err:
        proc = subprocess.Popen(
            [sys.executable, str(BRIDGE), path, mode],
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=err,
        )
    assert proc.stdout is not None
    try:
        ready, _, _ = select.select([proc.stdout], [], [], LINE_TIMEOUT)
        line = proc.stdout.readline().decode().strip() if ready else ""
    finally:
        proc.kill()  # SIGKILL: no cleanup, no flush, no close
        proc.wait()
        proc.stdout.close()
    assert line, f"the bridge printed nothing; stderr:\n{errors.read_text()}"
    return line


def _stored(backend: str, path: str) -> tuple[Any, int | None, int]:
    store = open_store(backend, path)
    try:
        record = store.load_records()["meter"]
        return json.loads(record.text), record.revision, record.version
    finally:
        store.close()


@pytest.mark.parametrize("mode", ["during", "after"])
async def test_a_crash_in_or_after_a_migration_keeps_the_old_state_and_version(
    location, mode, tmp_path
):
    backend, path = location
    store = open_store(backend, path)
    store.save("meter", V0)  # version 0
    store.close()
    before = _stored(backend, path)
    assert before[0] == V0
    assert before[2] == 0

    line = _killed_at(path, mode, tmp_path)
    if mode == "during":
        assert line == "migrating 1"
    else:
        assert line == f"seen {json.dumps(V3, sort_keys=True)}"  # migrated, not yet saved
    assert _stored(backend, path) == before  # old state, old revision, old version

    meter = Meter()  # the next start migrates again, from version 0
    # A standby: a server store's lease of the killed bridge runs out first (1 s).
    await meter.harness(open_store(backend, path), standby=True).run()
    assert meter.calls == [0, 1, 2]
    assert meter.seen == [V3]
    state, _, version = _stored(backend, path)
    assert (state, version) == ({**V3, "reads": 1}, 3)
