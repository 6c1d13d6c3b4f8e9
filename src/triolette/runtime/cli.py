"""The ``triolette`` command: ``run`` an app with settings from flags and variables; ``store``.

::

    triolette run MODULE[:ATTR] [flags]      python -m triolette run ...
    triolette store show PATH
    triolette store copy SRC DST
    triolette watch [TOPIC ...]              print what a broker carries

Exit status: 0 clean stop; 1 some device's state was not saved, or another error (or a
``store`` command failed); 2 the restart limit stopped the app; 3 bad settings, a bad command
line or an app that cannot be loaded (``error: <message>`` on stderr, before anything starts),
or at start-up a store locked by another process or a broker that refuses the app for good.
"""

from __future__ import annotations

import argparse
import contextlib
import importlib
import importlib.util
import json
import logging
import os
import sqlite3
import sys
import threading
from collections.abc import Sequence
from pathlib import Path
from typing import Any, NoReturn

from triolette.core.errors import SettingsError, TrioletteError
from triolette.core.jsonstate import decode_document, decode_state
from triolette.runtime.app import App
from triolette.runtime.logs import configure_logging
from triolette.runtime.settings import OPTIONS, Settings
from triolette.runtime.watch import Watch

logger = logging.getLogger("triolette.cli")

EXIT_OK = 0
EXIT_NOT_SAVED = 1
EXIT_RESTART_LIMIT = 2
EXIT_BAD_SETTINGS = 3


class _Parser(argparse.ArgumentParser):
    """An ``ArgumentParser`` whose usage errors exit with status 3, like bad settings."""

    def error(self, message: str) -> NoReturn:
        self.print_usage(sys.stderr)
        self.exit(EXIT_BAD_SETTINGS, f"error: {message}\n")


