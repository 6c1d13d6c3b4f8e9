"""The ``triolette`` command, run as a real process: exit statuses, errors, logs, store tools."""

from __future__ import annotations

import contextlib
import io
import json
import logging
import os
import re
import sqlite3
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from triolette import JsonFileStore, SettingsError, SqliteStore
from triolette.runtime import cli
from triolette.runtime.cli import build_parser, load_app, main
from triolette.runtime.logs import configure_logging
from triolette.runtime.settings import OPTIONS

ROOT = Path(__file__).resolve().parents[2]
APP = "tests.runtime.cli_app:app"
SECRET = "s3cret-Pa55word"


def triolette(*args: str, **env: str) -> subprocess.CompletedProcess[str]:
    """Run ``python -m triolette ARGS`` from the repository root, with only our variables."""
    clean = {k: v for k, v in os.environ.items() if not k.startswith(("TRIOLETTE_", "CLI_APP_"))}
    return subprocess.run(
        [sys.executable, "-m", "triolette", *args],
        cwd=ROOT,
        env={**clean, **env},
        capture_output=True,
        text=True,
        timeout=60,
    )


def published_states(stderr: str) -> list[str]:
    return re.findall(r"publish cliapp/counter/state (\{.*?\}) \(retained\)", stderr)


# -- bad settings and app references: exit 3, nothing started -----------------------------------


def test_a_bad_port_flag_exits_3_with_the_message_and_nothing_else():
    result = triolette("run", APP, "--port", "70000")
    assert result.returncode == 3
    assert result.stderr == "error: --port: must be between 1 and 65535, got 70000\n"
    assert result.stdout == ""


def test_a_bad_port_variable_exits_3_naming_the_variable():
    result = triolette("run", APP, TRIOLETTE_MQTT_PORT="0")
    assert result.returncode == 3
    assert result.stderr == "error: TRIOLETTE_MQTT_PORT: must be between 1 and 65535, got 0\n"


def test_a_missing_tls_file_exits_3_before_connecting(tmp_path):
    missing = tmp_path / "ca.pem"
    result = triolette("run", APP, "--host", "broker.invalid", "--tls-ca-file", str(missing))
    assert result.returncode == 3
    assert result.stderr == f"error: --tls-ca-file: no such file: {missing}\n"


@pytest.mark.parametrize(
    ("reference", "message"),
    [
        ("no_such_module:app", "error: no_such_module:app: no module named 'no_such_module'"),
        ("tests.runtime.no_such:app", "no module named 'tests.runtime.no_such'"),
        ("tests.runtime.cli_app:nope", "module 'tests.runtime.cli_app' has no attribute 'nope'"),
        ("tests.runtime.cli_app:not_an_app", "'not_an_app' is not a triolette App (found str)"),
        ("tests.runtime.cli_app:cycles", "'cycles' is not a triolette App (found int)"),
        ("tests/runtime/absent.py:app", "no such file: tests/runtime/absent.py"),
    ],
)
def test_an_unknown_module_or_attribute_exits_3(reference, message):
    result = triolette("run", reference, "--dry-run")
    assert result.returncode == 3
    assert message in result.stderr
    assert "publish" not in result.stderr


def test_an_app_module_that_fails_to_import_exits_3_with_its_traceback():
    result = triolette("run", APP, "--dry-run", CLI_APP_MODE="import")
    assert result.returncode == 3
    assert "Traceback" in result.stderr
    assert "RuntimeError: cli_app was told to fail" in result.stderr
    assert result.stderr.splitlines()[-1].startswith(f"error: {APP}: importing ")


@pytest.mark.parametrize(
    "args", [["run", APP, "--no-such-flag"], ["run"], [], ["store"], ["store", "show"]]
)
def test_usage_errors_exit_3_too(args):
    result = triolette(*args)
    assert result.returncode == 3
    assert "usage: triolette" in result.stderr
    assert "error: " in result.stderr


@pytest.mark.parametrize(
    ("args", "usage"),
    [
        (["run", APP, "--bogus"], "usage: triolette run "),
        (["watch", "--bogus"], "usage: triolette watch "),
        (["store", "show", "x.json", "--bogus"], "usage: triolette store show "),
    ],
)
def test_an_unknown_flag_prints_the_usage_of_its_command(args, usage):
    result = triolette(*args)
    assert result.returncode == 3
    assert result.stderr.startswith(usage)
    assert result.stderr.endswith("error: unrecognized arguments: --bogus\n")


