"""Persistence benchmark: triolette's group commit against a trio model of cosalette's saves.

The "baseline" column is NOT cosalette: it is a re-implementation, on trio, of cosalette's
save path (one blocking backend write per save, inline on the event loop), with every device
waking on the same tick and nothing published. It isolates the cost of saving; what a user
of cosalette gets with MQTT in the loop is measured side by side with the real cosalette
(its ratios are much smaller: at 1,000 devices about 10x with JSON, not 60x), and the whole
loop of triolette (devices, persistence, a real mosquitto) by ``bench/full_loop.py``.

    python bench/persistence.py [--devices 1000] [--seconds 5] [--backend json|sqlite|all]
                                [--dir PARENT] [--keep]

Scenario (both sides, one process, one trio run per side and backend, real clock): ``--devices``
telemetry devices tick every 10 ms on a drift-free schedule (a cycle that overruns skips the
ticks it missed, as triolette's Ticker does); each cycle does ``store["n"] = store.get("n", 0) +
1`` and the ``SaveOnChange`` policy saves the dirty store. Once the lateness ticker (below)
has served its last tick due within ``--seconds`` of the devices' start, the side is shut down
gracefully.

* **triolette**: ``App(store=...)`` with ``@app.telemetry(interval=0.01, persist=SaveOnChange())``
  handlers returning ``None`` (nothing published), ``await app.serve()`` and ``app.shutdown()``.
  The backend is ``JsonFileStore`` / ``SqliteStore``, subclassed only to record, after each
  batch write returns, the time and the counter value of every key it wrote.
* **baseline** (a model of cosalette's save path on trio, not cosalette itself): how
  cosalette saves (read from its ``_persistence/_stores.py`` and ``_runners/_runner_utils.py``):
  the telemetry loop calls ``DeviceStore.save()`` synchronously on the event loop, and each
  save is one backend write. Its ``JsonFileStore.save`` makes sure
  the folder exists (``mkdir`` + ``chmod 0700``), reads and parses the whole file, sets the key,
  writes the whole document pretty-printed (``orjson`` ``OPT_INDENT_2``) to a ``mkstemp`` temp
  file, ``chmod 0600``, then ``os.replace``: **no fsync** of the file or the folder. Its
  ``SqliteStore.save`` runs ``INSERT OR REPLACE`` then ``commit()`` under a lock on a connection
  opened with ``PRAGMA journal_mode=WAL`` only (``synchronous`` left at the library default,
  printed below). The baseline here copies that behaviour; its devices are trio tasks on the
  same schedule calling the blocking save inline on the trio thread. cosalette serialises with
  orjson: it is used when importable, otherwise the stdlib ``json`` stands in and the output
  warns that the baseline is then slower than cosalette really is.

Definitions (the same measurement code for both sides):

* **duration**: from the moment the devices start (after the store was opened and loaded) to
  the moment everything is durable and the backend closed (triolette: ``serve()`` returned,
  final flush included; baseline: every device task ended and the store closed).
* **device saves persisted**: saves that changed a device's content and whose content, or a
  newer one of the same device, is durable at the end. Every save carries the next value of
  the device's counter ``n`` (one increment per save), so this is the sum over devices of ``n``
  read back from the store file after the run by a fresh reader; it is cross-checked against
  the saves the side counted (triolette: ``PersistenceStatistics.saves``, i.e. ``store.save()``
  calls that changed content, final hand-over included). Per second: divided by the duration.
* **physical writes**: backend write calls: batches for triolette, saves for the baseline.
* **bytes per device save**: ``write_bytes`` of ``/proc/self/io`` (all threads of the
  process; pages dirtied for the storage layer, so the file system's own journal is not in it)
  over the duration, divided by the device saves persisted. Where ``/proc/self/io`` is missing
  the logical bytes stand in and the output says so. Logical bytes are what was handed to the
  OS per write: the whole JSON file, or the state texts of the SQLite rows.
* **ticker p99 lateness**: a separate trio task with a drift-free 10 ms schedule; every
  scheduled tick gets a sample, wake time minus its due time. Ticks missed during a stall are
  served by the next wake and each counts with its own lateness, so a stall cannot hide behind
  one sample. It runs during the load only (not during the shutdown and final flush).
* **staleness p99**, triolette: a sampler task wakes every 10 ms (drift-free, missed wakes
  skipped) and records for each probe device the age of its oldest change that is not durable
  yet (0 when all of its changes are durable); change times are taken by the handler,
  durability by the backend subclass when its write returns. The probes are the first 50
  devices: every device does the same work and is written in the same batches, and timing all
  1,000 (a timestamp per cycle, a parse of every written state in the writer thread, a sampler
  pass over all of them) would cost the devices a third of their cycles. It runs until
  ``serve()`` returned, so the final flush is in it. Also shown: the p99 over samples of the
  oldest change among the probes, and
  per save the time from the change to the end of the write that made it durable. Baseline:
  per save, the time from the tick's due time to the return of its save (its sampler would
  always read 0: a change and its save happen without a checkpoint in between).

Targets (from the issue) are judged on the triolette side: persisted saves/s at least 20x the
baseline, ticker p99 lateness under 5 ms, staleness p99 under 100 ms. The store folder is made
with ``tempfile.mkdtemp`` under ``--dir`` (default: the system temp folder); its file system
type is printed, and tmpfs is refused, as it would measure no disk at all.
"""