def build_parser() -> argparse.ArgumentParser:
    """The parser of every subcommand; each ``run`` flag's help names its variable."""
    parser = _Parser(
        prog="triolette",
        description="Run a triolette bridge, or look into its stored device state.",
        epilog="Exit status: 0 clean stop, 1 state not saved, 2 restart limit, "
        "3 bad settings or app reference.",
    )
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    run = commands.add_parser(
        "run",
        help="run an app until SIGINT or SIGTERM",
        description="Import MODULE, take its App (the attribute ATTR, default 'app'), "
        "configure it and run it until SIGINT or SIGTERM. Each flag beats its environment "
        "variable, which beats the app's code. An empty variable counts as unset.",
    )
    run.add_argument(
        "app",
        metavar="MODULE[:ATTR]",
        help="a module on the path (the current directory first) or a path/to/file.py",
    )
    flags = run.add_argument_group("settings")
    for option in OPTIONS:
        help_text = f"{option.help} (env {option.env}; default {option.default})".replace("%", "%%")
        if option.kind == "bool":
            flags.add_argument(
                option.flag,
                dest=option.name,
                action=argparse.BooleanOptionalAction,
                default=None,
                help=help_text,
            )
        else:
            flags.add_argument(
                option.flag,
                dest=option.name,
                metavar=option.metavar,
                default=None,
                help=help_text,
            )
    run.set_defaults(handler=_run)

    watch = commands.add_parser(
        "watch",
        help="print every message on some topics (like mosquitto_sub -v)",
        description="Subscribe to TOPIC filters (default '#') and print each message as "
        "'topic payload', marking retained ones, until Ctrl-C.",
    )
    watch.add_argument("topics", metavar="TOPIC", nargs="*", default=["#"])
    watch.add_argument(
        "--host", default=None, help="broker host (env TRIOLETTE_MQTT_HOST; default 127.0.0.1)"
    )
    watch.add_argument(
        "--port", default=None, help="broker port (env TRIOLETTE_MQTT_PORT; default 1883)"
    )
    watch.set_defaults(handler=_watch)

    store = commands.add_parser("store", help="show or copy stored device state")
    actions = store.add_subparsers(dest="action", required=True, metavar="ACTION")
    show = actions.add_parser(
        "show",
        help="print every device's state as JSON",
        description="Print {device: state} as JSON. Reads the file without locking or "
        "changing it, so it works while the app runs.",
    )
    show.add_argument("path", metavar="PATH", help="a .json, .db, .sqlite or .sqlite3 store")
    show.set_defaults(handler=_store_show)
    copy = actions.add_parser(
        "copy",
        help="copy every device's state into a new store",
        description="Copy every device's state from SRC to DST, which may use the other "
        "backend. DST must hold no state yet. Stop the app first: both stores are locked.",
    )
    copy.add_argument("source", metavar="SRC", help="the store to copy from")
    copy.add_argument("target", metavar="DST", help="the store to copy into")
    copy.set_defaults(handler=_store_copy)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Run the command line ``argv`` (default ``sys.argv[1:]``) and return the exit status.

    Usage errors exit at once with status 3 (``SystemExit``), as does ``--help`` with 0.
    """
    args = build_parser().parse_args(argv)
    try:
        status: int = args.handler(args)
    except SettingsError as error:
        print(f"error: {error}", file=sys.stderr)
        return EXIT_BAD_SETTINGS
    return status


# -- run -------------------------------------------------------------------------------------


def _run(args: argparse.Namespace) -> int:
    settings = Settings.from_sources(args, os.environ)
    configure_logging(settings.log_level, settings.log_format)
    for name in settings.unknown_variables:
        logger.warning("%s is not a triolette setting: ignored", name)
    app = load_app(args.app)
    settings.apply(app)
    logger.info("%s: %s", app.name, settings.describe(app))
    try:
        app.run()
    except SystemExit as stop:  # 1: state not saved, 2: restart limit
        return stop.code if isinstance(stop.code, int) else EXIT_NOT_SAVED
    return EXIT_OK


def load_app(reference: str) -> App:
    """The ``App`` that ``module[:attr]`` or ``path/to/file.py[:attr]`` names (attr: ``app``).

    The current directory goes first on ``sys.path``; a file's own folder too. Raises
    :class:`~triolette.SettingsError` naming the reference when the module or the attribute
    does not exist, is not an ``App``, or the module fails to import (its traceback logged).
    """
    module_name, _, attribute = reference.partition(":")
    attribute = attribute or "app"
    if not module_name:
        raise SettingsError(reference, "give a module or a .py file, like mymodule:app")
    cwd = os.getcwd()
    if cwd not in sys.path:
        sys.path.insert(0, cwd)
    try:
        if module_name.endswith(".py") or os.sep in module_name:
            module = _import_file(reference, Path(module_name))
        else:
            module = _import_module(reference, module_name)
        target: Any = module
        for part in attribute.split("."):
            target = getattr(target, part)
    except AttributeError:
        raise SettingsError(
            reference, f"module {module_name!r} has no attribute {attribute!r}"
        ) from None
    if not isinstance(target, App):
        raise SettingsError(
            reference, f"{attribute!r} is not a triolette App (found {type(target).__name__})"
        )
    return target


def _import_module(reference: str, name: str) -> Any:
    try:
        return importlib.import_module(name)
    except ModuleNotFoundError as error:
        missing = error.name or ""
        if name == missing or name.startswith(f"{missing}."):
            raise SettingsError(reference, f"no module named {missing!r}") from None
        return _import_failed(reference, name, error)
    except Exception as error:
        return _import_failed(reference, name, error)


def _import_file(reference: str, path: Path) -> Any:
    if not path.is_file():
        raise SettingsError(reference, f"no such file: {path}")
    name = path.stem
    if name in sys.modules:
        raise SettingsError(
            reference, f"the module name {name!r} is already taken; rename {path.name}"
        )
    spec = importlib.util.spec_from_file_location(name, path)
    if spec is None or spec.loader is None:
        raise SettingsError(reference, f"cannot import {path}")
    module = importlib.util.module_from_spec(spec)
    folder = str(path.parent.absolute())
    if folder not in sys.path:
        sys.path.insert(0, folder)
    sys.modules[name] = module
    try:
        spec.loader.exec_module(module)
    except Exception as error:
        del sys.modules[name]
        _import_failed(reference, str(path), error)
    return module


def _import_failed(reference: str, name: str, error: Exception) -> NoReturn:
    logger.error("importing %s failed", name, exc_info=error)
    raise SettingsError(
        reference, f"importing {name} failed: {type(error).__name__}: {error}"
    ) from None


# -- store -----------------------------------------------------------------------------------


def _store_settings(argument: str, path: str) -> Settings:
    """Settings holding just this store path, so its suffix is checked like ``--store``."""
    settings = Settings(store_path=Path(path), sources={"store_path": argument})
    if not Path(path).is_file():
        raise SettingsError(argument, f"no such file: {path}")
    return settings


def _watch(args: argparse.Namespace) -> int:
    # The same --host/--port checks and variables as `run`.
    settings = Settings.from_sources({"mqtt_host": args.host, "mqtt_port": args.port}, os.environ)
    host = settings.mqtt_host or "127.0.0.1"
    print(f"watching {' '.join(args.topics)} on {host}:{settings.port} (Ctrl-C stops)", flush=True)
    with Watch(host, settings.port, args.topics), contextlib.suppress(KeyboardInterrupt):
        threading.Event().wait()
    return EXIT_OK


def _store_show(args: argparse.Namespace) -> int:
    settings = _store_settings("PATH", args.path)
    assert settings.store_path is not None
    try:
        states = read_states(settings.store_path)
    except (OSError, ValueError, sqlite3.Error) as error:
        print(f"error: cannot read {args.path}: {error}", file=sys.stderr)
        return EXIT_NOT_SAVED
    json.dump(states, sys.stdout, indent=2, sort_keys=True, ensure_ascii=False)
    print()
    return EXIT_OK


def read_states(path: Path) -> dict[str, dict[str, Any]]:
    """Every device's state in a store file, read without taking its lock or changing it.

    Raises ``ValueError`` for a damaged file, ``OSError`` or ``sqlite3.Error`` when it cannot
    be read.
    """
    if path.suffix.lower() == ".json":
        return decode_document(path.read_text(encoding="utf-8"))
    uri = f"{path.absolute().as_uri()}?mode=ro"
    db = sqlite3.connect(uri, uri=True)
    try:
        rows = db.execute("SELECT key, data FROM store ORDER BY key").fetchall()
    finally:
        db.close()
    states = {}
    for key, data in rows:
        try:
            states[key] = decode_state(data)
        except ValueError as error:
            raise ValueError(f"the state of {key!r} is damaged: {error}") from None
    return states


def _store_copy(args: argparse.Namespace) -> int:
    source = _store_settings("SRC", args.source).store()
    target = Settings(store_path=Path(args.target), sources={"store_path": "DST"}).store()
    assert source is not None
    assert target is not None
    try:
        try:
            states = source.load_all()
            existing = target.load_all()
            if existing:
                print(
                    f"error: {args.target} already holds the state of "
                    f"{_devices(len(existing))}; copy into a new file",
                    file=sys.stderr,
                )
                return EXIT_BAD_SETTINGS
            target.save_many(states)
        finally:
            source.close()
            target.close()
    except (OSError, TrioletteError, sqlite3.Error) as error:
        print(f"error: {error}", file=sys.stderr)
        return EXIT_NOT_SAVED
    print(f"copied the state of {_devices(len(states))} from {args.source} to {args.target}")
    return EXIT_OK


def _devices(count: int) -> str:
    return f"{count} device" if count == 1 else f"{count} devices"