def test_version_prints_the_version_of_triolette():
    from triolette import __version__

    result = triolette("--version")
    assert result.returncode == 0
    assert result.stdout == f"triolette {__version__}\n"


def test_help_documents_every_flag_with_its_variable():
    result = triolette("run", "--help")
    assert result.returncode == 0
    text = " ".join(result.stdout.split())  # argparse wraps lines
    for option in OPTIONS:
        assert option.flag in text
        assert f"env {option.env};" in text, option.env


# -- running an app -------------------------------------------------------------------------------


def test_a_dry_run_exits_0_and_logs_each_publish():
    result = triolette("run", APP, "--dry-run")
    assert result.returncode == 0, result.stderr
    assert published_states(result.stderr) == ['{"count":1}', '{"count":2}', '{"count":3}']
    assert "cliapp: broker=none (dry run: publishes only logged)" in result.stderr


def test_an_app_given_as_a_file_path_runs_too():
    result = triolette("run", "tests/runtime/cli_app.py", "--dry-run")
    assert result.returncode == 0, result.stderr
    assert len(published_states(result.stderr)) == 3


def test_the_password_never_reaches_the_output_even_at_debug():
    # A dry run with --host connects (with the adapters' twins): here to a host that does
    # not resolve, which ends the run at start-up, status 3, with the settings logged.
    result = triolette(
        "run", APP, "--dry-run", "--host", "broker.invalid", "--log-level", "debug",
        TRIOLETTE_MQTT_PASSWORD=SECRET, TRIOLETTE_MQTT_USERNAME="bob",
    )  # fmt: skip
    assert result.returncode == 3, result.stderr
    assert "password=***" in result.stderr
    assert SECRET not in result.stderr + result.stdout
    assert "DEBUG" in result.stderr  # the level took effect


def test_json_logs_are_one_object_per_line():
    result = triolette("run", APP, "--dry-run", TRIOLETTE_LOG_FORMAT="json")
    assert result.returncode == 0, result.stderr
    entries = [json.loads(line) for line in result.stderr.splitlines()]
    assert entries
    for entry in entries:
        assert set(entry) >= {"time", "level", "logger", "message"}
        assert re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}\+00:00", entry["time"])
    messages = [e["message"] for e in entries if e["logger"] == "triolette.mqtt"]
    assert 'publish cliapp/counter/state {"count":3} (retained)' in messages


def test_the_log_level_setting_filters_the_output():
    result = triolette("run", APP, "--dry-run", "--log-level", "warning")
    assert result.returncode == 0, result.stderr
    assert result.stderr == ""


def test_an_unknown_triolette_variable_is_warned_about():
    result = triolette("run", APP, "--dry-run", TRIOLETTE_MQTT_HOSTNAME="oops")
    assert result.returncode == 0, result.stderr
    assert "TRIOLETTE_MQTT_HOSTNAME is not a triolette setting: ignored" in result.stderr


def test_the_store_setting_keeps_the_count_across_runs_and_store_show_prints_it(tmp_path):
    state = tmp_path / "state.json"
    first = triolette("run", APP, "--dry-run", "--store", str(state))
    assert first.returncode == 0, first.stderr
    second = triolette("run", APP, "--dry-run", TRIOLETTE_STORE=str(state))
    assert second.returncode == 0, second.stderr
    assert published_states(second.stderr) == ['{"count":4}', '{"count":5}', '{"count":6}']

    shown = triolette("store", "show", str(state))
    assert shown.returncode == 0, shown.stderr
    assert json.loads(shown.stdout) == {"counter": {"count": 6}}


def test_store_copy_moves_state_to_the_other_backend(tmp_path):
    state = tmp_path / "state.db"
    assert triolette("run", APP, "--dry-run", "--store", str(state)).returncode == 0
    copied = tmp_path / "copy.json"
    result = triolette("store", "copy", str(state), str(copied))
    assert result.returncode == 0, result.stderr
    assert "copied the state of 1 device from" in result.stdout
    assert json.loads(triolette("store", "show", str(copied)).stdout) == {"counter": {"count": 3}}
    again = triolette("store", "copy", str(state), str(copied))
    assert again.returncode == 3
    assert "already holds the state of 1 device" in again.stderr