from __future__ import annotations

import argparse
import contextlib
import importlib
import json
import math
import os
import shutil
import sqlite3
import sys
import tempfile
import threading
import time
from collections.abc import Awaitable, Callable, Mapping
from pathlib import Path
from typing import Any

import attrs
import trio
from benchtools import count_up, file_system_of, verdict

from triolette import (
    App,
    DeviceStore,
    FlushIncompleteError,
    JsonFileStore,
    SaveOnChange,
    SqliteStore,
)

INTERVAL = 0.01  # lateness ticker and staleness sampler period (seconds)
PROBES = 50  # triolette devices whose changes are timed for staleness (all do the same work)
DEVICE_INTERVAL = INTERVAL  # device tick period; --device-interval changes it
TARGET_RATIO = 20.0
TARGET_LATENESS_MS = 5.0
TARGET_STALENESS_MS = 100.0

try:
    _orjson: Any = importlib.import_module("orjson")
except ImportError:
    _orjson = None

SERIALIZER = "orjson" if _orjson is not None else "stdlib json (cosalette uses orjson)"


def _dumps_pretty(obj: object) -> str:
    """cosalette's ``dumps_pretty``: 2-space indentation."""
    if _orjson is not None:
        return str(_orjson.dumps(obj, option=_orjson.OPT_INDENT_2).decode())
    return json.dumps(obj, indent=2, ensure_ascii=False)


def _loads(text: str) -> Any:
    return _orjson.loads(text) if _orjson is not None else json.loads(text)


def device_name(index: int) -> str:
    return f"dev{index:05d}"


# -- measurement helpers ----------------------------------------------------------------------


def read_proc_io() -> dict[str, int] | None:
    try:
        text = Path("/proc/self/io").read_text()
    except OSError:
        return None
    values = {}
    for line in text.splitlines():
        name, _, value = line.partition(":")
        values[name.strip()] = int(value)
    return values


def percentile(values: list[float], q: float) -> float:
    """Nearest-rank percentile; NaN for no values."""
    if not values:
        return math.nan
    ordered = sorted(values)
    rank = max(1, math.ceil(q / 100 * len(ordered)))
    return ordered[rank - 1]


def counter_of(text: str) -> int:
    """The counter ``n`` of a state text (fast path for the canonical ``{"n":123}``)."""
    if text.startswith('{"n":') and text.endswith("}"):
        with contextlib.suppress(ValueError):
            return int(text[5:-1])
    value = json.loads(text).get("n", 0)
    return value if isinstance(value, int) else 0


def read_back(kind: str, path: Path) -> dict[str, int]:
    """Every device's counter as a fresh reader finds it in the store file after the run."""
    if kind == "json":
        document = json.loads(path.read_text(encoding="utf-8"))
        return {key: int(state.get("n", 0)) for key, state in document.items()}
    db = sqlite3.connect(path)
    try:
        rows = db.execute("SELECT key, data FROM store").fetchall()
    finally:
        db.close()
    return {key: int(json.loads(data).get("n", 0)) for key, data in rows}


class Ticker:
    """Drift-free schedule, tick N due at ``start + N * interval``; overruns skip missed ticks.

    The same behaviour as triolette's device ticker, so both sides get the same offered load.
    """

    def __init__(self, interval: float) -> None:
        self.interval = interval
        self._start: float | None = None
        self._next = 0

    async def wait(self) -> float:
        """Sleep until the next tick is due; return its due time (trio clock)."""
        now = trio.current_time()
        if self._start is None:
            self._start = now
        due = self._start + self._next * self.interval
        if due < now:
            self._next = math.ceil((now - self._start) / self.interval)
            due = self._start + self._next * self.interval
        await trio.sleep_until(due)
        self._next += 1
        return due


