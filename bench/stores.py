"""Store benchmark: batched saves on SQLite, PostgreSQL and Redis, side by side in one run.

    python bench/stores.py [--devices 1000] [--batches 40] [--repetitions 5] [--dir PARENT]
        [--postgres URL] [--redis URL]

Scenario: ``--devices`` device states of about 120 bytes of JSON each (a counter, three
readings, a text stamp). A **batch** is one ``save_encoded`` call, what the persistence actor
makes of its pending table: either every device changed (a batch of ``--devices`` keys) or
ten of them (a batch of 10). Each repetition runs ``--batches`` batches of each size on each
backend, the backends taking turns within the repetition (interleaved, so a slow moment of
the machine hits all of them), on stores opened and loaded beforehand.

* **SqliteStore** on a file in ``--dir`` (``synchronous=FULL``: fsync per batch).
* **PostgresStore** on a database made for the run and dropped after it (server from
  ``--postgres``, default the loopback one); durability as the server is configured (printed).
* **RedisStore** under a key prefix of the run's own, deleted after it (``--redis``).

Figures:

* **batches/s** and **device saves/s**: batches done divided by the time spent in them.
* **p50 / p99 batch ms**: nearest-rank percentiles of the time one ``save_encoded`` took.
* **wire B/save**: bytes the client sent to the server per device save, counted by a
  forwarding proxy in a separate pass (so its own cost stays out of the timings).
* **disk B/save**: SQLite: bytes this process wrote (``/proc/self/io`` ``write_bytes``:
  WAL and checkpoints); PostgreSQL: WAL bytes the server generated during the pass
  (``pg_current_wal_lsn``, cluster-wide: other activity on the server adds to it); Redis:
  none when the server keeps nothing on disk (printed with its durability).
"""

from __future__ import annotations

import argparse
import contextlib
import select
import socket
import sys
import tempfile
import threading
import time
import urllib.parse
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any, NoReturn

sys.path.insert(0, str(Path(__file__).resolve().parent))

from benchtools import file_system_of, markdown_table, percentile

from triolette import SqliteStore
from triolette.core.jsonstate import encode_state
from triolette.testing.services import postgres_database, redis_prefix

SMALL_BATCH = 10


def _unavailable(reason: str) -> NoReturn:
    raise SystemExit(f"error: {reason}")


def states(devices: int, round_: int) -> dict[str, str]:
    """Every device's state text for round ``round_`` (each round changes every device)."""
    return {
        f"device-{i:04d}": encode_state(
            "d",
            {
                "n": round_,
                "temperature": 20 + (i * 7 + round_) % 100 / 10,
                "humidity": 40 + (i * 3 + round_) % 300 / 10,
                "battery": 100 - round_ % 100,
                "updated": f"2026-12-05T10:{round_ % 60:02d}:{i % 60:02d}Z",
            },
        )
        for i in range(devices)
    }


class CountingProxy:
    """Forwards 127.0.0.1:``port`` to ``target`` and counts the bytes clients sent."""

    def __init__(self, target: tuple[str, int]) -> None:
        self.target = target
        self.sent = 0
        self._lock = threading.Lock()
        self._listener = socket.create_server(("127.0.0.1", 0))
        self.port: int = self._listener.getsockname()[1]
        threading.Thread(target=self._accept, daemon=True).start()

    def _accept(self) -> None:
        while True:
            try:
                client, _ = self._listener.accept()
            except OSError:
                return
            threading.Thread(target=self._pump, args=(client,), daemon=True).start()

    def _pump(self, client: socket.socket) -> None:
        server = socket.create_connection(self.target)
        peers = {client: server, server: client}
        with client, server:
            while True:
                ready, _, _ = select.select(list(peers), [], [])
                for sock in ready:
                    data = sock.recv(1 << 16)
                    if not data:
                        return
                    if sock is client:
                        with self._lock:
                            self.sent += len(data)
                    peers[sock].sendall(data)

    def url(self, url: str) -> str:
        parts = urllib.parse.urlsplit(url)
        user = f"{parts.username}@" if parts.username else ""
        return urllib.parse.urlunsplit(parts._replace(netloc=f"{user}127.0.0.1:{self.port}"))

    def close(self) -> None:
        self._listener.close()


def _target(url: str) -> tuple[str, int]:
    parts = urllib.parse.urlsplit(url)
    return parts.hostname or "127.0.0.1", parts.port or 0


def _process_write_bytes() -> int:
    with contextlib.suppress(OSError):
        for line in Path("/proc/self/io").read_text().splitlines():
            if line.startswith("write_bytes:"):
                return int(line.split()[1])
    return 0


class Backend:
    """One store under test, its timings and its byte counts."""

    def __init__(self, name: str, open_store: Callable[[str | None], Any], where: str) -> None:
        self.name = name
        self.open_store = open_store
        self.where = where
        self.store = open_store(None)
        self.store.load_all_encoded()
        self.latencies: dict[int, list[float]] = {}
        self.busy: dict[int, float] = {}
        self.wire: dict[int, float] = {}
        self.disk: dict[int, float] = {}
        self.durability: str = getattr(self.store, "durability", None) or "synchronous=FULL"

    def run(self, batches: list[dict[str, str]]) -> None:
        size = len(batches[0])
        times = self.latencies.setdefault(size, [])
        for batch in batches:
            started = time.perf_counter()
            self.store.save_encoded(batch)
            took = time.perf_counter() - started
            times.append(took)
            self.busy[size] = self.busy.get(size, 0.0) + took

    def close(self) -> None:
        self.store.close()


