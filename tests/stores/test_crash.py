"""Crash safety under SIGKILL: the kill -9 loop of persistence notes 5.1, against real files.

A writer process (``crash_writer.py``) saves forever and prints ``ack <r>`` after each save
returned. The test counts acks through the pipe (no sleeping), kills the writer at a point chosen
by a seeded random generator, then reopens the store in this process and checks that every
device holds exactly its last acked value, or the value of the one batch that was in flight
(all of that batch or none of it), that nothing was quarantined, and that no temp file
outlives the next open. The next writer continues from what was stored.
"""

from __future__ import annotations

import dataclasses
import os
import random
import select
import subprocess
import sys
import time
from pathlib import Path
from typing import IO

import pytest

from tests.stores.crash_writer import DEVICES, batch_for, initial_state, open_store
from tests.stores.layout import temp_prefix
from triolette import JsonFileStore

WRITER = Path(__file__).with_name("crash_writer.py")
KILLS = 75
MAX_EXTRA_ACKS = 30
"""After the first new ack, wait for 0 to this many more before the kill."""
MAX_KILL_DELAY = 0.002
"""Half of the kills also wait up to this long on the pipe, to land anywhere inside a save."""
ACK_TIMEOUT = 5.0
"""The writer failed when the pipe stays silent this long (it acks about every millisecond)."""
STORE_NAMES = {"json": "state.json", "sqlite": "state.db"}


@dataclasses.dataclass
class Figures:
    backend: str
    kills: int = 0
    quarantined: int = 0
    lost_saves: int = 0
    torn_values: int = 0
    acked_saves: int = 0
    temps_swept: int = 0
    leaked_temps: int = 0
    seconds: float = 0.0
    problems: list[str] = dataclasses.field(default_factory=list, repr=False)

    def summary(self) -> str:
        line = (
            f"crash {self.backend}: {self.kills} kills, {self.quarantined} unparsable or "
            f"quarantined files, {self.lost_saves} lost completed saves, {self.torn_values} torn "
            f"or impossible values, {self.acked_saves} acked saves, {self.seconds:.1f} s"
        )
        if self.backend == "json":
            line += (
                f"; {self.temps_swept} orphaned temps swept on reopen, "
                f"{self.leaked_temps} of them leaked by an earlier completed save"
            )
        if self.problems:
            line += "\n  " + "\n  ".join(self.problems[:10])
        return line


class Ledger:
    """What the writers acknowledged: the last acked revision, overall and per device."""

    def __init__(self) -> None:
        self.revision = 0
        self.acked = dict.fromkeys(DEVICES, 0)

    def record(self, line: str) -> None:
        word, _, number = line.partition(" ")
        assert word == "ack", f"unexpected line from the writer: {line!r}"
        assert int(number) == self.revision + 1, f"{line!r} after ack {self.revision}"
        self.revision += 1
        for device in batch_for(self.revision):
            self.acked[device] = self.revision


class WriterPipe:
    """Complete lines from the writer's stdout, read against a deadline, never blocking."""

    def __init__(self, stream: IO[bytes]) -> None:
        self._fd = stream.fileno()
        self._pending = b""
        self.closed = False

    def poll(self, timeout: float) -> list[str]:
        """The lines that complete within ``timeout`` seconds (maybe none)."""
        ready, _, _ = select.select([self._fd], [], [], timeout)
        if ready:
            chunk = os.read(self._fd, 65536)
            self._pending += chunk
            self.closed = not chunk
        *lines, self._pending = self._pending.split(b"\n")
        return [line.decode() for line in lines]

    def wait(self, timeout: float) -> list[str]:
        """At least one line, or ``[]`` at end of file; fails after ``timeout`` of silence."""
        deadline = time.monotonic() + timeout
        while not self.closed:
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                pytest.fail(f"the writer printed no complete line for {timeout} s")
            lines = self.poll(remaining)
            if lines:
                return lines
        return []


def writer_failure(proc: subprocess.Popen[bytes], stderr: Path, what: str) -> str:
    proc.kill()
    code = proc.wait()
    return f"{what}; writer exit code {code}, stderr:\n{stderr.read_text()}"


