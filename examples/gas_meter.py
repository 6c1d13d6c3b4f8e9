"""A gas-meter bridge: it counts the meter's impulses and keeps the total across restarts.

    python examples/gas_meter.py [--state-dir ./data] [--interval 2] [--seconds S]
                                 [--host HOST] [--port PORT] [--dry-run]

Every interval it reads the impulses since the last reading (simulated here), adds them to the
total in ``STATE_DIR/state.json`` and publishes it. Stop it with Ctrl-C (or let ``--seconds``
do it): the final state is written, and the next run counts on from it.

With no ``--host`` (nor ``TRIOLETTE_MQTT_HOST``) it starts an embedded MQTT broker on
127.0.0.1 (port 1883, or a free one when that is taken; it needs the ``broker`` extra) and
says how to watch it. ``--dry-run`` uses no broker at all. The calibration command,
``{"m3_per_impulse": 0.01}`` on ``gas2mqtt/gas-meter-calibration/set``, changes the rate.
"""

from __future__ import annotations

import argparse
import json
import logging
import math
import os
import random
import signal
from pathlib import Path

import trio

from triolette import (
    App,
    DeviceStore,
    JsonFileStore,
    SaveAtMostEvery,
    SaveOnChange,
    Settings,
)


def read_impulses() -> int:
    """Impulses since the last reading. A real bridge would read a GPIO pulse counter here."""
    return random.choice((0, 1, 1, 2, 3))


def add_devices(app: App, *, interval: float) -> None:
    """Declare the meter and its calibration command on ``app`` (tests use an AppHarness's)."""
    # One owner per state: the meter keeps the calibration in its own store, and the command
    # device only hands new values over to it.
    new_calibrations: list[float] = []

    # Kind to SD cards: a changed total is written at most once a minute; a stop always writes.
    @app.telemetry("gas-meter", interval=interval, persist=SaveOnChange() & SaveAtMostEvery(60))
    async def gas_meter(store: DeviceStore) -> dict[str, object]:
        calibration: dict[str, float] = store.setdefault("calibration", {"m3_per_impulse": 0.01})
        if new_calibrations:
            calibration["m3_per_impulse"] = new_calibrations[-1]
            new_calibrations.clear()
            store.save()  # rare and precious: hand it to the disk now, whatever the policy says
        new = read_impulses()
        store["impulses"] = store.get("impulses", 0) + new
        store["m3"] = round(store.get("m3", 0.0) + new * calibration["m3_per_impulse"], 6)
        return {"impulses": store["impulses"], "new_impulses": new, "m3": store["m3"]} | calibration

    @app.command("gas-meter-calibration")
    async def calibrate(payload: str) -> dict[str, object]:
        # A bad payload raises: the app reports it on the error topic and waits for the next.
        m3_per_impulse = float(json.loads(payload)["m3_per_impulse"])
        if not 0 < m3_per_impulse < math.inf:
            raise ValueError(f"m3_per_impulse must be a positive number, got {m3_per_impulse}")
        new_calibrations.append(m3_per_impulse)
        return {"m3_per_impulse": m3_per_impulse}


async def stop_after(app: App, seconds: float) -> None:
    """Shut ``app`` down gracefully after ``seconds``, or at the first SIGINT or SIGTERM."""
    with trio.open_signal_receiver(signal.SIGINT, signal.SIGTERM) as signals:
        with trio.move_on_after(seconds):
            async for _ in signals:
                break
    app.shutdown()  # the devices stop, then every store is flushed


async def serve_for(app: App, seconds: float) -> None:
    async with trio.open_nursery() as nursery:
        nursery.start_soon(stop_after, app, seconds)
        await app.serve()  # returns once the final flush is done


def main() -> None:
    parser = argparse.ArgumentParser(description="Gas-meter impulses to MQTT, total kept on disk")
    parser.add_argument("--state-dir", type=Path, default=Path("data"), help="default ./data")
    parser.add_argument("--interval", type=float, default=2.0, help="seconds between readings")
    parser.add_argument("--seconds", type=float, help="stop by itself after this many seconds")
    parser.add_argument("--host", help="an MQTT broker to use instead of the embedded one")
    parser.add_argument("--port", help="its port (or the embedded broker's)")
    parser.add_argument("--dry-run", action="store_true", help="no broker: log each publish")
    args = parser.parse_args()
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s: %(message)s")
    log = logging.getLogger("gas_meter")
    path = args.state_dir / "state.json"
    log.info("state lives in %s", path.absolute())
    app = App("gas2mqtt", store=JsonFileStore(path))
    # The same settings as `triolette run` (flags here, TRIOLETTE_* variables otherwise):
    # a broker host, or else an embedded broker, or with --dry-run none.
    flags = {"mqtt_host": args.host, "mqtt_port": args.port, "dry_run": args.dry_run or None}
    Settings.from_sources(flags, os.environ).apply(app)
    logging.getLogger("triolette.published").setLevel(logging.DEBUG)  # show every publish
    add_devices(app, interval=args.interval)
    if args.seconds is None:
        app.run()  # until Ctrl-C or SIGTERM; exits non-zero if state could not be saved
    else:
        trio.run(serve_for, app, args.seconds)
    log.info("stopped; every change is saved in %s", path.absolute())


if __name__ == "__main__":
    main()
