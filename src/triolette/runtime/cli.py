"""The ``triolette`` command: ``run`` an app with settings from flags and variables; ``store``.

::

    triolette run MODULE[:ATTR] [flags]      python -m triolette run ...
    triolette store show STORE
    triolette store copy SRC DST             STORE: a path, json:PATH, sqlite:PATH or a URL
    triolette watch [TOPIC ...] [flags]      print what a broker carries
    triolette registry MODULE[:ATTR] [--json] [--env-file FILE] [--asyncapi [FILE]]
    triolette schema ha-discovery MODULE[:ATTR] [--prefix P] [--output FILE] [--env-file FILE]
    triolette --version

``run`` goes through :func:`triolette.runtime.launch.launch`, like ``app.run()``: both read
the same flags and variables. Exit status: 0 clean stop; 1 some device's state was not saved,
or another error (or a ``store`` command could not read or write, or ``registry`` its
``--asyncapi`` file); 2 the restart limit stopped
the app; 3 bad settings, a bad command line or an app that cannot be loaded (``error:
<message>`` on stderr, before anything starts), or a store that cannot be opened (locked by
another process, say), or at start-up a broker that refuses the app for good.

A little over 400 lines: one parser for every subcommand, so ``triolette --help`` and each
subcommand's help are declared in the order they print.
"""

from __future__ import annotations

import argparse
import contextlib
import importlib
import importlib.util
import json
import logging
import os
import sys
import threading
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any, NoReturn

from triolette.core.errors import RegistrationError, SettingsError
from triolette.core.topics import Topics
from triolette.runtime.app import App
from triolette.runtime.launch import (
    ENV_FILE_FLAG,
    EXIT_BAD_SETTINGS,
    RunDuringImportError,
    StrictParser,
    add_run_flags,
    add_setting_flags,
    app_settings_layer,
    importing_app,
    launch,
    read_env_file,
    resolve_settings,
    triolette_version,
)
from triolette.runtime.registry_view import (
    build_registry_snapshot,
    format_registry_json,
    format_registry_table,
)
from triolette.runtime.settings import RunSettings
from triolette.runtime.store_commands import EXIT_NOT_SAVED, EXIT_OK, store_copy, store_show
from triolette.runtime.watch import Watch

logger = logging.getLogger("triolette.cli")

EXIT_RESTART_LIMIT = 2

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

    registry = commands.add_parser(
        "registry",
        help="print every entity of an app: kind, topics, schedule, policies, models",
        description="Import MODULE, take its App (ATTR, default 'app') and print its "
        "entities as a table, or as JSON with --json. Nothing runs and nothing connects; "
        "names from the settings are expanded when the app's settings can be built.",
    )
    registry.add_argument("app", metavar="MODULE[:ATTR]", help="as for run")
    registry.add_argument("--json", action="store_true", help="print JSON instead of a table")
    registry.add_argument(
        ENV_FILE_FLAG,
        dest="env_file",
        metavar="FILE",
        default=None,
        help="build the app's settings (which may give device names) with this env file",
    )
    registry.add_argument(
        "--asyncapi",
        metavar="FILE",
        nargs="?",
        const="-",
        help="write an AsyncAPI 3.0 document of the topics and payloads to FILE (then print "
        "the table or JSON as usual), or with no FILE (or -) print only the document",
    )
    registry.set_defaults(handler=_registry, parser=registry)

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
    show.set_defaults(handler=store_show, parser=show)
    copy = actions.add_parser(
        "copy",
        help="copy every device's state into a new store",
        description="Copy every device's state from SRC to DST, each a file or a URL as for "
        "show, on any backend. DST must hold no state yet. Stop the app first: file stores "
        "are locked, and a server store must not change during the copy.",
    )
    copy.add_argument("source", metavar="SRC", help="the store to copy from")
    copy.add_argument("target", metavar="DST", help="the store to copy into")
    copy.set_defaults(handler=store_copy, parser=copy)
    _add_schema_commands(commands)
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
    if app.settings_class is not None:  # its own settings come between variables and defaults
        settings = resolve_settings(args, app=app, warn=False)
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


# -- registry --------------------------------------------------------------------------------