async def lateness_ticker(interval: float, seconds: float, samples: list[float]) -> None:
    """Tick for ``seconds``; record wake time minus due time for every tick due in that time.

    Ticks missed during a stall are served by the next wake, each with its own lateness. It
    returns at the first wake after the last tick due before ``seconds`` (no cancellation, so
    the ticks of a stall that runs past the end are still counted).
    """
    start = trio.current_time()
    count = math.ceil(seconds / interval)
    tick = 0
    while tick < count:
        await trio.sleep_until(start + tick * interval)
        now = trio.current_time()
        while tick < count and start + tick * interval <= now:
            samples.append(now - (start + tick * interval))
            tick += 1


# -- triolette side -------------------------------------------------------------------------


class DurabilityLog:
    """What became durable when: filled by the backend (worker thread), read on the trio thread.

    Only the probe devices (the first ``probes``) are followed: parsing every written state in
    the writer thread would take the GIL from the devices it measures.
    """

    def __init__(self, probes: int) -> None:
        self.lock = threading.Lock()
        self.index = {device_name(i): i for i in range(probes)}
        self.durable = [0] * probes  # newest durable counter per probe device
        self.events: list[tuple[float, dict[int, int]]] = []  # (write returned, {device: n})
        self.writes = 0
        self.logical_bytes = 0
        self.write_seconds: list[float] = []  # how long each backend write call took

    def record(self, texts: Mapping[str, str], logical_bytes: int, began: float) -> None:
        """Called after a backend write returned: everything in ``texts`` is durable now."""
        done = time.perf_counter()
        written = {
            index: counter_of(texts[key]) for key, index in self.index.items() if key in texts
        }
        with self.lock:
            for device, n in written.items():
                self.durable[device] = max(self.durable[device], n)
            self.events.append((done, written))
            self.writes += 1
            self.logical_bytes += logical_bytes
            self.write_seconds.append(done - began)

    def snapshot(self) -> list[int]:
        with self.lock:
            return list(self.durable)


class TracedStore:
    """A built-in store that records, each time a batch write returns, what became durable.

    Only ``save_encoded`` is watched: it is what the persistence actor calls for the built-in
    stores, so every batch is recorded exactly once.
    """

    def __init__(self, inner: JsonFileStore | SqliteStore, log: DurabilityLog) -> None:
        self.inner = inner
        self.log = log

    def load(self, key: str) -> dict[str, object] | None:
        return self.inner.load(key)

    def save(self, key: str, data: dict[str, object]) -> None:
        self.inner.save(key, data)

    def load_all_encoded(self) -> dict[str, str]:
        return self.inner.load_all_encoded()

    def save_encoded(self, texts: Mapping[str, str]) -> None:
        began = time.perf_counter()
        self.inner.save_encoded(texts)
        if isinstance(self.inner, JsonFileStore):  # the whole file is rewritten
            written = self.inner.path.stat().st_size
        else:  # only the rows
            written = sum(len(text.encode()) for text in texts.values())
        self.log.record(texts, written, began)

    def close(self) -> None:
        self.inner.close()


def make_handler(changes: list[float]) -> Callable[[DeviceStore], Awaitable[None]]:
    clock = time.perf_counter

    async def handler(store: DeviceStore) -> None:
        store["n"] = store.get("n", 0) + 1
        changes.append(clock())  # change number len(changes) happened now
        # Returns None: nothing is published, only persistence is measured.

    return handler


@attrs.define
class SideResult:
    side: str
    duration: float = 0.0
    cycles: int = 0
    persisted: int = 0
    counted_saves: int = 0
    physical_writes: int = 0
    write_bytes: int | None = None
    cancelled_write_bytes: int | None = None
    logical_bytes: int = 0
    lateness: list[float] = attrs.Factory(list)
    staleness: list[float] = attrs.Factory(list)
    staleness_app: list[float] = attrs.Factory(list)
    change_to_durable: list[float] = attrs.Factory(list)
    write_seconds: list[float] = attrs.Factory(list)
    notes: list[str] = attrs.Factory(list)
    persistence: Any = None

    @property
    def saves_per_second(self) -> float:
        return self.persisted / self.duration if self.duration else math.nan

    @property
    def writes_per_second(self) -> float:
        return self.physical_writes / self.duration if self.duration else math.nan

    @property
    def bytes_per_save(self) -> float:
        if not self.persisted:
            return math.nan
        physical = self.write_bytes if self.write_bytes is not None else self.logical_bytes
        return physical / self.persisted