def test_store_show_reads_sqlite_without_taking_the_lock(tmp_path):
    state = tmp_path / "state.sqlite"
    assert triolette("run", APP, "--dry-run", "--store", str(state)).returncode == 0
    from triolette import SqliteStore

    owner = SqliteStore(state)
    owner.load_all()  # holds the lock, as a running app does
    try:
        shown = triolette("store", "show", str(state))
    finally:
        owner.close()
    assert shown.returncode == 0, shown.stderr
    assert json.loads(shown.stdout) == {"counter": {"count": 3}}


@pytest.mark.parametrize(
    ("name", "content", "status", "message"),
    [
        ("absent.json", None, 3, "error: PATH: no such file: "),
        ("state.txt", "{}", 3, "must end in .json"),
        ("state.json", "not json", 1, "error: cannot read "),
        ("state.json", '{"a": 1}', 1, "the entry 'a' is a number, not an object"),
    ],
)
def test_store_show_reports_bad_files(tmp_path, name, content, status, message):
    path = tmp_path / name
    if content is not None:
        path.write_text(content)
    result = triolette("store", "show", str(path))
    assert result.returncode == status
    assert message in result.stderr
    if content is not None:
        assert path.read_text() == content  # shown, never repaired or moved
    assert sorted(p.name for p in tmp_path.iterdir()) == ([name] if content else [])


def test_the_restart_limit_exits_2():
    result = triolette("run", APP, "--dry-run", CLI_APP_MODE="crash", CLI_APP_CYCLES="1000000")
    assert result.returncode == 2, result.stderr
    assert "the restart limit" in result.stderr


def test_state_not_saved_exits_1():
    result = triolette("run", APP, "--dry-run", CLI_APP_MODE="unsaved")
    assert result.returncode == 1, result.stderr
    assert "state of counter was not saved" in result.stderr


# -- in process -----------------------------------------------------------------------------------


def test_main_returns_3_for_bad_settings(capsys):
    assert main(["run", APP, "--keepalive", "-1"]) == 3
    assert capsys.readouterr().err == (
        "error: --keepalive: must be a positive number of seconds, got -1.0\n"
    )


def test_main_exits_3_for_a_usage_error(capsys):
    with pytest.raises(SystemExit) as caught:
        main(["run"])
    assert caught.value.code == 3
    assert "the following arguments are required" in capsys.readouterr().err


@pytest.mark.parametrize(("code", "status"), [(None, 0), (0, 0), (2, 2), ("stopped", 1)])
def test_run_returns_the_status_the_app_exits_with(monkeypatch, code, status):
    def exit_with_code(app: object, settings: object) -> None:
        raise SystemExit(code)

    monkeypatch.setattr(cli, "launch", exit_with_code)
    monkeypatch.setattr(cli, "resolve_settings", lambda args: None)
    assert main(["run", APP]) == status


def test_load_app_takes_the_attribute_app_by_default():
    import tests.runtime.cli_app as module

    assert load_app("tests.runtime.cli_app") is module.app


def test_load_app_needs_a_module():
    with pytest.raises(SettingsError, match=r"^:app: give a module"):
        load_app(":app")


def test_every_bool_setting_has_a_negative_flag():
    parser = build_parser()
    args = parser.parse_args(["run", APP, "--no-dry-run", "--tls", "--no-tls-insecure"])
    assert (args.dry_run, args.tls, args.tls_insecure) == (False, True, False)
    assert parser.parse_args(["run", APP]).dry_run is None  # not given: the variable decides


# -- logs -----------------------------------------------------------------------------------------


@pytest.fixture
def root_logger() -> Iterator[logging.Logger]:
    root = logging.getLogger()
    handlers, level = list(root.handlers), root.level
    yield root
    root.handlers[:] = handlers
    root.setLevel(level)


def test_plain_logs_read_time_level_logger_message(root_logger):
    stream = io.StringIO()
    configure_logging("info", "plain", stream=stream)
    logging.getLogger("triolette.x").info("hello %s", "world")
    logging.getLogger("triolette.x").debug("not shown")
    line = stream.getvalue()
    assert re.fullmatch(
        r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}\+00:00 INFO triolette\.x: hello world\n", line
    )


def test_json_logs_carry_the_traceback(root_logger):
    stream = io.StringIO()
    configure_logging("DEBUG", "json", stream=stream)
    try:
        raise ValueError("bad\nthing")
    except ValueError:
        logging.getLogger("dev").exception("it failed")
    (line,) = stream.getvalue().splitlines()
    entry = json.loads(line)
    assert (entry["level"], entry["logger"], entry["message"]) == ("ERROR", "dev", "it failed")
    assert entry["exc_info"].startswith("Traceback")
    assert "ValueError: bad\nthing" in entry["exc_info"]


