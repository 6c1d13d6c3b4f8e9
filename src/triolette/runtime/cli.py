"""The ``triolette`` command: ``run`` an app with settings from flags and variables; ``store``.

::

    triolette run MODULE[:ATTR] [flags]      python -m triolette run ...
    triolette store show STORE
    triolette store copy SRC DST             STORE: a path, json:PATH, sqlite:PATH or a URL
    triolette watch [TOPIC ...] [flags]      print what a broker carries
    triolette --version

``run`` goes through :func:`triolette.runtime.launch.launch`, like ``app.run()``: both read
the same flags and variables. Exit status: 0 clean stop; 1 some device's state was not saved,
or another error (or a ``store`` command could not read or write); 2 the restart limit stopped
the app; 3 bad settings, a bad command line or an app that cannot be loaded (``error:
<message>`` on stderr, before anything starts), or a store that cannot be opened (locked by
another process, say), or at start-up a broker that refuses the app for good.
"""

from __future__ import annotations

import argparse
import contextlib
import importlib
import importlib.util
import json
import logging
import os
import re
import sqlite3
import sys
import threading
from collections.abc import Sequence
from pathlib import Path
from typing import Any, NoReturn

from triolette.core.errors import SettingsError, StoreOpenError, TrioletteError
from triolette.core.jsonstate import decode_document, decode_state
from triolette.runtime.app import App
from triolette.runtime.launch import (
    EXIT_BAD_SETTINGS,
    RunDuringImportError,
    StrictParser,
    add_run_flags,
    add_setting_flags,
    importing_app,
    launch,
    resolve_settings,
    triolette_version,
)
from triolette.runtime.setting_checks import FILE_SCHEMES, StoreKind, store_kind
from triolette.runtime.settings import Settings
from triolette.runtime.watch import Watch
from triolette.runtime.wiring import describe_store, store_for_location
from triolette.stores.protocol import BatchStore

logger = logging.getLogger("triolette.cli")

EXIT_OK = 0
EXIT_NOT_SAVED = 1
EXIT_RESTART_LIMIT = 2

# What `store show` accepts besides a store file: the copies a store keeps beside it.
_BACKUP_SUFFIX = re.compile(r"\.(?:last-good|corrupt-\d{8}T\d{6}Z(?:-\d+)?)$")
# The settings `watch` takes, as `run` does: where the broker is and how to log in.
_WATCH_SETTINGS = (
    "mqtt_host", "mqtt_port", "username", "password", "password_file", "tls", "tls_ca_file",
    "tls_cert_file", "tls_key_file", "tls_insecure",
)  # fmt: skip