def io_delta(before: dict[str, int] | None, after: dict[str, int] | None, key: str) -> int | None:
    if before is None or after is None or key not in before or key not in after:
        return None
    return after[key] - before[key]


async def run_triolette(kind: str, folder: Path, devices: int, seconds: float) -> SideResult:
    result = SideResult("triolette")
    probes = min(devices, PROBES)
    log = DurabilityLog(probes)
    path = folder / ("state.json" if kind == "json" else "state.db")
    store = TracedStore(JsonFileStore(path) if kind == "json" else SqliteStore(path), log)
    app = App("bench", store=store, shutdown_timeout=60.0)
    changes: list[list[float]] = [[] for _ in range(probes)]
    for i in range(devices):
        handler = make_handler(changes[i]) if i < probes else count_up
        app.telemetry(device_name(i), interval=DEVICE_INTERVAL, persist=SaveOnChange())(handler)

    served = trio.Event()
    failure: list[FlushIncompleteError] = []

    async def serving(task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED) -> None:
        try:
            await app.serve(task_status=task_status)
        except FlushIncompleteError as error:
            failure.append(error)
        served.set()

    async def sampler() -> None:
        ticker = Ticker(INTERVAL)
        while not served.is_set():
            await ticker.wait()
            now = time.perf_counter()
            durable = log.snapshot()
            oldest = 0.0
            for device, times in enumerate(changes):
                done = durable[device]
                age = now - times[done] if len(times) > done else 0.0
                result.staleness.append(age)
                oldest = max(oldest, age)
            result.staleness_app.append(oldest)

    async with trio.open_nursery() as nursery:
        await nursery.start(serving)  # the store is open and every device state loaded
        io_before, started = read_proc_io(), time.perf_counter()
        nursery.start_soon(sampler)
        await lateness_ticker(INTERVAL, seconds, result.lateness)
        app.shutdown()
        await served.wait()
        result.duration = time.perf_counter() - started
        io_after = read_proc_io()
        nursery.cancel_scope.cancel()

    if failure:
        result.notes.append(f"serve() raised: {failure[0]}")
    stats = app.statistics()
    result.persistence = stats.persistence
    result.cycles = sum(stats.cycles.values())
    result.write_bytes = io_delta(io_before, io_after, "write_bytes")
    result.cancelled_write_bytes = io_delta(io_before, io_after, "cancelled_write_bytes")
    result.logical_bytes = log.logical_bytes
    result.write_seconds = log.write_seconds
    result.physical_writes = stats.persistence.batches if stats.persistence else log.writes
    if stats.persistence is not None:
        result.counted_saves = stats.persistence.saves
        if stats.persistence.batches != log.writes:
            result.notes.append(
                f"batches {stats.persistence.batches} != backend writes seen {log.writes}"
            )
    result.persisted = sum(read_back(kind, path).values())
    result.change_to_durable = change_to_durable(changes, log.events, probes)
    return result


def change_to_durable(
    changes: list[list[float]], events: list[tuple[float, dict[int, int]]], devices: int
) -> list[float]:
    """For every change, the time until the end of the first write that held it (or newer)."""
    writes: list[list[tuple[float, int]]] = [[] for _ in range(devices)]
    for done, written in events:
        for device, n in written.items():
            writes[device].append((done, n))
    delays = []
    for device, times in enumerate(changes):
        device_writes = writes[device]  # in write order: one worker thread writes
        cursor, newest, done_at = 0, 0, math.nan
        for number, changed in enumerate(times, start=1):
            while newest < number and cursor < len(device_writes):
                done_at, covered = device_writes[cursor]
                newest = max(newest, covered)
                cursor += 1
            if newest < number:
                break  # never durable (cannot happen after a clean serve)
            delays.append(done_at - changed)
    return delays


# -- baseline: cosalette's saving behaviour -----------------------------------------------------