def run_and_kill(
    backend: str,
    path: Path | str,
    ledger: Ledger,
    rng: random.Random,
    stderr: Path | None = None,
) -> int:
    """Start a writer, let it ack a random number of saves, SIGKILL it; return its acks.

    ``path`` is a store file or a server store's URL; ``stderr`` defaults to a file beside
    the store file."""
    if stderr is None:
        assert isinstance(path, Path)
        stderr = path.with_name("writer.stderr")
    with stderr.open("wb") as err:
        proc = subprocess.Popen(
            [sys.executable, str(WRITER), backend, str(path)],
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=err,
            bufsize=0,
        )
    try:
        assert proc.stdout is not None
        pipe = WriterPipe(proc.stdout)
        lines = pipe.wait(ACK_TIMEOUT)
        if not lines:
            pytest.fail(writer_failure(proc, stderr, "the writer ended before starting"))
        assert lines[0] == f"start {ledger.revision}", f"writer resumed wrongly: {lines[0]!r}"
        first = ledger.revision
        target = first + 1 + rng.randint(0, MAX_EXTRA_ACKS)
        for line in lines[1:]:
            ledger.record(line)
        while ledger.revision < target:
            lines = pipe.wait(ACK_TIMEOUT)
            if not lines:
                what = f"the writer ended after ack {ledger.revision}"
                pytest.fail(writer_failure(proc, stderr, what))
            for line in lines:
                ledger.record(line)
        if rng.random() < 0.5:
            for line in pipe.poll(rng.uniform(0, MAX_KILL_DELAY)):
                ledger.record(line)
        proc.kill()
        proc.wait(timeout=ACK_TIMEOUT)
        while lines := pipe.wait(ACK_TIMEOUT):
            for line in lines:
                ledger.record(line)
        return ledger.revision - first
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
        assert proc.stdout is not None
        proc.stdout.close()


def temp_files(path: Path) -> list[Path]:
    return sorted(path.parent.glob(f"{temp_prefix(path)}*"))


def count_temps(path: Path, figures: Figures) -> None:
    """Count the temps a kill left, and those no write in flight can explain.

    A kill leaves at most the temp of the save in flight, plus its ``-prev`` link to the
    current file. A ``-prev`` temp linked to anything else was left by a save that completed.
    """
    temps = temp_files(path)
    figures.temps_swept += len(temps)
    current = path.stat().st_ino
    links = [temp for temp in temps if temp.name.endswith("-prev")]
    figures.leaked_temps += sum(temp.stat().st_ino != current for temp in links)
    figures.leaked_temps += max(0, len(temps) - len(links) - 1)


def check_store(backend: str, path: Path | str, ledger: Ledger, figures: Figures) -> None:
    """Reopen the store as a restarted process would and compare it with the acks."""
    if backend == "json":
        assert isinstance(path, Path)
        count_temps(path, figures)
    store = open_store(backend, str(path))
    try:
        states = store.load_all()
        quarantined = list(getattr(store, "quarantined", []))
    except Exception as exc:
        pytest.fail(f"the store does not open after kill {figures.kills}: {exc!r}")
    finally:
        store.close()
    if backend == "json":
        assert isinstance(path, Path)
        assert not temp_files(path), f"the reopen left temps: {temp_files(path)}"
    problems = [f"kill {figures.kills}: quarantined {report}" for report in quarantined]
    figures.quarantined += len(quarantined)

    attempted = ledger.revision + 1
    in_flight = set(batch_for(attempted))
    landed = set()
    for device in DEVICES:
        state = states.get(device)
        acked = ledger.acked[device]
        count = None if state is None else state.get("count")
        if state is None or not isinstance(count, int) or count < acked:
            figures.lost_saves += 1
            problems.append(f"kill {figures.kills}: {device} is {state}, acked count {acked}")
        elif count == attempted and device in in_flight:
            landed.add(device)
        elif count != acked or state != {**initial_state(device), "count": count}:
            figures.torn_values += 1
            problems.append(
                f"kill {figures.kills}: {device} is {state}, acked {acked}, attempted {attempted}"
            )
    if landed and landed != in_flight:
        figures.torn_values += 1
        problems.append(f"kill {figures.kills}: batch {attempted} landed only on {landed}")

    if problems:
        # Carry on from what is stored (seeding lost devices again), so one failure does not
        # hide the rate.
        figures.problems += problems
        for device in DEVICES:
            count = states.get(device, {}).get("count")
            ledger.acked[device] = count if isinstance(count, int) else 0
        ledger.revision = max(ledger.acked.values())
        reseed(backend, path, {device: ledger.acked[device] for device in DEVICES})
    elif landed:
        ledger.revision = attempted
        for device in landed:
            ledger.acked[device] = attempted


