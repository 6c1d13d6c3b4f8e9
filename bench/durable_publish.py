"""The cost of ``publish="durable"`` next to the default, on a real broker and a real file store.

    python bench/durable_publish.py [--seconds 3] [--devices 20] [--interval 0.01] [--repeat 2]

Also run by ``bench/mqtt.py`` (``--durable-seconds``). An App with ``--devices`` telemetry
devices (``--interval`` apart, ``SaveOnChange``: each cycle adds one to a stored count) on
``PahoTransport`` and a fresh ``JsonFileStore`` or ``SqliteStore`` in a temporary folder (the
file system of ``$TMPDIR``) serves for ``--seconds`` after a 0.5 s warm-up. Each state carries
``time.monotonic()`` taken when its handler returned; a paho subscriber in the same process
notes when it arrived. Reported per backend and mode (median over repetitions, the modes
interleaved): cycles per second over all devices, and the publish latency (handler return to
arrival at the subscriber) median and p99.
"""

from __future__ import annotations

import argparse
import json
import statistics
import tempfile
import threading
import time
import uuid
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import trio
from benchtools import markdown_table, percentile
from paho.mqtt import client as paho
from paho.mqtt.enums import CallbackAPIVersion

from triolette import App, DeviceStore, JsonFileStore, PahoTransport, SaveOnChange, SqliteStore
from triolette.testing.mosquitto import Mosquitto

WARM_UP = 0.5
MODES = ("now", "durable")
BACKENDS = ("json", "sqlite")


@dataclass
class Run:
    cycles: int = 0
    seconds: float = 0.0
    latencies: list[float] = field(default_factory=list)

    @property
    def rate(self) -> float:
        return self.cycles / self.seconds if self.seconds else float("nan")


class Arrivals:
    """A paho subscriber to ``{prefix}/+/state`` noting each state's age on arrival."""

    def __init__(self, host: str, port: int, prefix: str) -> None:
        self.ages: list[tuple[float, float]] = []  # (stamped at, age on arrival)
        self._ready = threading.Event()
        self._client = paho.Client(CallbackAPIVersion.VERSION2, protocol=paho.MQTTv311)
        self._client.on_connect = lambda client, *_: client.subscribe(f"{prefix}/+/state", 0)
        self._client.on_subscribe = lambda *_: self._ready.set()
        self._client.on_message = self._arrived
        self._client.connect(host, port)
        self._client.loop_start()
        if not self._ready.wait(10):
            raise RuntimeError("the subscriber was not subscribed within 10 s")

    def _arrived(self, client: Any, userdata: Any, message: paho.MQTTMessage) -> None:
        now = time.monotonic()
        stamped = json.loads(message.payload)["t"]
        self.ages.append((stamped, now - stamped))

    def close(self) -> None:
        self._client.disconnect()
        self._client.loop_stop()


def measure(
    host: str, port: int, *, backend: str, mode: str, seconds: float, devices: int, interval: float
) -> Run:
    """One App serving ``seconds`` (after the warm-up) with every device publishing ``mode``."""
    prefix = f"durable-bench-{uuid.uuid4().hex[:8]}"
    arrivals = Arrivals(host, port, prefix)
    run = Run()
    counting = [False]
    with tempfile.TemporaryDirectory() as folder:
        path = Path(folder) / ("state.json" if backend == "json" else "state.db")
        store = JsonFileStore(path) if backend == "json" else SqliteStore(path)
        transport = PahoTransport(host, port, client_id=prefix)
        app = App(prefix, "1.0.0", transport=transport, store=store, log_statistics_every=None)

        async def cycle(store: DeviceStore) -> dict[str, Any]:
            store["n"] = store.get("n", 0) + 1
            run.cycles += counting[0]
            return {"n": store["n"], "t": time.monotonic()}

        for index in range(devices):
            name = f"d{index}"
            app.telemetry(name, interval=interval, persist=SaveOnChange(), publish=mode)(cycle)  # type: ignore[arg-type]

        async def serve() -> tuple[float, float]:
            async with trio.open_nursery() as nursery:
                await nursery.start(app.serve)
                await trio.sleep(WARM_UP)
                counting[0], began = True, time.monotonic()
                await trio.sleep(seconds)
                counting[0], ended = False, time.monotonic()
                app.shutdown()
            return began, ended

        try:
            began, ended = trio.run(serve)
        finally:
            arrivals.close()
    run.seconds = ended - began
    run.latencies = [age for stamped, age in arrivals.ages if began <= stamped <= ended]
    return run


def figures(
    host: str, port: int, *, seconds: float, devices: int, interval: float, repeat: int
) -> list[str]:
    """Measure both modes on both backends; return the report's lines (a markdown table)."""
    runs: dict[tuple[str, str], list[Run]] = {(b, m): [] for b in BACKENDS for m in MODES}
    for rep in range(repeat):
        for backend in BACKENDS:
            for mode in MODES if rep % 2 == 0 else MODES[::-1]:
                runs[backend, mode].append(
                    measure(
                        host,
                        port,
                        backend=backend,
                        mode=mode,
                        seconds=seconds,
                        devices=devices,
                        interval=interval,
                    )
                )
    rows = []
    for (backend, mode), done in runs.items():
        rates = [run.rate for run in done]
        medians = [statistics.median(run.latencies) * 1e3 for run in done if run.latencies]
        p99s = [percentile(run.latencies, 99) * 1e3 for run in done if run.latencies]
        rows.append(
            [
                backend,
                f'publish="{mode}"',
                f"{statistics.median(rates):,.0f} ({_span(rates, '.0f')})",
                f"{_median(medians):.1f} ({_span(medians, '.1f')})",
                f"{_median(p99s):.1f} ({_span(p99s, '.1f')})",
            ]
        )
    header = ["store", "mode", "cycles/s (min-max)", "latency median ms", "latency p99 ms"]
    nominal = devices / interval
    return [
        f"publish only what is durable: {devices} devices every {interval * 1e3:g} ms "
        f"(nominal {nominal:,.0f} cycles/s), SaveOnChange, {seconds:g} s x {repeat}; "
        "latency: handler return to arrival at a subscriber",
        markdown_table(header, rows),
    ]


def _median(values: Sequence[float]) -> float:
    return statistics.median(values) if values else float("nan")


def _span(values: Sequence[float], fmt: str) -> str:
    return f"{min(values):{fmt}}-{max(values):{fmt}}" if values else "-"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--seconds", type=float, default=3.0)
    parser.add_argument("--devices", type=int, default=20)
    parser.add_argument("--interval", type=float, default=0.01)
    parser.add_argument("--repeat", type=int, default=2)
    args = parser.parse_args()
    with Mosquitto() as broker:
        lines = figures(
            broker.host,
            broker.port,
            seconds=args.seconds,
            devices=args.devices,
            interval=args.interval,
            repeat=args.repeat,
        )
    print("\n".join(lines))


if __name__ == "__main__":
    main()