class CosaletteJsonStore:
    """cosalette's JsonFileStore behaviour: each save rereads and rewrites the file, no fsync."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self.logical_bytes = 0

    def load(self, key: str) -> dict[str, Any] | None:
        if not self.path.exists():
            return None
        try:
            data = _loads(self.path.read_text(encoding="utf-8"))
        except (ValueError, OSError):
            return None
        if not isinstance(data, dict):
            return None
        value = data.get(key)
        return value if isinstance(value, dict) else None

    def save(self, key: str, data: dict[str, Any]) -> None:
        folder = self.path.parent
        folder.mkdir(parents=True, exist_ok=True)
        folder.chmod(0o700)
        existing: dict[str, Any] = {}
        if self.path.exists():
            with contextlib.suppress(ValueError, OSError):
                parsed = _loads(self.path.read_text(encoding="utf-8"))
                if isinstance(parsed, dict):
                    existing = parsed
        existing[key] = data
        payload = (_dumps_pretty(existing) + "\n").encode("utf-8")
        fd, temp = tempfile.mkstemp(dir=folder, suffix=".tmp")
        try:
            with os.fdopen(fd, "wb") as file:
                file.write(payload)
            os.chmod(temp, 0o600)
            os.replace(temp, self.path)
        except Exception:
            with contextlib.suppress(OSError):
                os.unlink(temp)
            raise
        self.logical_bytes += len(payload)

    def close(self) -> None:
        return None


class CosaletteSqliteStore:
    """cosalette's SqliteStore behaviour: WAL, one INSERT OR REPLACE + commit per save."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self.logical_bytes = 0
        path.parent.mkdir(parents=True, exist_ok=True)
        path.parent.chmod(0o700)
        if not path.exists():
            os.close(os.open(path, os.O_CREAT | os.O_WRONLY, 0o600))
        self._db = sqlite3.connect(path, check_same_thread=False)
        self._lock = threading.Lock()
        self._db.execute("PRAGMA journal_mode=WAL")
        self._db.execute(
            "CREATE TABLE IF NOT EXISTS store (key TEXT PRIMARY KEY, data TEXT NOT NULL)"
        )
        self._db.commit()
        self.synchronous = {0: "OFF", 1: "NORMAL", 2: "FULL", 3: "EXTRA"}.get(
            self._db.execute("PRAGMA synchronous").fetchone()[0], "?"
        )

    def load(self, key: str) -> dict[str, Any] | None:
        with self._lock:
            row = self._db.execute("SELECT data FROM store WHERE key = ?", (key,)).fetchone()
        if row is None:
            return None
        value = _loads(row[0])
        return value if isinstance(value, dict) else None

    def save(self, key: str, data: dict[str, Any]) -> None:
        text = _dumps_pretty(data)
        with self._lock:
            self._db.execute("INSERT OR REPLACE INTO store (key, data) VALUES (?, ?)", (key, text))
            self._db.commit()
        self.logical_bytes += len(text.encode("utf-8"))

    def close(self) -> None:
        self._db.close()


class CosaletteDeviceStore:
    """cosalette's DeviceStore as far as this load uses it: a dict with a dirty flag."""

    def __init__(self, backend: CosaletteJsonStore | CosaletteSqliteStore, key: str) -> None:
        self._backend = backend
        self._key = key
        self._data: dict[str, Any] = backend.load(key) or {}
        self._dirty = False

    def get(self, key: str, default: Any = None) -> Any:
        return self._data.get(key, default)

    def __setitem__(self, key: str, value: Any) -> None:
        self._data[key] = value
        self._dirty = True

    @property
    def dirty(self) -> bool:
        return self._dirty

    def save(self) -> None:
        self._backend.save(self._key, dict(self._data))
        self._dirty = False


