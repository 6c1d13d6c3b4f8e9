"""State versions outside the running app: ``triolette store show`` and ``store copy``, a
backend that cannot record versions, and the exit status of a refused start."""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

import pytest

from tests.stores.remote import open_remote
from triolette import (
    App,
    DeviceStore,
    JsonFileStore,
    MemoryStore,
    SqliteStore,
    StoreOpenError,
)
from triolette.runtime.cli import main
from triolette.runtime.process import run_process
from triolette.testing import AppHarness


def _seed(store: Any) -> None:
    store.declare_versions({"meter": 3})
    store.save_many({"meter": {"reads": 1}, "lamp": {"on": True}})
    store.save("meter", {"reads": 2})
    store.close()


@pytest.mark.parametrize("name", ["state.json", "state.db"])
def test_store_show_prints_each_version_and_revision_of_a_file(tmp_path, capsys, name):
    path = tmp_path / name
    _seed(JsonFileStore(path) if name.endswith(".json") else SqliteStore(path))
    assert main(["store", "show", str(path)]) == 0
    shown = capsys.readouterr()
    assert json.loads(shown.out) == {"lamp": {"on": True}, "meter": {"reads": 2}}
    assert shown.err.splitlines() == [
        "# lamp: revision 1, version 0",
        "# meter: revision 2, version 3",
    ]


def test_store_show_of_a_cosalette_file_shows_version_0(tmp_path, capsys):
    path = tmp_path / "state.json"
    path.write_text('{"meter": {"watts": 1500}}')
    assert main(["store", "show", str(path)]) == 0
    assert capsys.readouterr().err.splitlines() == ["# meter: revision 0, version 0"]


@pytest.mark.parametrize("kind", ["postgres", "redis"])
def test_store_show_prints_each_version_of_a_server_store(request, capsys, kind):
    url = str(request.getfixturevalue(f"{kind}_url"))
    _seed(open_remote(kind, url))
    assert main(["store", "show", url]) == 0
    lines = capsys.readouterr().err.splitlines()
    assert lines[0].startswith("# lamp: revision 1, version 0, written 20")
    assert lines[1].startswith("# meter: revision 2, version 3, written 20")


def test_store_copy_keeps_the_versions(tmp_path, capsys):
    source, target = tmp_path / "state.db", tmp_path / "copy.json"
    _seed(SqliteStore(source))
    assert main(["store", "copy", str(source), str(target)]) == 0
    copied = JsonFileStore(target)
    assert {key: r.version for key, r in copied.load_records().items()} == {"lamp": 0, "meter": 3}
    copied.close()


class PlainStore:
    """A third-party backend with only ``load`` and ``save``: it cannot record versions."""

    def __init__(self) -> None:
        self.states: dict[str, dict[str, Any]] = {}

    def load(self, key: str) -> dict[str, Any] | None:
        return self.states.get(key)

    def save(self, key: str, data: dict[str, Any]) -> None:
        self.states[key] = data


async def test_a_backend_that_cannot_record_versions_is_refused_for_a_versioned_device():
    backend = PlainStore()
    harness = AppHarness.create(store=backend, name="bridge")

    @harness.app.telemetry("meter", interval=60, state_version=1, migrate={0: dict})
    async def meter(store: DeviceStore) -> None:
        store["reads"] = 1

    with pytest.RaisesGroup(StoreOpenError, allow_unwrapped=True, flatten_subgroups=True) as e:
        await harness.run()
    assert "cannot record state versions" in str(e.value)
    assert "'meter' declares state_version=1" in str(e.value)
    assert backend.states == {}


async def test_the_same_backend_serves_devices_at_version_0():
    backend = PlainStore()
    harness = AppHarness.create(store=backend, name="bridge")

    @harness.app.telemetry("meter", interval=60)
    async def meter(store: DeviceStore) -> None:
        store["reads"] = 1

    await harness.run()
    assert backend.states == {"meter": {"reads": 1}}


def test_a_refused_start_exits_with_status_3_and_leaves_the_state(caplog):
    store = MemoryStore()
    store.declare_versions({"meter": 2})
    store.save("meter", {"layout": "newer"})
    app = App("bridge", store=store)

    @app.telemetry("meter", interval=60, state_version=1, migrate={0: dict})
    async def meter(store: DeviceStore) -> None:
        raise AssertionError("the handler must not run")

    with pytest.raises(SystemExit) as stopped:
        run_process(app)
    assert stopped.value.code == 3
    assert "meter: the stored state has version 2" in caplog.text
    record = store.load_records()["meter"]
    assert (json.loads(record.text), record.version) == ({"layout": "newer"}, 2)


def test_the_guide_example_runs_and_prints_the_migrated_state(capsys):
    guide = (Path(__file__).parents[2] / "docs" / "persistence.md").read_text()
    section = guide.split("## State versions", 1)[1].split("\n## ", 1)[0]
    [example] = re.findall(r"```python\n(.*?)```", section, re.DOTALL)
    exec(compile(example, "persistence.md", "exec"), {"__name__": "guide"})
    assert capsys.readouterr().out == '2 {"power":{"value":1.5,"unit":"kW"},"reads":1}\n'
