"""SIGKILL a counting bridge again and again; compare what an observer saw with the disk.

    python tests/runtime/durable_kills.py [--kills 50] [--backend json|sqlite]
        [--publish now|durable] [--devices 5]

Each round starts :mod:`durable_bridge_process` on a real mosquitto, waits until every device
published a state, kills it with SIGKILL after a random delay, waits for its will (so the
observer has every message the broker took from it) and reads the store file. A device's
*lead* is the last count the observer saw minus the count on disk: positive means a dashboard
showed a count the kill took back. Prints the histogram of leads over all devices and kills.
"""

from __future__ import annotations

import argparse
import collections
import json
import os
import random
import sqlite3
import subprocess
import sys
import uuid
from functools import partial
from pathlib import Path

from triolette.core.messages import Message
from triolette.testing.mosquitto import Mosquitto
from triolette.testing.observer import Observer

BRIDGE = Path(__file__).with_name("durable_bridge_process.py")


def stored_counts(backend: str, path: Path) -> dict[str, int]:
    """The count of each device in the store file (read directly: the writer is dead)."""
    if backend == "json":
        if not path.exists():
            return {}
        document = json.loads(path.read_text())
        return {key: state.get("count", 0) for key, state in document.items()}
    connection = sqlite3.connect(path)
    try:
        rows = connection.execute("SELECT key, data FROM store").fetchall()
    finally:
        connection.close()
    return {key: json.loads(data).get("count", 0) for key, data in rows}


def last_counts(messages: list[Message], prefix: str) -> dict[str, int]:
    """The last count the observer saw per device, among ``messages``."""
    seen: dict[str, int] = {}
    for message in messages:
        parts = message.topic.split("/")
        if len(parts) == 3 and parts[0] == prefix and parts[2] == "state":
            seen[parts[1]] = json.loads(message.text)["count"]
    return seen


def all_published(messages: list[Message], *, prefix: str, names: list[str], mark: int) -> bool:
    return set(last_counts(messages[mark:], prefix)) >= set(names)


def at_least(count: int, messages: list[Message]) -> bool:
    return len(messages) >= count


def said_offline(messages: list[Message], *, prefix: str, mark: int) -> bool:
    """The bridge's will (or goodbye) came: the broker has handled all it took from it."""
    return any(m.topic == f"{prefix}/status" and m.text == "offline" for m in messages[mark:])


def kill_rounds(
    broker: Mosquitto,
    observer: Observer,
    prefix: str,
    folder: Path,
    *,
    kills: int,
    backend: str,
    publish: str,
    devices: int,
    seed: int = 12,
) -> list[int]:
    """Run ``kills`` rounds; return every device's lead after every kill."""
    rng = random.Random(seed)
    path = folder / ("state.json" if backend == "json" else "state.db")
    names = [f"d{index}" for index in range(devices)]
    leads: list[int] = []
    for round_ in range(kills):
        client_id = f"durable-{uuid.uuid4().hex[:8]}"
        mark = len(observer.messages)
        command = [sys.executable, str(BRIDGE), broker.host, str(broker.port), prefix]
        command += [client_id, backend, str(path), publish, str(devices)]
        with (folder / f"bridge-{round_}.log").open("wb") as log:
            process = subprocess.Popen(
                command,
                stdin=subprocess.DEVNULL,
                stdout=subprocess.DEVNULL,
                stderr=log,
                env={**os.environ, "PYTHONUNBUFFERED": "1"},
            )
        try:
            observer.wait_for(partial(all_published, prefix=prefix, names=names, mark=mark), 20)
            # let it run a random while: a number of further messages, not a sleep
            wanted = len(observer.messages) + rng.randrange(devices, devices * 40)
            observer.wait_for(partial(at_least, wanted), timeout=20)
        finally:
            process.kill()
            process.wait()
        observer.wait_for(partial(said_offline, prefix=prefix, mark=mark), timeout=10)
        seen = last_counts(observer.messages[mark:], prefix)
        disk = stored_counts(backend, path)
        leads.extend(seen[name] - disk.get(name, 0) for name in names)
    return leads


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--kills", type=int, default=50)
    parser.add_argument("--backend", choices=("json", "sqlite"), default="json")
    parser.add_argument("--publish", choices=("now", "durable"), default="now")
    parser.add_argument("--devices", type=int, default=5)
    parser.add_argument("--folder", type=Path, default=None)
    options = parser.parse_args()
    import tempfile

    with tempfile.TemporaryDirectory() as scratch, Mosquitto() as broker:
        folder = options.folder or Path(scratch)
        prefix = f"kills-{uuid.uuid4().hex[:6]}"
        with Observer(broker.host, broker.port, [f"{prefix}/#"]).start() as observer:
            leads = kill_rounds(
                broker,
                observer,
                prefix,
                folder,
                kills=options.kills,
                backend=options.backend,
                publish=options.publish,
                devices=options.devices,
            )
    histogram = collections.Counter(leads)
    print(
        f"{options.backend}, publish={options.publish}: {options.kills} kills x "
        f"{options.devices} devices; lead of the last published count over the disk: "
        + ", ".join(f"{lead:+d}: {histogram[lead]}" for lead in sorted(histogram))
        + f"; max {max(leads):+d}"
    )


if __name__ == "__main__":
    main()