async def run_baseline(kind: str, folder: Path, devices: int, seconds: float) -> SideResult:
    result = SideResult("baseline")
    path = folder / ("state.json" if kind == "json" else "state.db")
    backend: CosaletteJsonStore | CosaletteSqliteStore = (
        CosaletteJsonStore(path) if kind == "json" else CosaletteSqliteStore(path)
    )
    if isinstance(backend, CosaletteSqliteStore):
        result.notes.append(f"baseline SQLite: journal_mode=WAL, synchronous={backend.synchronous}")
    else:
        result.notes.append(
            "baseline JSON: temp file + os.replace per save, no fsync (as cosalette)"
        )
    stores = [CosaletteDeviceStore(backend, device_name(i)) for i in range(devices)]
    saves = 0

    async def device(store: CosaletteDeviceStore) -> None:
        nonlocal saves
        ticker = Ticker(DEVICE_INTERVAL)
        while True:
            due = await ticker.wait()
            result.cycles += 1
            store["n"] = store.get("n", 0) + 1
            if store.dirty:  # SaveOnChange
                began = time.perf_counter()
                store.save()  # blocking, on the trio thread, as cosalette's maybe_persist does
                result.write_seconds.append(time.perf_counter() - began)
                saves += 1
                result.staleness.append(trio.current_time() - due)

    io_before, started = read_proc_io(), time.perf_counter()
    async with trio.open_nursery() as nursery:
        for store in stores:
            nursery.start_soon(device, store)
        await lateness_ticker(INTERVAL, seconds, result.lateness)
        nursery.cancel_scope.cancel()
    backend.close()
    result.duration = time.perf_counter() - started
    io_after = read_proc_io()
    result.write_bytes = io_delta(io_before, io_after, "write_bytes")
    result.cancelled_write_bytes = io_delta(io_before, io_after, "cancelled_write_bytes")
    result.logical_bytes = backend.logical_bytes
    result.physical_writes = saves
    result.counted_saves = saves
    result.persisted = sum(read_back(kind, path).values())
    return result


async def run_floor(devices: int, seconds: float) -> SideResult:
    """Reference: the same tasks and tickers with no work at all (what trio alone costs)."""
    result = SideResult("bare trio")

    async def idle_device() -> None:
        ticker = Ticker(DEVICE_INTERVAL)
        while True:
            await ticker.wait()
            result.cycles += 1

    started = time.perf_counter()
    async with trio.open_nursery() as nursery:
        for _ in range(devices):
            nursery.start_soon(idle_device)
        await lateness_ticker(INTERVAL, seconds, result.lateness)
        nursery.cancel_scope.cancel()
    result.duration = time.perf_counter() - started
    return result


async def run_ceiling(devices: int, seconds: float) -> SideResult:
    """Reference: triolette's devices with no store and a handler that does nothing.

    What scheduling and the device cycle cost without persistence: the most cycles (hence
    saves) per second this machine can run at all.
    """
    result = SideResult("triolette, no store")
    app = App("ceiling")

    async def idle() -> None:
        return None

    for i in range(devices):
        app.telemetry(device_name(i), interval=DEVICE_INTERVAL)(idle)
    started = time.perf_counter()
    async with trio.open_nursery() as nursery:
        await nursery.start(app.serve)
        await lateness_ticker(INTERVAL, seconds, result.lateness)
        app.shutdown()
    result.duration = time.perf_counter() - started
    result.cycles = sum(app.statistics().cycles.values())
    return result


# -- report --------------------------------------------------------------------------------------


def ms(seconds: float) -> str:
    return "n/a" if math.isnan(seconds) else f"{seconds * 1000:,.1f} ms"


def number(value: float) -> str:
    return "n/a" if math.isnan(value) else f"{value:,.0f}"


def ratio(a: float, b: float) -> str:
    if math.isnan(a) or math.isnan(b) or b == 0:
        return "n/a"
    value = a / b
    return f"{value:,.1f}x" if value >= 1 else f"{value:.2g}x"


BASELINE_IS = (
    "baseline = cosalette's save path re-implemented on trio (inline blocking save per change,"
    " every device on one tick, nothing published); not the real cosalette"
)


def ratio_verdict(devices: int, triolette: SideResult, baseline: SideResult) -> str:
    """The saves/s ratio target, which only means something while triolette is not idle.

    With a slow device interval every offered save is persisted and the ratio measures the
    offered load, not the engine; the issue's scenario (10 ms) is the one the target is for.
    """
    offered = devices / DEVICE_INTERVAL
    if triolette.saves_per_second >= 0.97 * offered:
        return "n/a (every offered save)"
    return verdict(triolette.saves_per_second >= TARGET_RATIO * baseline.saves_per_second)