def test_configuring_again_replaces_the_handler(root_logger):
    first, second = io.StringIO(), io.StringIO()
    configure_logging("INFO", "plain", stream=first)
    configure_logging("INFO", "json", stream=second)
    logging.getLogger("x").warning("once")
    assert first.getvalue() == ""
    assert json.loads(second.getvalue())["message"] == "once"


@pytest.mark.parametrize(("level", "fmt"), [("LOUD", "plain"), ("INFO", "xml")])
def test_configure_logging_refuses_unknown_levels_and_formats(root_logger, level, fmt):
    with pytest.raises(ValueError, match="log"):
        configure_logging(level, fmt)


# -- the operations page --------------------------------------------------------------------------


def test_the_operations_page_lists_every_flag_and_variable():
    page = (ROOT / "docs" / "operations.md").read_text()
    for option in OPTIONS:
        assert f"`{option.flag}`" in page, option.flag
        assert f"`{option.env}`" in page, option.env


def test_a_store_locked_by_another_process_exits_3_naming_the_holder(tmp_path):
    path = tmp_path / "state.json"
    owner = JsonFileStore(path)
    owner.load_all()  # holds the lock, as a running copy of the bridge does
    try:
        result = triolette("run", APP, "--dry-run", "--store", str(path))
    finally:
        owner.close()
    assert result.returncode == 3, result.stderr
    assert "lock" in result.stderr
    assert str(os.getpid()) in result.stderr  # the holder's pid, from its lock file


# -- the store commands and files they cannot open --------------------------------------------


def test_store_copy_from_a_locked_store_exits_3_naming_the_holder(tmp_path):
    source = tmp_path / "state.json"
    source.write_text('{"counter": {"count": 3}}')
    owner = JsonFileStore(source)
    owner.load_all()
    try:
        result = triolette("store", "copy", str(source), str(tmp_path / "copy.db"))
    finally:
        owner.close()
    assert result.returncode == 3, result.stderr
    assert result.stderr.count("\n") == 1
    assert str(source) in result.stderr
    assert str(os.getpid()) in result.stderr


@pytest.mark.parametrize(
    "name",
    [
        "state.json.last-good",
        "state.json.corrupt-20260101T000000Z-2",
        "s.db.corrupt-20260101T000000Z",
    ],
)
def test_store_show_reads_the_copies_kept_beside_a_store(tmp_path, name):
    path = tmp_path / name
    if name.startswith("s.db"):
        with contextlib.closing(SqliteStore(tmp_path / "s.db")) as store:
            store.save_many({"counter": {"count": 2}})
        (tmp_path / "s.db").rename(path)
    else:
        path.write_text('{"counter": {"count": 2}}')
    before = {p.name: p.read_bytes() for p in tmp_path.iterdir()}
    result = triolette("store", "show", str(path))
    assert result.returncode == 0, result.stderr
    assert json.loads(result.stdout) == {"counter": {"count": 2}}
    assert {p.name: p.read_bytes() for p in tmp_path.iterdir()} == before  # read-only


@pytest.mark.parametrize("name", ["state.json.backup", "state.txt.last-good", "state.json.corrupt"])
def test_store_show_still_refuses_other_names(tmp_path, name):
    (tmp_path / name).write_text("{}")
    result = triolette("store", "show", str(tmp_path / name))
    assert result.returncode == 3
    assert "must end in .json" in result.stderr


def test_a_store_that_cannot_be_opened_is_one_line_and_exit_3(tmp_path):
    folder = tmp_path / "state.json"
    folder.mkdir()
    for args, argument in (
        (["store", "show", str(folder)], "PATH"),
        (["store", "copy", str(folder), str(tmp_path / "x.db")], "SRC"),
    ):
        result = triolette(*args)
        assert result.returncode == 3, result.stderr
        assert result.stderr == f"error: {argument}: {folder} is a folder, not a store file\n"
    wrong_schema = tmp_path / "other.db"
    with contextlib.closing(sqlite3.connect(wrong_schema)) as db:
        db.execute("CREATE TABLE something (x)")
    result = triolette("store", "show", str(wrong_schema))
    assert result.returncode == 3, result.stderr
    assert result.stderr == f"error: cannot open {wrong_schema}: no such table: store\n"
    with contextlib.closing(sqlite3.connect(wrong_schema)) as db:
        db.execute("CREATE TABLE store (key TEXT PRIMARY KEY, other)")
    result = triolette("store", "copy", str(wrong_schema), str(tmp_path / "copy.json"))
    assert result.returncode == 3, result.stderr
    assert result.stderr.startswith(f"error: cannot open the store {wrong_schema}: ")
    assert result.stderr.count("\n") == 1


