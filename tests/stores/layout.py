"""The file names a file store leaves next to its file, as ``ls -a`` shows them."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any


def temp_prefix(path: Path) -> str:
    """How the temp file of a write to ``path`` starts (a crash can leave one behind)."""
    return f".{path.name}.tmp-"


def corrupt_files(path: Path) -> list[Path]:
    """The quarantined copies of ``path`` (``<name>.corrupt-<UTC time>``), oldest first."""
    return sorted(path.parent.glob(f"{path.name}.corrupt-*"))


def devices_in(raw: bytes) -> dict[str, Any]:
    """The device states of a JSON store file's bytes, without its revisions entry."""
    from triolette.stores.jsonfile import REVISIONS_KEY

    document: dict[str, Any] = json.loads(raw)
    document.pop(REVISIONS_KEY, None)
    return document
