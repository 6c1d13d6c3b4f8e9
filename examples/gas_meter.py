"""A gas-meter bridge: it counts the meter's impulses and keeps the total across restarts.

    python examples/gas_meter.py [--state-dir ./data] [--interval 2] [--seconds S]
                                 [the flags of triolette run: --host, --port, --dry-run, ...]

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
import sys
import threading
from pathlib import Path

from triolette import (
    App,
    DeviceStore,
    JsonFileStore,
    SaveAtMostEvery,
    SaveOnChange,
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


def main() -> None:
    parser = argparse.ArgumentParser(
        description="Gas-meter impulses to MQTT, total kept on disk. Every other flag is one "
        "of `triolette run`'s (--host, --port, --dry-run, --log-level, ...).",
    )
    parser.add_argument("--state-dir", type=Path, default=Path("data"), help="default ./data")
    parser.add_argument("--interval", type=float, default=2.0, help="seconds between readings")
    parser.add_argument("--seconds", type=float, help="stop by itself after this many seconds")
    args, settings_flags = parser.parse_known_args()
    path = args.state_dir / "state.json"
    print(f"state lives in {path.absolute()}", file=sys.stderr, flush=True)
    app = App("gas2mqtt", store=JsonFileStore(path))
    add_devices(app, interval=args.interval)
    logging.getLogger("triolette.published").setLevel(logging.DEBUG)  # show every publish
    if args.seconds is not None:  # then stop as Ctrl-C would
        timer = threading.Timer(args.seconds, os.kill, (os.getpid(), signal.SIGINT))
        timer.daemon = True
        timer.start()
    # The settings of `triolette run`, from these flags and TRIOLETTE_* variables: a broker
    # host, or else an embedded broker, or with --dry-run none. Until Ctrl-C or SIGTERM; it
    # exits non-zero if state could not be saved.
    app.run(settings_flags)
    print(f"stopped; every change is saved in {path.absolute()}", file=sys.stderr, flush=True)


if __name__ == "__main__":
    main()