# -- app.run()'s flags: run_app ----------------------------------------------------------------


def python(*args: str, cwd: Path = ROOT, **env: str) -> subprocess.CompletedProcess[str]:
    """Run ``python ARGS`` with only our variables."""
    clean = {k: v for k, v in os.environ.items() if not k.startswith(("TRIOLETTE_", "CLI_APP_"))}
    return subprocess.run(
        [sys.executable, *args],
        cwd=cwd,
        env={**clean, "PYTHONPATH": str(ROOT), **env},
        capture_output=True,
        text=True,
        timeout=60,
    )


def _start_up_line(stderr: str) -> str:
    return next(
        line.partition(": ")[2] for line in stderr.splitlines() if " triolette.run: " in line
    )


def test_running_the_module_takes_the_same_flags_as_triolette_run(tmp_path):
    by_module = python("-m", "tests.runtime.cli_app", "--dry-run", "--topic-prefix", "house")
    by_cli = triolette("run", APP, "--dry-run", "--topic-prefix", "house")
    for result in (by_module, by_cli):
        assert result.returncode == 0, result.stderr
        assert "publish house/counter/state" in result.stderr
    assert _start_up_line(by_module.stderr) == _start_up_line(by_cli.stderr)


def test_running_the_module_reads_the_variables_and_an_env_file(tmp_path):
    env_file = tmp_path / "bridge.env"
    env_file.write_text(
        "# settings for the bridge\nexport TRIOLETTE_DRY_RUN=yes\n"
        "TRIOLETTE_LOG_FORMAT='json'  \nTRIOLETTE_TOPIC_PREFIX=\"from-file\" # a comment\n"
    )
    result = python(
        "-m", "tests.runtime.cli_app", "--env-file", str(env_file), TRIOLETTE_TOPIC_PREFIX="env"
    )
    assert result.returncode == 0, result.stderr
    lines = [json.loads(line) for line in result.stderr.splitlines()]
    assert any("publish env/counter/state" in line["message"] for line in lines)


def test_running_the_module_with_bad_settings_is_one_line_and_exit_3(tmp_path):
    for args, message in (
        (["--keepalive", "-1"], "error: --keepalive: must be a positive number"),
        (["--env-file", str(tmp_path / "absent.env")], "error: --env-file: no such file: "),
    ):
        result = python("-m", "tests.runtime.cli_app", *args)
        assert result.returncode == 3
        assert result.stderr.startswith(message)
        assert result.stderr.count("\n") == 1


def test_running_the_module_prints_its_version():
    from triolette import __version__

    result = python("-m", "tests.runtime.cli_app", "--version")
    assert result.returncode == 0
    assert result.stdout == f"cliapp 0.0.0 (triolette {__version__})\n"


def test_a_module_that_runs_its_app_when_imported_is_refused_in_one_line(tmp_path):
    (tmp_path / "readme.py").write_text(
        "from triolette import App\n"
        "app = App('readme')\n"
        "app.run()  # not under `if __name__ == '__main__':`\n"
    )
    result = triolette("run", str(tmp_path / "readme.py"), "--dry-run")
    assert result.returncode == 3
    assert result.stderr.count("\n") == 1, result.stderr
    assert result.stderr.startswith(f"error: {tmp_path / 'readme.py'}: the module calls app.run() ")
    assert 'if __name__ == "__main__":' in result.stderr
    in_process = python(
        "-c", "from triolette.runtime.cli import main; main(['run', 'readme'])", cwd=tmp_path
    )
    assert "the module calls app.run() when it is imported" in in_process.stderr


def test_the_readme_example_does_not_start_when_imported(tmp_path):
    readme = (ROOT / "README.md").read_text()
    example = readme.split("## A short example\n\n```python\n", 1)[1].split("```", 1)[0]
    (tmp_path / "readme.py").write_text(example)
    check = "from triolette.runtime.cli import load_app; print(load_app('readme:app').name)"
    result = python("-c", check, cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    assert result.stdout == "gas2mqtt\n"
    assert not (tmp_path / "data").exists()  # nothing ran, nothing was stored