def report(kind: str, devices: int, triolette: SideResult, baseline: SideResult) -> None:
    name = {"json": "JsonFileStore", "sqlite": "SqliteStore"}[kind]
    physical = triolette.write_bytes is not None and baseline.write_bytes is not None
    bytes_label = "physical, /proc/self/io" if physical else "LOGICAL (no /proc/self/io)"
    t_lat, b_lat = percentile(triolette.lateness, 99), percentile(baseline.lateness, 99)
    t_stale, b_stale = percentile(triolette.staleness, 99), percentile(baseline.staleness, 99)
    rows: list[tuple[str, str, str, str, str]] = [
        (
            "duration (devices start .. all durable)",
            f"{triolette.duration:.2f} s",
            f"{baseline.duration:.2f} s",
            "",
            "",
        ),
        (
            f"device cycles/s (offered {devices / DEVICE_INTERVAL:,.0f})",
            number(triolette.cycles / triolette.duration),
            number(baseline.cycles / baseline.duration),
            ratio(triolette.cycles / triolette.duration, baseline.cycles / baseline.duration),
            "",
        ),
        (
            "device saves persisted/s",
            number(triolette.saves_per_second),
            number(baseline.saves_per_second),
            ratio(triolette.saves_per_second, baseline.saves_per_second),
            f">= {TARGET_RATIO:.0f}x: " + ratio_verdict(devices, triolette, baseline),
        ),
        (
            "physical writes/s (batches | saves)",
            number(triolette.writes_per_second),
            number(baseline.writes_per_second),
            ratio(triolette.writes_per_second, baseline.writes_per_second),
            "",
        ),
        (
            "backend write call p50 | max",
            f"{ms(percentile(triolette.write_seconds, 50))} | "
            f"{ms(max(triolette.write_seconds, default=math.nan))}",
            f"{ms(percentile(baseline.write_seconds, 50))} | "
            f"{ms(max(baseline.write_seconds, default=math.nan))}",
            "",
            "",
        ),
        (
            f"bytes written per device save ({bytes_label})",
            f"{triolette.bytes_per_save:,.1f}",
            f"{baseline.bytes_per_save:,.1f}",
            ratio(triolette.bytes_per_save, baseline.bytes_per_save),
            "",
        ),
        (
            "logical bytes per device save",
            f"{triolette.logical_bytes / max(1, triolette.persisted):,.1f}",
            f"{baseline.logical_bytes / max(1, baseline.persisted):,.1f}",
            "",
            "",
        ),
        (
            "ticker p99 lateness (10 ms ticker)",
            ms(t_lat),
            ms(b_lat),
            ratio(t_lat, b_lat),
            f"< {TARGET_LATENESS_MS:.0f} ms: " + verdict(t_lat * 1000 < TARGET_LATENESS_MS),
        ),
        (
            "ticker max lateness",
            ms(max(triolette.lateness, default=math.nan)),
            ms(max(baseline.lateness, default=math.nan)),
            "",
            "",
        ),
        (
            "staleness p99 (see docstring)",
            ms(t_stale),
            ms(b_stale),
            ratio(t_stale, b_stale),
            f"< {TARGET_STALENESS_MS:.0f} ms: " + verdict(t_stale * 1000 < TARGET_STALENESS_MS),
        ),
        (
            "  triolette: p99 of oldest unsaved (probes)",
            ms(percentile(triolette.staleness_app, 99)),
            "",
            "",
            "",
        ),
        (
            "  triolette: p99 change -> durable per save",
            ms(percentile(triolette.change_to_durable, 99)),
            "",
            "",
            "",
        ),
    ]
    widths = [
        max(len(row[i]) for row in [*rows, ("", "triolette", "baseline", "ratio", "")])
        for i in range(5)
    ]
    print(
        f"\n== {name}: {devices:,} devices, SaveOnChange, every {DEVICE_INTERVAL * 1000:.0f} ms =="
    )
    header = ("", "triolette", "baseline", "ratio t/b", "target (triolette)")
    print(BASELINE_IS)
    print(
        "  ".join(
            h.ljust(w) if i == 0 else h.rjust(w) if i < 4 else h
            for i, (h, w) in enumerate(zip(header, widths, strict=True))
        )
    )
    for row in rows:
        print(
            "  ".join(
                c.ljust(w) if i == 0 else c.rjust(w) if i < 4 else c
                for i, (c, w) in enumerate(zip(row, widths, strict=True))
            )
        )

    stats = triolette.persistence
    if stats is not None:
        print(
            f"triolette PersistenceStatistics: saves={stats.saves:,} coalesced={stats.coalesced:,}"
            f" skipped_identical={stats.skipped_identical:,} batches={stats.batches:,}"
            f" keys_written={stats.keys_written:,} keys/batch={stats.keys_per_batch:,.1f}"
            f" max_keys/batch={stats.max_keys_per_batch:,} mailbox_peak={stats.mailbox_peak}"
            f" pending_peak={stats.pending_peak:,} bytes_written={stats.bytes_written:,}"
            f" failures={stats.failures}"
        )
    for side in (triolette, baseline):
        check = "ok" if side.persisted == side.counted_saves else "MISMATCH"
        cancelled = (
            f", cancelled_write_bytes={side.cancelled_write_bytes:,}"
            if side.cancelled_write_bytes is not None
            else ""
        )
        print(
            f"{side.side}: persisted (sum of n read back)={side.persisted:,}, saves counted="
            f"{side.counted_saves:,} [{check}], cycles={side.cycles:,}, ticker samples="
            f"{len(side.lateness):,}, staleness samples={len(side.staleness):,}{cancelled}"
        )
        for note in side.notes:
            print(f"  note: {note}")