def build_parser() -> argparse.ArgumentParser:
    """The parser of every subcommand; each setting flag's help names its variable."""
    # Over 50 lines: one declaration per subcommand, read top to bottom like the --help.
    parser = StrictParser(
        prog="triolette",
        description="Run a triolette bridge, or look into its stored device state.",
        epilog="Exit status: 0 clean stop, 1 state not saved, 2 restart limit, "
        "3 bad settings, app reference or store.",
    )
    parser.add_argument("--version", action="version", version=f"triolette {triolette_version()}")
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
    add_run_flags(run)
    run.set_defaults(handler=_run, parser=run)

    watch = commands.add_parser(
        "watch",
        help="print every message on some topics (like mosquitto_sub -v)",
        description="Subscribe to TOPIC filters (default '#') and print each message as "
        "'topic payload', marking retained ones, until Ctrl-C. Connection failures are "
        "printed as '(watch: ...)' lines and retried.",
    )
    watch.add_argument("topics", metavar="TOPIC", nargs="*", default=["#"])
    add_setting_flags(watch, _WATCH_SETTINGS, default_texts={"mqtt_host": "127.0.0.1"})
    watch.set_defaults(handler=_watch, parser=watch)

    store = commands.add_parser("store", help="show or copy stored device state")
    actions = store.add_subparsers(dest="action", required=True, metavar="ACTION")
    show = actions.add_parser(
        "show",
        help="print every device's state as JSON",
        description="Print {device: state} as JSON. Reads a file without locking or "
        "changing it, so it works while the app runs, and on the .last-good and "
        ".corrupt-* copies a store keeps beside its file. For a PostgreSQL or Redis store "
        "each device's revision and last write time follow on stderr, one line each.",
    )
    show.add_argument(
        "path",
        metavar="STORE",
        help="a .json, .db, .sqlite or .sqlite3 file, json:PATH, sqlite:PATH, "
        "postgresql://USER@HOST/DB or redis://HOST:PORT/DB",
    )
    show.set_defaults(handler=_store_show, parser=show)
    copy = actions.add_parser(
        "copy",
        help="copy every device's state into a new store",
        description="Copy every device's state from SRC to DST, each a file or a URL as for "
        "show, on any backend. DST must hold no state yet. Stop the app first: file stores "
        "are locked, and a server store must not change during the copy.",
    )
    copy.add_argument("source", metavar="SRC", help="the store to copy from")
    copy.add_argument("target", metavar="DST", help="the store to copy into")
    copy.set_defaults(handler=_store_copy, parser=copy)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Run the command line ``argv`` (default ``sys.argv[1:]``) and return the exit status.

    Usage errors exit at once with status 3 (``SystemExit``) and the usage of the command
    they belong to, as does ``--help`` with 0.
    """
    args, unknown = build_parser().parse_known_args(argv)
    if unknown:
        args.parser.error(f"unrecognized arguments: {' '.join(unknown)}")
    try:
        status: int = args.handler(args)
    except SettingsError as error:
        print(f"error: {error}", file=sys.stderr)
        return EXIT_BAD_SETTINGS
    return status


# -- run -------------------------------------------------------------------------------------


def _run(args: argparse.Namespace) -> int:
    settings = resolve_settings(args)
    app = load_app(args.app)
    try:
        launch(app, settings)
    except SystemExit as stop:  # 1: state not saved, 2: restart limit, 3: cannot start
        if stop.code is None:
            return EXIT_OK
        return stop.code if isinstance(stop.code, int) else EXIT_NOT_SAVED
    return EXIT_OK


def load_app(reference: str) -> App:
    """The ``App`` that ``module[:attr]`` or ``path/to/file.py[:attr]`` names (attr: ``app``).

    The current directory goes first on ``sys.path``; a file's own folder too. Raises
    :class:`~triolette.SettingsError` naming the reference when the module or the attribute
    does not exist, is not an ``App``, or the module fails to import (its traceback logged);
    :class:`~triolette.runtime.launch.RunDuringImportError` when the module runs its app
    while imported (it should do so under ``if __name__ == "__main__":``).
    """
    module_name, _, attribute = reference.partition(":")
    attribute = attribute or "app"
    if not module_name:
        raise SettingsError(reference, "give a module or a .py file, like mymodule:app")
    cwd = os.getcwd()
    if cwd not in sys.path:
        sys.path.insert(0, cwd)
    try:
        with importing_app(reference):
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
    except RunDuringImportError:
        raise
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
        if isinstance(error, RunDuringImportError):
            raise
        _import_failed(reference, str(path), error)
    return module


def _import_failed(reference: str, name: str, error: Exception) -> NoReturn:
    logger.error("importing %s failed", name, exc_info=error)
    raise SettingsError(
        reference, f"importing {name} failed: {type(error).__name__}: {error}"
    ) from None


# -- watch -----------------------------------------------------------------------------------


def _watch(args: argparse.Namespace) -> int:
    # The same checks and variables as `run` for the broker's address, login and TLS.
    settings = Settings.from_sources(
        {name: getattr(args, name) for name in _WATCH_SETTINGS}, os.environ
    )
    host = settings.mqtt_host or "127.0.0.1"
    watch = Watch(
        host,
        settings.port,
        args.topics,
        username=settings.username,
        password=settings.password,
        tls=settings.ssl_context,
    )
    print(f"watching {' '.join(args.topics)} on {watch.address} (Ctrl-C stops)", flush=True)
    with watch, contextlib.suppress(KeyboardInterrupt):
        threading.Event().wait()
    return EXIT_OK


# -- store -----------------------------------------------------------------------------------


def _existing_store_file(argument: str, path: str) -> Path:
    """``path`` if it is a file; a ``SettingsError`` naming ``argument`` otherwise."""
    file = Path(path)
    if file.is_dir():
        raise SettingsError(argument, f"{path} is a folder, not a store file")
    if not file.is_file():
        raise SettingsError(argument, f"no such file: {path}")
    return file


def shown_store_kind(path: Path, source: str = "PATH") -> StoreKind:
    """The backend of a store file or of a copy kept beside one (``NAME.last-good``,
    ``NAME.corrupt-<UTC time>``): by the name without that ending. Raises
    :class:`~triolette.SettingsError` for another name."""
    return store_kind(path.with_name(_BACKUP_SUFFIX.sub("", path.name)), source)


def _store_show(args: argparse.Namespace) -> int:
    if _is_server(args.path):
        return _show_server(args.path)
    kind, text = _explicit_file_kind(args.path)
    path = _existing_store_file("PATH", text)
    kind = kind or shown_store_kind(path)
    try:
        states = read_states(path, kind)
    except (OSError, sqlite3.OperationalError) as error:  # not there for us to read
        print(f"error: cannot open {args.path}: {_reason(error)}", file=sys.stderr)
        return EXIT_BAD_SETTINGS
    except (ValueError, sqlite3.Error) as error:  # damaged
        print(f"error: cannot read {args.path}: {error}", file=sys.stderr)
        return EXIT_NOT_SAVED
    json.dump(states, sys.stdout, indent=2, sort_keys=True, ensure_ascii=False)
    print()
    return EXIT_OK


def _show_server(location: str) -> int:
    """``store show`` of a PostgreSQL or Redis store: states on stdout, revisions on stderr."""
    store = store_for_location(location, "PATH")
    shown = describe_store(store)
    try:
        records = store.load_records()  # type: ignore[attr-defined]
    except StoreOpenError as error:
        print(f"error: {error}", file=sys.stderr)
        return EXIT_BAD_SETTINGS
    except OSError as error:
        print(f"error: cannot read {shown}: {error}", file=sys.stderr)
        return EXIT_BAD_SETTINGS
    except ValueError as error:  # damaged
        print(f"error: cannot read {shown}: {error}", file=sys.stderr)
        return EXIT_NOT_SAVED
    finally:
        store.close()
    states = {key: decode_state(record.text) for key, record in records.items()}
    json.dump(states, sys.stdout, indent=2, sort_keys=True, ensure_ascii=False)
    print(flush=True)
    for key, record in sorted(records.items()):
        written = record.written_at.isoformat(timespec="milliseconds")
        print(f"# {key}: revision {record.revision}, written {written}", file=sys.stderr)
    return EXIT_OK


def _is_server(location: str) -> bool:
    """Whether ``location`` is a URL (``scheme://``); a ``SettingsError`` for an unknown one."""
    return "://" in location and store_kind(location, "PATH") in ("postgresql", "redis")


def _explicit_file_kind(location: str) -> tuple[StoreKind | None, str]:
    """``("json", PATH)`` for ``json:PATH`` (likewise ``sqlite:``); ``(None, location)``."""
    scheme, colon, rest = location.partition(":")
    if colon and rest and scheme.lower() in FILE_SCHEMES:
        return FILE_SCHEMES[scheme.lower()], rest
    return None, location


def read_states(path: Path, kind: StoreKind | None = None) -> dict[str, dict[str, Any]]:
    """Every device's state in a store file, read without taking its lock or changing it.

    ``kind`` defaults to :func:`shown_store_kind`'s. A copy kept beside a store (``.corrupt-*``)
    is read as immutable: SQLite adds no ``-shm`` or ``-wal`` file beside it. Raises
    ``ValueError`` for a damaged file, ``OSError`` or ``sqlite3.Error`` when it cannot be read.
    """
    if (kind or shown_store_kind(path)) == "json":
        return decode_document(path.read_text(encoding="utf-8"))
    is_copy = _BACKUP_SUFFIX.search(path.name) is not None
    uri = f"{path.absolute().as_uri()}?{'immutable=1' if is_copy else 'mode=ro'}"
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
    source = _store_at("SRC", args.source, existing=True)
    target = _store_at("DST", args.target, existing=False)
    shown_source, shown_target = describe_store(source), describe_store(target)
    try:
        states = _open_store(source, shown_source)
        existing = _open_store(target, shown_target)
        if states is None or existing is None:
            return EXIT_BAD_SETTINGS
        if existing:
            print(
                f"error: {shown_target} already holds the state of "
                f"{_devices(len(existing))}; copy into a new store",
                file=sys.stderr,
            )
            return EXIT_BAD_SETTINGS
        try:
            target.save_many(states)
        except (OSError, TrioletteError, sqlite3.Error) as error:
            print(f"error: cannot write {shown_target}: {error}", file=sys.stderr)
            return EXIT_NOT_SAVED
    finally:
        source.close()
        target.close()
    print(f"copied the state of {_devices(len(states))} from {shown_source} to {shown_target}")
    return EXIT_OK


def _store_at(argument: str, location: str, *, existing: bool) -> BatchStore:
    """The store ``location`` names; a file store's file must exist when ``existing``."""
    if not _is_server(location):
        kind, text = _explicit_file_kind(location)
        if existing:
            path = _existing_store_file(argument, text)
            location = f"{kind or shown_store_kind(path, argument)}:{path}"
    return store_for_location(location, argument)


def _open_store(store: BatchStore, shown: str) -> dict[str, Any] | None:
    """Every state in ``store`` (taking its lock), or ``None`` after one line on stderr."""
    try:
        return store.load_all()
    except StoreOpenError as error:  # locked, a folder in its place, a foreign database...
        print(f"error: {error}", file=sys.stderr)
    except (OSError, sqlite3.Error) as error:
        print(f"error: cannot open {shown}: {_reason(error)}", file=sys.stderr)
    return None


def _reason(error: Exception) -> str:
    return getattr(error, "strerror", None) or str(error)


def _devices(count: int) -> str:
    return f"{count} device" if count == 1 else f"{count} devices"
