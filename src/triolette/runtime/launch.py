"""Running an app with the operator's settings: ``run_app(app)`` and ``triolette run``.

Both read the same flags (one parser builder, :func:`add_run_flags`), the same ``TRIOLETTE_*``
variables, optionally an ``--env-file``, and end in the same :func:`launch`, so
``python mybridge.py --dry-run`` and ``triolette run mybridge:app --dry-run`` behave alike.
Bad settings: ``error: <message>`` on stderr and exit status 3, before anything starts.
"""

from __future__ import annotations

import argparse
import contextlib
import importlib.metadata
import logging
import logging.handlers
import os
import re
import sys
from collections.abc import Iterator, Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any, NoReturn

from triolette.core.errors import SettingsError
from triolette.runtime.logs import configure_logging
from triolette.runtime.process import run_process
from triolette.runtime.settings import OPTIONS, RunSettings
from triolette.runtime.wiring import apply_settings, describe_settings

if TYPE_CHECKING:
    from triolette.runtime.app import App

logger = logging.getLogger("triolette.run")

EXIT_BAD_SETTINGS = 3
ENV_FILE_FLAG = "--env-file"

_importing: str | None = None  # the app reference `triolette run` is importing, if any
_ENV_LINE = re.compile(r"(?:export\s+)?([A-Za-z_][A-Za-z0-9_]*)\s*=\s*(.*)")
_ESCAPES = re.compile(r"\\(.)")


class RunDuringImportError(SettingsError):
    """``run_app`` (``app.run()``) was called while ``triolette run`` imported the module."""

    def __init__(self, reference: str) -> None:
        super().__init__(
            reference,
            "the module calls app.run() when it is imported, so the app would start "
            "before triolette run applies its settings; call it under "
            '`if __name__ == "__main__":` instead',
        )


class StrictParser(argparse.ArgumentParser):
    """An ``ArgumentParser`` whose usage errors exit with status 3, like bad settings."""

    def error(self, message: str) -> NoReturn:
        self.print_usage(sys.stderr)
        self.exit(EXIT_BAD_SETTINGS, f"error: {message}\n")


def add_setting_flags(
    parser: argparse.ArgumentParser,
    names: Sequence[str] | None = None,
    *,
    default_texts: Mapping[str, str] | None = None,
) -> argparse._ArgumentGroup:
    """Add the flag of every setting in ``names`` (default: all of :data:`OPTIONS`), each
    help naming its variable and default (``default_texts`` may reword a default)."""
    flags = parser.add_argument_group("settings")
    for option in OPTIONS:
        if names is not None and option.name not in names:
            continue
        default = (default_texts or {}).get(option.name, option.default)
        help_text = f"{option.help} (env {option.env}; default {default})".replace("%", "%%")
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
                option.flag, dest=option.name, metavar=option.metavar, default=None, help=help_text
            )
    return flags


def add_run_flags(parser: argparse.ArgumentParser) -> None:
    """Add the flags of ``triolette run`` and ``app.run()``: every setting and ``--env-file``."""
    add_setting_flags(parser).add_argument(
        ENV_FILE_FLAG,
        dest="env_file",
        metavar="FILE",
        default=None,
        help="read KEY=VALUE lines (# comments, optional quotes) as environment variables; "
        "a variable really set wins",
    )


def run_app(app: App, argv: Sequence[str] | None = None) -> None:
    """Run ``app`` with the settings of ``triolette run``: flags from ``argv`` (default
    ``sys.argv[1:]``), ``TRIOLETTE_*`` variables, ``--env-file``; ``--version`` prints the
    app's name and version.

    Always ends in ``SystemExit`` or returns after a clean stop (the app's exit statuses).
    Bad settings: one line on stderr, exit 3. Raises :class:`RunDuringImportError` when
    called while ``triolette run`` imports the app's module.
    """
    if _importing is not None:
        raise RunDuringImportError(_importing)
    parser = StrictParser(description=f"Run the {app.name} bridge until SIGINT or SIGTERM.")
    parser.add_argument("--version", action="store_true", help="print the version and exit")
    add_run_flags(parser)
    args = parser.parse_args(argv)
    if args.version:
        print(f"{app.name} {app.version} (triolette {triolette_version()})")
        raise SystemExit(0)
    try:
        settings = resolve_settings(args, app=app)
    except SettingsError as error:
        _refuse(error)
    launch(app, settings)


def triolette_version() -> str:
    """The installed triolette's version."""
    return importlib.metadata.version("triolette")


def launch(app: App, settings: RunSettings) -> None:
    """Apply ``settings`` to ``app``, log the start-up line, and run the app.

    The one tail of :func:`run_app` and ``triolette run``. A setting that cannot be applied
    is one line on stderr and ``SystemExit(3)``.
    """
    try:
        apply_settings(settings, app)
    except SettingsError as error:
        _refuse(error)
    logger.info("%s: %s", app.name, describe_settings(settings, app))
    run_process(app)  # the one place both run the app


