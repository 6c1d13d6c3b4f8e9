"""The bridge that tests/stores/test_versions_crash.py kills in the middle of a migration.

Run as ``python migration_crash.py LOCATION MODE`` (a ``.json`` or ``.db`` path, or a server
store's URL). It serves an app
whose device ``meter`` is at ``state_version=3`` (the migrations of test_versions.py):

* ``MODE=during``: the migration from version 1 prints ``migrating 1`` and hangs;
* ``MODE=after``: the migrations finish, the handler prints ``seen <state as JSON>`` and hangs
  before anything is saved.

Either way the test kills it with SIGKILL and checks the stored state and version are the old
ones.
"""

from __future__ import annotations

import json
import sys
import time
from typing import Any

import trio

from triolette import App, DeviceStore
from triolette.runtime.wiring import store_for_location

MODES = ("during", "after")


def _say(line: str) -> None:
    sys.stdout.write(f"{line}\n")
    sys.stdout.flush()


def build(location: str, mode: str) -> App:
    def v0_to_v1(state: dict[str, Any]) -> dict[str, Any]:
        return {"kilowatts": state["watts"] / 1000}

    def v1_to_v2(state: dict[str, Any]) -> dict[str, Any]:
        if mode == "during":
            _say("migrating 1")
            time.sleep(3600)  # killed here, inside the persistence actor's load
        return {"power": {"kilowatts": state["kilowatts"]}}

    def v2_to_v3(state: dict[str, Any]) -> dict[str, Any]:
        return {**state, "reads": 0}

    # A short lease (server stores): the next start, a standby, takes over soon after the kill.
    app = App("bridge", store=store_for_location(location), lease_seconds=1.0)
    steps = {0: v0_to_v1, 1: v1_to_v2, 2: v2_to_v3}

    @app.telemetry("meter", interval=60, state_version=3, migrate=steps)
    async def meter(store: DeviceStore) -> None:
        _say(f"seen {json.dumps(store.to_dict(), sort_keys=True)}")
        await trio.sleep_forever()  # killed here, before the first save

    return app


def main(argv: list[str]) -> int:
    if len(argv) != 2 or argv[1] not in MODES:
        print("usage: migration_crash.py LOCATION during|after", file=sys.stderr)
        return 2
    trio.run(build(*argv).serve)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