# -- main ----------------------------------------------------------------------------------------


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--devices", type=int, default=1000)
    parser.add_argument("--seconds", type=float, default=5.0)
    parser.add_argument(
        "--device-interval",
        type=float,
        default=INTERVAL,
        help="seconds between device cycles (default 0.01, the issue's scenario)",
    )
    parser.add_argument("--backend", choices=["json", "sqlite", "all"], default="all")
    parser.add_argument(
        "--dir",
        type=Path,
        default=None,
        help="parent of the temp store folder (default: system temp)",
    )
    parser.add_argument("--keep", action="store_true", help="keep the store files")
    args = parser.parse_args(argv)
    if args.devices < 1 or args.seconds <= 0 or args.device_interval <= 0:
        parser.error("--devices, --seconds and --device-interval must be positive")
    global DEVICE_INTERVAL
    DEVICE_INTERVAL = args.device_interval

    parent = args.dir if args.dir is not None else Path(tempfile.gettempdir())
    root = Path(tempfile.mkdtemp(prefix="triolette-bench-", dir=parent))
    fs_kind = file_system_of(root)
    if fs_kind == "tmpfs":
        shutil.rmtree(root)
        print(f"{root} is on tmpfs, which measures no disk: pass --dir on a real disk")
        return 2
    io = read_proc_io()
    print(
        f"python {sys.version.split()[0]}, trio {trio.__version__}, sqlite {sqlite3.sqlite_version}"
        f", {os.cpu_count()} CPUs, load average {os.getloadavg()[0]:.2f}"
    )
    print(
        f"store folder: {root} ({fs_kind}; made with tempfile.mkdtemp under "
        f"{'--dir' if args.dir is not None else 'the system temp folder'})"
    )
    print(f"baseline serializer: {SERIALIZER}")
    if _orjson is None:
        print(
            "WARNING: orjson is not importable: the baseline encodes with the stdlib json"
            " (pure Python when indenting), so it is SLOWER than cosalette and the ratio is"
            " inflated. Install orjson for a faithful baseline."
        )
    if io is None:
        print("WARNING: /proc/self/io is not readable: bytes per save are LOGICAL bytes")

    kinds = ["json", "sqlite"] if args.backend == "all" else [args.backend]
    floor = trio.run(run_floor, args.devices, min(args.seconds, 3.0))
    print(
        f"reference, no work and no store: {args.devices:,} trio tasks each sleeping on its own"
        f" {DEVICE_INTERVAL * 1000:.0f} ms drift-free ticker (how the baseline schedules; "
        f"triolette shares one timer per interval) reach {floor.cycles / floor.duration:,.0f}"
        f" wake-ups/s (offered {args.devices / DEVICE_INTERVAL:,.0f}); 10 ms ticker p99 lateness"
        f" {ms(percentile(floor.lateness, 99))}"
    )
    ceiling = trio.run(run_ceiling, args.devices, min(args.seconds, 3.0))
    print(
        f"reference, no store: {args.devices:,} triolette telemetry devices with an empty handler"
        f" run {ceiling.cycles / ceiling.duration:,.0f} cycles/s (the most saves/s possible"
        f" here); 10 ms ticker p99 lateness {ms(percentile(ceiling.lateness, 99))}"
    )
    try:
        for kind in kinds:
            t_folder, b_folder = root / f"{kind}-triolette", root / f"{kind}-baseline"
            t_folder.mkdir()
            b_folder.mkdir()
            triolette = trio.run(run_triolette, kind, t_folder, args.devices, args.seconds)
            baseline = trio.run(run_baseline, kind, b_folder, args.devices, args.seconds)
            report(kind, args.devices, triolette, baseline)
    finally:
        if args.keep:
            print(f"\nstore files kept in {root}")
        else:
            shutil.rmtree(root, ignore_errors=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
