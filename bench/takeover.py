"""Takeover benchmark: how long a standby bridge takes to replace a SIGKILLed one.

    python bench/takeover.py [--kills 20] [--lease 1.0] [--devices 10]
        [--postgres URL] [--redis URL]

Scenario, once on PostgreSQL and once on Redis (a database, or a key prefix, of the run's
own): a bridge process holds the lease on ``--devices`` counting devices (each adds one to
its count every 20 ms, saves, and waits until the save is durable); a second bridge waits as
a standby. The holder is SIGKILLed; the standby takes over; a new standby is started; and so
on, ``--kills`` times. The lease is short (``--lease``, 1 s) so the run takes a couple of
minutes: the figures scale with it (the documented worst case is ``L + L/3`` before loading).

Figures, from the SIGKILL (timestamps taken where this script reads the bridges' output):

* **claim**: until the standby logs that it holds the lease.
* **first durable count**: until the standby's first count is durable in the store (state
  loaded, devices started, one write made).
* **counts lost**: acknowledged counts of the killed bridge the standby did not continue from
  (must be 0).
"""

from __future__ import annotations

import argparse
import os
import queue
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from contextlib import ExitStack
from pathlib import Path
from typing import IO, Any, NoReturn

sys.path.insert(0, str(Path(__file__).resolve().parent))

from benchtools import markdown_table, percentile

from triolette import DeviceStore
from triolette.testing.services import postgres_database, redis_prefix


def _unavailable(reason: str) -> NoReturn:
    raise SystemExit(f"error: {reason}")


def bridge(url: str, devices: int, flags: list[str]) -> None:
    """The bridge process: counting devices over the store at ``url``."""
    from triolette import App
    from triolette.actors.transport import LogTransport
    from triolette.runtime.wiring import store_for_location

    app = App(
        "takeover",
        store=store_for_location(url),
        transport=LogTransport(),
        heartbeat_every=None,
        log_statistics_every=None,
    )

    def counter(name: str) -> Any:
        async def count(store: DeviceStore) -> None:
            store["count"] = store.get("count", 0) + 1
            store.save()
            await store.flush()
            print(f"DURABLE {name} {store['count']}", flush=True)

        return count

    for index in range(devices):
        app.telemetry(f"d{index}", interval=0.02)(counter(f"d{index}"))
    app.run(["--log-level", "INFO", *flags])


class Process:
    """A bridge process; every output line lands in :attr:`lines` with its arrival time."""

    def __init__(self, url: str, args: argparse.Namespace, *flags: str) -> None:
        command = [sys.executable, __file__, "--bridge", url, str(args.devices)]
        command += ["--lease-seconds", str(args.lease), *flags]
        self.popen = subprocess.Popen(
            command, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
        )
        self.lines: queue.Queue[tuple[float, str]] = queue.Queue()
        self.durable: dict[str, int] = {}
        for stream in (self.popen.stdout, self.popen.stderr):
            threading.Thread(target=self._read, args=(stream,), daemon=True).start()

    def _read(self, stream: IO[str]) -> None:
        for line in stream:
            self.lines.put((time.monotonic(), line.rstrip("\n")))

    def wait_for(self, text: str, timeout: float = 60.0) -> float:
        """The arrival time of the next line containing ``text``; counts are noted on the way."""
        deadline = time.monotonic() + timeout
        while True:
            try:
                when, line = self.lines.get(timeout=max(0.0, deadline - time.monotonic()))
            except queue.Empty:
                raise SystemExit(f"error: no {text!r} from a bridge in {timeout:g} s") from None
            if line.startswith("DURABLE "):
                _, device, count = line.split()
                self.durable[device] = int(count)
            if text in line:
                return when

    def kill(self) -> None:
        if self.popen.poll() is None:
            self.popen.send_signal(signal.SIGKILL)
        self.popen.wait()


def takeovers(url: str, args: argparse.Namespace) -> Iterator[tuple[float, float, int]]:
    """Per SIGKILL: seconds to the claim, seconds to the first durable count, counts lost."""
    with ExitStack() as stack:
        holder = Process(url, args)
        stack.callback(lambda: holder.kill())
        holder.wait_for("holding the lease")
        for _ in range(args.kills):
            standby = Process(url, args, "--standby")
            stack.callback(standby.kill)
            standby.wait_for("standby:")
            holder.wait_for("DURABLE")
            holder.popen.send_signal(signal.SIGKILL)
            killed = time.monotonic()
            holder.popen.wait()
            while not holder.lines.empty():  # the counts it printed before it died
                with_line = holder.lines.get()
                if with_line[1].startswith("DURABLE "):
                    _, device, count = with_line[1].split()
                    holder.durable[device] = int(count)
            claimed = standby.wait_for("holding the lease")
            first = standby.wait_for("DURABLE")
            continued = dict(standby.durable)
            lost = sum(
                1
                for device, count in holder.durable.items()
                if device in continued and continued[device] <= count
            )
            yield claimed - killed, first - killed, lost
            holder = standby


def main(argv: list[str] | None = None) -> int:
    if argv is None and sys.argv[1:2] == ["--bridge"]:
        url, devices, *flags = sys.argv[2:]
        bridge(url, int(devices), flags)
        return 0
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--kills", type=int, default=20)
    parser.add_argument("--lease", type=float, default=1.0, help="lease seconds (short)")
    parser.add_argument("--devices", type=int, default=10)
    parser.add_argument("--postgres", default="postgresql://postgres@127.0.0.1:5432/test")
    parser.add_argument("--redis", default="redis://127.0.0.1:6379/0")
    args = parser.parse_args(argv)
    lease = args.lease
    print(
        f"{args.kills} SIGKILLs per backend, {args.devices} devices, lease {lease:g} s "
        f"(renewed every {lease / 3:.2f} s; documented worst case before loading: "
        f"L + L/3 = {lease * 4 / 3:.2f} s); {os.cpu_count()} CPUs",
        flush=True,
    )
    rows = []
    with (
        postgres_database(args.postgres, _unavailable) as pg_url,
        redis_prefix(args.redis, _unavailable) as redis_url,
    ):
        for name, url in (("PostgreSQL", pg_url), ("Redis", redis_url)):
            results = list(takeovers(url, args))
            claims = [claim for claim, _, _ in results]
            firsts = [first for _, first, _ in results]
            rows.append(
                [
                    name,
                    f"{percentile(claims, 50):.2f}",
                    f"{max(claims):.2f}",
                    f"{percentile(firsts, 50):.2f}",
                    f"{max(firsts):.2f}",
                    str(sum(lost for _, _, lost in results)),
                ]
            )
    print()
    header = ["backend", "claim p50 s", "claim max s", "first durable p50 s", "max s"]
    print(markdown_table([*header, "counts lost"], rows))
    return 0


if __name__ == "__main__":
    sys.exit(main())
