"""Helpers shared by test modules: a recording backend and a harness around it, and the
guides' code blocks run as a user runs them."""

from __future__ import annotations

import re
import subprocess
import sys
import threading
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import attrs
import trio

from triolette import App, MemoryStore
from triolette.testing import AppHarness

# -- a recording backend ------------------------------------------------------------------------


@attrs.frozen
class Write:
    """One write call of the persistence actor (one batch)."""

    states: dict[str, dict[str, Any]]
    time: float
    shutdown: bool


class RecordingStore:
    """A ``MemoryStore`` that records every write call, and can hold writes at a gate.

    Writes happen in the persistence actor's worker thread: the time is read from the trio
    clock object directly, and the shutdown flag from the app. With ``gate`` set, each write
    waits (in the worker thread) until the gate opens; ``write_started`` is set at the first.
    ``log`` is a shared, ordered journal that tests may also append to from their handlers.
    """

    def __init__(self, initial: Mapping[str, dict[str, object]] | None = None) -> None:
        self.memory = MemoryStore(initial)
        self.writes: list[Write] = []
        self.log: list[tuple[str, Any]] = []
        self.app: App | None = None
        self.gate: threading.Event | None = None
        self.write_started = threading.Event()
        self._clock = trio.lowlevel.current_clock()

    def load(self, key: str) -> dict[str, object] | None:
        return self.memory.load(key)

    def load_all(self) -> dict[str, dict[str, object]]:
        return self.memory.load_all()

    def save(self, key: str, data: dict[str, object]) -> None:
        self.save_many({key: data})

    def save_many(self, states: Mapping[str, dict[str, object]]) -> None:
        self.write_started.set()
        if self.gate is not None:
            assert self.gate.wait(10), "the test never opened the gate"
        write = Write(
            {key: dict(data) for key, data in states.items()},
            self._clock.current_time(),
            self._stopping(),
        )
        self.memory.save_many(states)
        self.writes.append(write)
        for key, data in states.items():
            self.log.append(("write", (key, dict(data))))

    def _stopping(self) -> bool:
        running = self.app.running if self.app is not None else None
        return running is not None and running.shutdown_requested

    def values(self, key: str, field: str) -> list[Any]:
        """``field`` of ``key`` in every write of ``key``, oldest first."""
        return [w.states[key].get(field) for w in self.writes if key in w.states]

    def in_loop(self, key: str) -> list[Write]:
        return [w for w in self.writes if key in w.states and not w.shutdown]

    def at_shutdown(self, key: str) -> list[Write]:
        return [w for w in self.writes if key in w.states and w.shutdown]


def recording_harness(
    initial: Mapping[str, dict[str, object]] | None = None, **options: Any
) -> tuple[AppHarness, RecordingStore]:
    backend = RecordingStore(initial)
    # No status heartbeat: these tests refuse "the next publish" and mean the state's.
    options.setdefault("heartbeat_every", None)
    harness = AppHarness.create(store=backend, **options)
    backend.app = harness.app
    return harness, backend


ERROR_ID = re.compile(r" \[error id ([0-9a-f]{12})\]$")


def without_error_id(line: str) -> str:
    """A log line without the correlation id an error report's line ends with."""
    return ERROR_ID.sub("", line)


# -- the guides' code, run as a user would ------------------------------------------------------

DOCS = Path(__file__).parents[1] / "docs"
_CODE_BLOCK = re.compile(r"```(\w+)\n(.*?)```", re.DOTALL)


def doc_blocks(page: str, language: str = "python", *, section: str | None = None) -> list[str]:
    """The ``language`` code blocks of ``docs/<page>``, or of its ``## <section>`` only."""
    text = (DOCS / page).read_text()
    if section is not None:
        start = text.index(f"\n## {section}\n")
        end = text.find("\n## ", start + 1)
        text = text[start : end if end != -1 else len(text)]
    return [body for lang, body in _CODE_BLOCK.findall(text) if lang == language]


def pytest_in(folder: Path) -> subprocess.CompletedProcess[str]:
    """pytest run in ``folder`` (outside this repository's configuration), as a user runs it."""
    return subprocess.run(
        [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", "-W", "error"],
        cwd=folder,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


def run_blocks_as_tests(folder: Path, blocks: list[str]) -> None:
    """Write ``blocks`` as one test module in ``folder`` (trio mode) and assert that pytest
    passes every test in it: one per block."""
    (folder / "test_guide.py").write_text("\n\n".join(blocks))
    (folder / "pytest.ini").write_text("[pytest]\ntrio_mode = true\n")
    result = pytest_in(folder)
    assert result.returncode == 0, result.stdout + result.stderr
    assert f"{len(blocks)} passed" in result.stdout
