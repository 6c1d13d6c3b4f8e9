"""The writer that tests/stores/test_crash.py kills: it saves forever and acks every save.

Run as ``python crash_writer.py json|sqlite|postgres|redis PATH`` (a server store's URL as
PATH). It opens the store, loads every device
(the test seeds them all; a missing one is lost data and ends the writer with an error), prints
``start <r>`` where ``r`` is the highest count found, then loops: revision ``r + 1`` sets
``count`` of the devices :func:`batch_for` names (``save`` for one, ``save_many`` for several)
and, only after that call returned, prints ``ack <r>`` and flushes. From time to time it closes
the store between saves (the next save reopens it), so a kill can also land in a close.

The test imports the helpers below to know what each revision wrote, so it can check every
device is exactly its last acked value or the value of the one interrupted batch.
"""

from __future__ import annotations

import random
import sys
from typing import Any

from triolette import JsonFileStore, SqliteStore

DEVICES = tuple(f"dev-{number:02d}" for number in range(20))
BACKENDS = ("json", "sqlite", "postgres", "redis")
REOPEN_EVERY = 7
"""Close the store after every revision divisible by this (the next save reopens it)."""


def initial_state(device: str) -> dict[str, Any]:
    """The seeded state; only ``count`` ever changes, so ``pad`` must survive every kill."""
    return {"count": 0, "pad": f"{device} padding: " + "ab cd ef gh " * 14}


def batch_for(revision: int) -> list[str]:
    """The devices revision ``revision`` sets to ``count=revision``: one, or two to six."""
    rng = random.Random(revision)
    if revision % 4 == 0:
        return [rng.choice(DEVICES)]
    return sorted(rng.sample(DEVICES, rng.randint(2, 6)))


def open_store(backend: str, path: str) -> Any:
    if backend == "json":
        return JsonFileStore(path)
    if backend == "sqlite":
        return SqliteStore(path)
    if backend == "postgres":
        from triolette.stores.postgres import PostgresStore

        return PostgresStore(path)
    if backend == "redis":
        from triolette.stores.redis import RedisStore

        return RedisStore(path)
    raise ValueError(f"backend must be one of {BACKENDS}, not {backend!r}")


def main(argv: list[str]) -> int:
    if len(argv) != 2 or argv[0] not in BACKENDS:
        print(f"usage: crash_writer.py {{{'|'.join(BACKENDS)}}} PATH", file=sys.stderr)
        return 2
    store = open_store(*argv)
    states, revision = {}, 0
    for device in DEVICES:
        state = store.load(device)
        count = None if state is None else state.get("count")
        if state is None or not isinstance(count, int):
            print(f"device {device} is missing or damaged: {state}", file=sys.stderr)
            return 1
        states[device] = state
        revision = max(revision, count)
    out = sys.stdout
    out.write(f"start {revision}\n")
    out.flush()
    while True:
        revision += 1
        batch = batch_for(revision)
        for device in batch:
            states[device] = {**states[device], "count": revision}
        if len(batch) == 1:
            store.save(batch[0], states[batch[0]])
        else:
            store.save_many({device: states[device] for device in batch})
        out.write(f"ack {revision}\n")
        out.flush()
        if revision % REOPEN_EVERY == 0:
            store.close()


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
