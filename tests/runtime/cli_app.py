"""A tiny app for the command-line tests: ``python -m triolette run tests.runtime.cli_app:app``.

Its one telemetry device counts in its store and publishes ``{"count": N}`` every 10 ms; after
``CLI_APP_CYCLES`` cycles (default 3) it shuts the app down by itself. The store in the code
is a ``MemoryStore``: ``--store`` decides whether the count survives a run.

``CLI_APP_MODE`` picks a failure instead: ``import`` fails the import, ``crash`` adds a device
that always crashes (the restart limit stops the app: exit 2), ``unsaved`` uses a store whose
writes always fail (the final flush gives up: exit 1).
"""

from __future__ import annotations

import errno
import os

from triolette import App, Backoff, DeviceStore, MemoryStore, RestartLimit, SaveOnChange

MODE = os.environ.get("CLI_APP_MODE", "count")
CYCLES = int(os.environ.get("CLI_APP_CYCLES", "3"))

if MODE == "import":
    raise RuntimeError("cli_app was told to fail")


class BrokenStore(MemoryStore):
    """A store on a dead disk: every write fails."""

    def _write(self, changed: dict[str, str], current: dict[str, str]) -> None:
        raise OSError(errno.EIO, "the disk is gone")


app = App(
    "cliapp",
    store=BrokenStore() if MODE == "unsaved" else MemoryStore(),
    log_statistics_every=None,
    shutdown_timeout=0.2,
    restart_backoff=Backoff(initial=0.001, maximum=0.001),
    restart_limit=RestartLimit(restarts=2, seconds=60),
)
not_an_app = "a string"
cycles = 0


@app.telemetry("counter", interval=0.01, persist=SaveOnChange())
async def counter(store: DeviceStore) -> dict[str, object] | None:
    global cycles
    cycles += 1
    if cycles > CYCLES:  # every earlier cycle's publish is confirmed by now
        app.shutdown()
        return None
    store["count"] = store.get("count", 0) + 1
    return {"count": store["count"]}


if MODE == "crash":

    @app.device("crasher")
    async def crasher() -> None:
        raise RuntimeError("crashing on purpose")


if __name__ == "__main__":  # python -m tests.runtime.cli_app [the flags of triolette run]
    app.run()
