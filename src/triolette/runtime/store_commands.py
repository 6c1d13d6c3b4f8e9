"""The ``triolette store`` commands: ``show`` and ``copy`` on any store location.

A location is a store file (backend by suffix), ``json:PATH``, ``sqlite:PATH`` or a server
store's URL (``postgresql://...``, ``redis://...``). Server URLs are only ever shown without
their password.
"""

from __future__ import annotations

import argparse
import json
import re
import sqlite3
import sys
from pathlib import Path
from typing import Any

from triolette.core.errors import SettingsError, StoreOpenError, TrioletteError
from triolette.core.jsonstate import decode_document, decode_state
from triolette.runtime.launch import EXIT_BAD_SETTINGS
from triolette.runtime.setting_checks import FILE_SCHEMES, StoreKind, store_kind
from triolette.runtime.wiring import describe_store, store_for_location
from triolette.stores.jsonfile import REVISIONS_KEY, VERSIONS_KEY
from triolette.stores.protocol import BatchStore

EXIT_OK = 0
EXIT_NOT_SAVED = 1

# What `store show` accepts besides a store file: the copies a store keeps beside it.
_BACKUP_SUFFIX = re.compile(r"\.(?:last-good|corrupt-\d{8}T\d{6}Z(?:-\d+)?)$")


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


def store_show(args: argparse.Namespace) -> int:
    """``triolette store show``: print ``{device: state}`` on stdout, and each device's
    revision and state version (and, for a server store, write time) on stderr; the exit
    status."""
    if _is_server(args.path):
        return _show_server(args.path)
    kind, text = _explicit_file_kind(args.path)
    path = _existing_store_file("PATH", text)
    kind = kind or shown_store_kind(path)
    try:
        states = read_states(path, kind)
        stamps = read_stamps(path, kind)
    except (OSError, sqlite3.OperationalError) as error:  # not there for us to read
        print(f"error: cannot open {args.path}: {_reason(error)}", file=sys.stderr)
        return EXIT_BAD_SETTINGS
    except (ValueError, sqlite3.Error) as error:  # damaged
        print(f"error: cannot read {args.path}: {error}", file=sys.stderr)
        return EXIT_NOT_SAVED
    json.dump(states, sys.stdout, indent=2, sort_keys=True, ensure_ascii=False)
    print(flush=True)
    for key in sorted(states):
        revision, version = stamps.get(key, (0, 0))
        print(f"# {key}: revision {revision}, version {version}", file=sys.stderr)
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
        print(
            f"# {key}: revision {record.revision}, version {record.version}, written {written}",
            file=sys.stderr,
        )
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
        document = decode_document(path.read_text(encoding="utf-8"))
        document.pop(REVISIONS_KEY, None)
        document.pop(VERSIONS_KEY, None)
        return document
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


def read_stamps(path: Path, kind: StoreKind | None = None) -> dict[str, tuple[int, int]]:
    """Each device's ``(revision, version)`` in a store file (0 where none is recorded), read
    like :func:`read_states`."""
    if (kind or shown_store_kind(path)) == "json":
        document = decode_document(path.read_text(encoding="utf-8"))
        revisions, versions = document.get(REVISIONS_KEY, {}), document.get(VERSIONS_KEY, {})
        return {key: (_number(revisions, key), _number(versions, key)) for key in document}
    is_copy = _BACKUP_SUFFIX.search(path.name) is not None
    uri = f"{path.absolute().as_uri()}?{'immutable=1' if is_copy else 'mode=ro'}"
    db = sqlite3.connect(uri, uri=True)
    try:
        columns = {row[1] for row in db.execute("PRAGMA table_info(store)")}
        wanted = [name if name in columns else "0" for name in ("revision", "version")]
        rows = db.execute(f"SELECT key, {', '.join(wanted)} FROM store").fetchall()
    finally:
        db.close()
    return {key: (revision, version) for key, revision, version in rows}


def _number(entry: object, key: str) -> int:
    value = entry.get(key, 0) if isinstance(entry, dict) else 0
    return value if isinstance(value, int) and not isinstance(value, bool) else 0


def store_copy(args: argparse.Namespace) -> int:
    """``triolette store copy``: every state from SRC into an empty DST; the exit status."""
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
            _copy_versions(source, target, list(states))
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


def _copy_versions(source: BatchStore, target: BatchStore, keys: list[str]) -> None:
    """Have ``target`` record each state with the version ``source`` holds it at: a copy
    that lost them would run the migrations again over migrated states."""
    load: Any = getattr(source, "load_versions", None)
    declare: Any = getattr(target, "declare_versions", None)
    if load is not None and declare is not None:
        declare(load(keys))


def _reason(error: Exception) -> str:
    return getattr(error, "strerror", None) or str(error)


def _devices(count: int) -> str:
    return f"{count} device" if count == 1 else f"{count} devices"