def resolve_settings(
    args: argparse.Namespace,
    environ: Mapping[str, str] | None = None,
    *,
    app: App | None = None,
    warn: bool = True,
) -> RunSettings:
    """The settings from parsed flags, ``environ`` (default ``os.environ``), the env file and
    ``app``'s settings object; logging configured from them, unknown ``TRIOLETTE_*`` variables
    warned about (unless not ``warn``).

    An ``app`` with a ``settings_class`` gets its settings rebuilt first (``app.settings``),
    from the real environment and the ``--env-file`` instead of the class's own env file.
    Raises :class:`~triolette.SettingsError` for a bad value or env file, naming it.
    """
    env = dict(os.environ if environ is None else environ)
    env_file = getattr(args, "env_file", None)
    if env_file is not None:
        from_file = read_env_file(Path(env_file))
        env = {**from_file, **{name: value for name, value in env.items() if value}}
    layer = app_settings_layer(app, None if env_file is None else Path(env_file))
    settings = RunSettings.from_sources(args, env, app_settings=layer)
    handler = configure_logging(settings.log_level, settings.log_format)
    if layer is not None and app is not None:
        log_to_file(app.settings.logging, handler)
    for name in settings.unknown_variables if warn else ():
        logger.warning("%s is not a triolette setting: ignored", name)
    return settings


def log_to_file(logging_settings: Any, like: logging.Handler) -> None:
    """Also log to ``logging_settings.file`` (when set), rotated, formatted as ``like``;
    replaces the file handler of an earlier call. A file that cannot be opened is a
    :class:`~triolette.SettingsError` naming it."""
    root = logging.getLogger()
    for old in [h for h in root.handlers if isinstance(h, _FileHandler)]:
        root.removeHandler(old)
        old.close()
    path = logging_settings.file
    if path is None:
        return
    try:
        handler = _FileHandler(
            path,
            maxBytes=int(logging_settings.max_file_size_mb * 1024 * 1024),
            backupCount=logging_settings.backup_count,
            encoding="utf-8",
        )
    except OSError as error:
        raise SettingsError("logging.file", f"cannot open {path}: {error.strerror}") from None
    handler.setFormatter(like.formatter)
    root.addHandler(handler)


class _FileHandler(logging.handlers.RotatingFileHandler):
    """The log file handler :func:`log_to_file` installs (and replaces on the next call)."""


def app_settings_layer(
    app: App | None, env_file: Path | None
) -> dict[str, tuple[object, str]] | None:
    """Rebuild ``app.settings`` from its ``settings_class`` (honouring ``env_file``) and return
    what they say about the operator settings; ``None`` for an app without a settings class.
    """
    if app is None or app.settings_class is None:
        return None
    from triolette.runtime.app_settings import load_settings, run_settings_layer

    app.settings = load_settings(app.settings_class, env_file)
    return run_settings_layer(app.settings)


def read_env_file(path: Path) -> dict[str, str]:
    """The ``KEY=VALUE`` lines of ``path``: blank lines and ``#`` comments skipped, ``export``
    allowed, a value in single quotes taken as is, in double quotes with ``\\`` escapes,
    unquoted up to a `` #`` comment.

    Raises :class:`~triolette.SettingsError` naming the file and line (never its value, which
    may be a password) for a line it cannot read, a missing or non-UTF-8 file.
    """
    source = f"{ENV_FILE_FLAG} {path}"
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise SettingsError(ENV_FILE_FLAG, f"no such file: {path}") from None
    except UnicodeDecodeError:
        raise SettingsError(source, "is not UTF-8 text") from None
    except OSError as error:
        raise SettingsError(source, f"cannot read it: {error.strerror or error}") from None
    values: dict[str, str] = {}
    for number, line in enumerate(text.splitlines(), start=1):
        line = line.strip()
        if not line or line.startswith("#"):
            continue
        match = _ENV_LINE.fullmatch(line)
        value = _env_value(match.group(2)) if match else None
        if match is None or value is None:
            raise SettingsError(f"{source} line {number}", "expected KEY=VALUE")
        values[match.group(1)] = value
    return values


def _env_value(raw: str) -> str | None:
    """The value of one line, or ``None`` for an unterminated quote."""
    if raw[:1] in ("'", '"'):
        quote = raw[0]
        end = raw.find(quote, 1) if quote == "'" else _closing_double_quote(raw)
        if end < 0 or raw[end + 1 :].strip()[:1] not in ("", "#"):
            return None
        inner = raw[1:end]
        if quote == '"':
            inner = _ESCAPES.sub(lambda m: "\n" if m.group(1) == "n" else m.group(1), inner)
        return inner
    return re.split(r"\s+#", raw, maxsplit=1)[0].strip()


def _closing_double_quote(raw: str) -> int:
    index = 1
    while index < len(raw):
        if raw[index] == "\\":
            index += 2
        elif raw[index] == '"':
            return index
        else:
            index += 1
    return -1


@contextlib.contextmanager
def importing_app(reference: str) -> Iterator[None]:
    """While ``triolette run`` imports ``reference``'s module, :func:`run_app` refuses to run."""
    global _importing
    previous, _importing = _importing, reference
    try:
        yield
    finally:
        _importing = previous


def _refuse(error: SettingsError) -> NoReturn:
    print(f"error: {error}", file=sys.stderr)
    raise SystemExit(EXIT_BAD_SETTINGS) from None