def _registry(args: argparse.Namespace) -> int:
    from triolette.runtime.asyncapi import asyncapi_document

    with _quiet_import_log():
        app = load_app(args.app)
    settings = app.settings
    if args.env_file is not None:
        from triolette.runtime.app_settings import load_settings

        read_env_file(Path(args.env_file))  # a missing or unreadable file is one error line
        if app.settings_class is not None:
            settings = load_settings(app.settings_class, Path(args.env_file))
    snapshot = build_registry_snapshot(app, settings=settings)
    if args.asyncapi is not None:
        document = json.dumps(asyncapi_document(snapshot), indent=2, ensure_ascii=False)
        if args.asyncapi == "-":
            print(document)
            return EXIT_OK
        try:
            Path(args.asyncapi).write_text(document + "\n", encoding="utf-8")
        except OSError as error:
            print(f"error: cannot write {args.asyncapi}: {error}", file=sys.stderr)
            return EXIT_NOT_SAVED
    print(format_registry_json(snapshot) if args.json else format_registry_table(snapshot))
    return EXIT_OK


@contextlib.contextmanager
def _quiet_import_log() -> Iterator[None]:
    """Without logging set up, a failed import is the one ``error:`` line, no traceback."""
    if logging.getLogger().hasHandlers():
        yield
        return
    logger.disabled = True
    try:
        yield
    finally:
        logger.disabled = False


# -- watch -----------------------------------------------------------------------------------


def _watch(args: argparse.Namespace) -> int:
    # The same checks and variables as `run` for the broker's address, login and TLS.
    settings = RunSettings.from_sources(
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


# -- schema ----------------------------------------------------------------------------------


def _add_schema_commands(commands: Any) -> None:
    schema = commands.add_parser("schema", help="write what the bridge announces, offline")
    actions = schema.add_subparsers(dest="action", required=True, metavar="ACTION")
    discovery = actions.add_parser(
        "ha-discovery",
        help="print the Home Assistant discovery configs as JSON",
        description="Import MODULE, take its App (the attribute ATTR, default 'app'), and "
        "print {topic: config} for Home Assistant's MQTT discovery without connecting: the "
        "configs the app announces when it serves with the settings of this environment "
        "(TRIOLETTE_TOPIC_PREFIX and the app's own settings, names expanded).",
    )
    discovery.add_argument("app", metavar="MODULE[:ATTR]")
    discovery.add_argument("--prefix", help="the discovery prefix (default: the app's, else "
                           "homeassistant)")  # fmt: skip
    discovery.add_argument("--output", metavar="FILE", help="write to FILE instead of stdout")
    discovery.add_argument(
        ENV_FILE_FLAG,
        dest="env_file",
        metavar="FILE",
        default=None,
        help="read settings (the topic prefix, the app's own) from this env file too",
    )
    discovery.set_defaults(handler=_ha_discovery, parser=discovery)


def _ha_discovery(args: argparse.Namespace) -> int:
    from triolette.runtime.discovery import offline_configs

    with _quiet_import_log():
        app = load_app(args.app)
    env_file = None if args.env_file is None else Path(args.env_file)
    env = dict(os.environ)
    if env_file is not None:  # as for run: a variable set and not empty beats the file
        env = {**read_env_file(env_file), **{k: v for k, v in env.items() if v}}
    layer = app_settings_layer(app, env_file)  # rebuilds the app's own settings from here
    settings = RunSettings.from_sources({}, env, app_settings=layer)
    if settings.topic_prefix is not None:
        app.topics = Topics(settings.topic_prefix)
    try:
        configs = offline_configs(app, args.prefix)
    except RegistrationError as error:  # a bad prefix, a component no control takes
        print(f"error: {error}", file=sys.stderr)
        return EXIT_BAD_SETTINGS
    text = json.dumps(configs, indent=2, ensure_ascii=False) + "\n"
    if args.output is None:
        sys.stdout.write(text)
        return EXIT_OK
    try:
        Path(args.output).write_text(text, encoding="utf-8")
    except OSError as error:
        print(f"error: cannot write {args.output}: {error}", file=sys.stderr)
        return EXIT_NOT_SAVED
    return EXIT_OK