def _pg_wal(url: str) -> Callable[[], int]:
    import psycopg

    def lsn() -> int:
        with psycopg.connect(url, autocommit=True) as conn:
            row = conn.execute("SELECT pg_wal_lsn_diff(pg_current_wal_lsn(), '0/0')").fetchone()
            return int(row[0]) if row else 0

    return lsn


def measure_bytes(backend: Backend, server_url: str | None, sizes: list[int], devices: int) -> None:
    """Wire bytes (through a counting proxy) and disk bytes per device save, per batch size."""
    rounds = iter(range(10_000, 20_000))
    for size in sizes:
        batches = [dict(list(states(devices, next(rounds)).items())[:size]) for _ in range(10)]
        saves = size * len(batches)
        if server_url is None:  # SQLite: what this process writes
            before = _process_write_bytes()
            for batch in batches:
                backend.store.save_encoded(batch)
            backend.disk[size] = (_process_write_bytes() - before) / saves
            continue
        proxy = CountingProxy(_target(server_url))
        store = backend.open_store(proxy.url(server_url))
        try:
            store.load_all_encoded()
            wal = _pg_wal(server_url) if backend.name == "PostgreSQL" else None
            wal_before = wal() if wal else 0
            sent_before = proxy.sent
            for batch in batches:
                store.save_encoded(batch)
            backend.wire[size] = (proxy.sent - sent_before) / saves
            if wal:
                backend.disk[size] = (wal() - wal_before) / saves
        finally:
            store.close()
            proxy.close()


@contextlib.contextmanager
def backends(args: argparse.Namespace, folder: Path) -> Iterator[list[tuple[Backend, str | None]]]:
    from triolette.stores.postgres import PostgresStore
    from triolette.stores.redis import RedisStore

    with (
        postgres_database(args.postgres, _unavailable) as pg_url,
        redis_prefix(args.redis, _unavailable) as redis_url,
    ):
        made = [
            (Backend("SQLite", lambda _: SqliteStore(folder / "state.db"), "file"), None),
            (
                Backend("PostgreSQL", lambda url: PostgresStore(url or pg_url), "server"),
                pg_url,
            ),
            (Backend("Redis", lambda url: RedisStore(url or redis_url), "server"), redis_url),
        ]
        try:
            yield made
        finally:
            for backend, _ in made:
                backend.close()


def report(made: list[tuple[Backend, str | None]], sizes: list[int]) -> str:
    header = ["backend / batch", "batches/s", "device saves/s", "p50 ms", "p99 ms"]
    header += ["wire B/save", "disk B/save"]
    rows = []
    for backend, _ in made:
        for size in sizes:
            times = backend.latencies[size]
            rate = len(times) / backend.busy[size]
            wire = backend.wire.get(size)
            disk = backend.disk.get(size)
            rows.append(
                [
                    f"{backend.name} x{size}",
                    f"{rate:,.0f}",
                    f"{rate * size:,.0f}",
                    f"{percentile(times, 50) * 1000:.2f}",
                    f"{percentile(times, 99) * 1000:.2f}",
                    "-" if wire is None else f"{wire:,.0f}",
                    "-" if disk is None else f"{disk:,.0f}",
                ]
            )
    return markdown_table(header, rows)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--devices", type=int, default=1000)
    parser.add_argument("--batches", type=int, default=40, help="per size, backend, repetition")
    parser.add_argument("--repetitions", type=int, default=5)
    parser.add_argument("--dir", type=Path, default=None, help="parent folder of the SQLite file")
    parser.add_argument("--postgres", default="postgresql://postgres@127.0.0.1:5432/test")
    parser.add_argument("--redis", default="redis://127.0.0.1:6379/0")
    args = parser.parse_args(argv)
    sizes = [args.devices, SMALL_BATCH]
    with tempfile.TemporaryDirectory(dir=args.dir) as tmp, backends(args, Path(tmp)) as made:
        print(
            f"{args.devices} devices, {args.batches} batches per size, backend and repetition, "
            f"{args.repetitions} interleaved repetitions; SQLite on {file_system_of(Path(tmp))}"
        )
        for backend, _ in made:
            print(f"  {backend.name}: {backend.durability}")
        round_ = 0
        for _ in range(args.repetitions):
            for size in sizes:
                for backend, _ in made:
                    batches = []
                    for _ in range(args.batches):
                        round_ += 1
                        batches.append(dict(list(states(args.devices, round_).items())[:size]))
                    backend.run(batches)
        for backend, url in made:
            measure_bytes(backend, url, sizes, args.devices)
        print()
        print(report(made, sizes))
    return 0


if __name__ == "__main__":
    sys.exit(main())
