"""Store locations as URLs: ``--store``, ``store show`` and ``store copy`` on every backend."""

from __future__ import annotations

import itertools
import json
from pathlib import Path
from typing import Any

import pytest

from triolette import App, JsonFileStore, SettingsError, SqliteStore
from triolette.runtime.cli import main
from triolette.runtime.settings import RunSettings
from triolette.runtime.wiring import apply_settings, describe_settings, store_for_location

STATES: dict[str, Any] = {
    "counter": {"count": 3, "note": "Grüße 🌡"},
    "lamp": {"on": True, "levels": [0.5, 1.0, None], "deep": {"a": {"b": []}}},
}
KINDS = ("json", "sqlite", "postgres", "redis")


def _with_password(url: str) -> str:
    """``url`` with the password hunter2 (PostgreSQL's trust auth on loopback ignores it)."""
    scheme, rest = url.split("://", 1)
    return f"{scheme}://postgres:hunter2@{rest.split('@')[-1]}"


class Places:
    """Fresh, empty store locations of each backend kind, all inside this test's own space."""

    def __init__(self, tmp_path: Path, request: pytest.FixtureRequest) -> None:
        self.tmp_path = tmp_path
        self.request = request
        self.count = 0

    def new(self, kind: str) -> str:
        self.count += 1
        n = self.count
        if kind == "json":
            return f"json:{self.tmp_path}/s{n}.json"
        if kind == "sqlite":
            return f"sqlite:{self.tmp_path}/s{n}.db"
        if kind == "postgres":
            url = str(self.request.getfixturevalue("postgres_url"))
            return f"{_with_password(url)}?table=copy_{n}"
        url = str(self.request.getfixturevalue("redis_url"))
        return f"{url}copy{n}%3A"  # a prefix below the test's own prefix


@pytest.fixture
def places(tmp_path: Path, request: pytest.FixtureRequest) -> Places:
    return Places(tmp_path, request)


def _load(location: str) -> dict[str, Any]:
    store = store_for_location(location)
    try:
        return store.load_all()
    finally:
        store.close()


def test_store_copy_round_trips_between_every_pair_of_backends(places, capsys):
    origin = places.new("json")
    store = store_for_location(origin)
    store.save_many(STATES)
    store.close()
    for first, second in itertools.product(KINDS, KINDS):
        there, back = places.new(first), places.new(second)
        assert main(["store", "copy", origin, there]) == 0, capsys.readouterr().err
        assert main(["store", "copy", there, back]) == 0, capsys.readouterr().err
        assert _load(back) == STATES, (first, second)
        out = capsys.readouterr().out
        assert "hunter2" not in out
        assert "copied the state of 2 devices" in out


def test_store_copy_refuses_a_server_store_that_holds_state(places, capsys):
    origin, target = places.new("sqlite"), places.new("postgres")
    for location in (origin, target):
        store = store_for_location(location)
        store.save_many(STATES)
        store.close()
    assert main(["store", "copy", origin, target]) == 3
    err = capsys.readouterr().err
    assert "already holds the state of 2 devices" in err
    assert "hunter2" not in err
    assert "postgresql://postgres@127.0.0.1:5432/" in err


@pytest.mark.parametrize("kind", ["postgres", "redis"])
def test_store_show_prints_states_and_each_revision_and_write_time(places, capsys, kind):
    location = places.new(kind)
    store = store_for_location(location)
    store.save_many(STATES)
    store.save("counter", {"count": 4})
    store.close()
    assert main(["store", "show", location]) == 0
    shown = capsys.readouterr()
    assert json.loads(shown.out) == {**STATES, "counter": {"count": 4}}
    lines = shown.err.splitlines()
    assert lines[0].startswith("# counter: revision 2, version 0, written 20")
    assert lines[1].startswith("# lamp: revision 1, version 0, written 20")
    assert "hunter2" not in shown.out + shown.err


def test_store_show_of_a_server_that_is_not_there_exits_3_without_the_password(capsys):
    assert main(["store", "show", "postgresql://bridge:hunter2@127.0.0.1:1/state"]) == 3
    err = capsys.readouterr().err
    assert "cannot open the store postgresql://bridge@127.0.0.1:1/state" in err
    assert "hunter2" not in err


@pytest.mark.parametrize(
    ("location", "kind"),
    [
        ("json:state.txt", JsonFileStore),
        ("sqlite:./state", SqliteStore),
        ("state.json", JsonFileStore),
        ("state.sqlite3", SqliteStore),
        ("postgresql://bridge:hunter2@db.example:5433/state", "PostgresStore"),
        ("postgres://db.example/state?table=bridge_1", "PostgresStore"),
        ("redis://:hunter2@cache.example:6380/2", "RedisStore"),
        ("rediss://cache.example/0?prefix=hall%3A", "RedisStore"),
    ],
)
def test_store_setting_takes_paths_and_urls(location, kind):
    settings = RunSettings.from_sources({"store_path": location}, {})
    app = App("bridge")
    apply_settings(settings, app)
    if isinstance(kind, str):
        assert type(app.store).__name__ == kind
    else:
        assert type(app.store) is kind
    line = describe_settings(settings, app)
    assert "hunter2" not in line
    assert "hunter2" not in repr(settings)
    assert "hunter2" not in describe_settings(settings)


def test_server_urls_are_described_without_the_password():
    settings = RunSettings.from_sources(
        {"store_path": "postgresql://bridge:hunter2@db.example:5433/state?table=hall"}, {}
    )
    line = describe_settings(settings, None)
    assert "store=postgresql://bridge@db.example:5433/state?table=hall " in line


def test_an_unknown_scheme_is_a_settings_error_without_the_password():
    with pytest.raises(SettingsError) as caught:
        RunSettings.from_sources({"store_path": "mysql://root:hunter2@db/state"}, {})
    assert "hunter2" not in str(caught.value)
    assert "mysql://root@db/state" in str(caught.value)


def test_a_plain_path_stays_a_path():
    assert RunSettings.from_sources({"store_path": "dir/state.db"}, {}).store_path == Path(
        "dir/state.db"
    )


@pytest.mark.parametrize(
    "location", ["postgresql://bridge:hunter2@127.0.0.1:1/state", "redis://:hunter2@127.0.0.1:1/0"]
)
def test_run_with_a_server_store_that_is_not_there_exits_3_without_the_password(location):
    from tests.runtime.test_cli import APP, triolette

    result = triolette("run", APP, "--dry-run", "--store", location)
    assert result.returncode == 3, result.stderr
    assert "cannot open the store " in result.stderr
    assert "hunter2" not in result.stdout + result.stderr


def test_run_keeps_the_count_in_a_server_store_across_runs(request):
    from tests.runtime.test_cli import APP, triolette

    url = str(request.getfixturevalue("postgres_url"))
    for _ in range(2):
        assert triolette("run", APP, "--dry-run", "--store", url).returncode == 0
    assert _load(url)["counter"]["count"] == 6