def reseed(backend: str, path: Path | str, counts: dict[str, int]) -> None:
    store = open_store(backend, str(path))
    try:
        store.save_many(
            {device: {**initial_state(device), "count": count} for device, count in counts.items()}
        )
    finally:
        store.close()


@pytest.mark.slow
@pytest.mark.parametrize("backend", ["json", "sqlite"])
def test_sigkill_loses_no_acked_save(backend, tmp_path):
    path = tmp_path / STORE_NAMES[backend]
    reseed(backend, path, dict.fromkeys(DEVICES, 0))
    rng = random.Random(f"test_crash {backend}")
    ledger = Ledger()
    figures = Figures(backend)
    started = time.monotonic()
    try:
        for _ in range(KILLS):
            figures.acked_saves += run_and_kill(backend, path, ledger, rng)
            figures.kills += 1
            check_store(backend, path, ledger, figures)
        final = open_store(backend, str(path))
        final.load_all()
        final.close()
    except (AssertionError, pytest.fail.Exception) as exc:
        figures.seconds = time.monotonic() - started
        pytest.fail(f"{exc}\nfigures so far: {figures.summary()}")
    figures.seconds = time.monotonic() - started
    summary = figures.summary()
    print(f"\n{summary}")
    assert figures.kills == KILLS, summary
    assert figures.acked_saves >= KILLS, summary
    assert figures.quarantined == 0, summary
    assert figures.lost_saves == 0, summary
    assert figures.torn_values == 0, summary
    assert not temp_files(path), f"{temp_files(path)} after the final open; {summary}"


SERVER_KILLS = 10


def settle(backend: str, url: str) -> None:
    """Wait until the killed writer's PostgreSQL backend has ended, so that a statement it
    was still running cannot commit after the check reads. (Redis runs one script at a
    time, so a read there always comes after the killed writer's last script.)"""
    if backend != "postgres":
        return
    import psycopg

    deadline = time.monotonic() + ACK_TIMEOUT
    with psycopg.connect(url, autocommit=True) as admin:
        while True:
            row = admin.execute(
                "SELECT count(*) FROM pg_stat_activity "
                "WHERE datname = current_database() AND application_name = 'triolette'"
            ).fetchone()
            if row is not None and row[0] == 0:
                return
            if time.monotonic() > deadline:
                pytest.fail("the killed writer's backend did not end")
            time.sleep(0.005)


@pytest.mark.slow
@pytest.mark.parametrize("backend", ["postgres", "redis"])
def test_sigkill_loses_no_acked_save_on_a_server_store(backend, tmp_path, request):
    """The same loop against PostgreSQL and Redis: a kill drops the client's connection
    mid-batch; the server commits the batch whole or not at all."""
    url = str(request.getfixturevalue(f"{backend}_url"))
    reseed(backend, url, dict.fromkeys(DEVICES, 0))
    rng = random.Random(f"test_crash {backend}")
    ledger = Ledger()
    figures = Figures(backend)
    started = time.monotonic()
    try:
        for _ in range(SERVER_KILLS):
            figures.acked_saves += run_and_kill(
                backend, url, ledger, rng, stderr=tmp_path / "writer.stderr"
            )
            figures.kills += 1
            settle(backend, url)
            check_store(backend, url, ledger, figures)
    except (AssertionError, pytest.fail.Exception) as exc:
        pytest.fail(f"{exc}\nfigures so far: {figures.summary()}")
    figures.seconds = time.monotonic() - started
    summary = figures.summary()
    print(f"\n{summary}")
    assert figures.kills == SERVER_KILLS, summary
    assert figures.acked_saves >= SERVER_KILLS, summary
    assert figures.lost_saves == 0, summary
    assert figures.torn_values == 0, summary


def test_json_save_after_kill_between_renames_leaves_no_temp(tmp_path):
    path = tmp_path / "state.json"
    store = JsonFileStore(path)
    store.save("dev-00", initial_state("dev-00"))
    store.save("dev-00", {**initial_state("dev-00"), "count": 1})
    store.close()
    # What a kill after "os.replace(link, last_good)" and before "os.replace(temp, path)" leaves
    # once the reopen has swept the temp: the file and its last good copy are one inode.
    os.unlink(store.last_good)
    os.link(path, store.last_good)

    store = JsonFileStore(path)
    try:
        store.save("dev-00", {**initial_state("dev-00"), "count": 2})
        assert temp_files(path) == []
    finally:
        store.close()
