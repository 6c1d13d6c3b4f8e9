"""The file names a file store leaves next to its file, as ``ls -a`` shows them."""

from __future__ import annotations

from pathlib import Path


def temp_prefix(path: Path) -> str:
    """How the temp file of a write to ``path`` starts (a crash can leave one behind)."""
    return f".{path.name}.tmp-"


def corrupt_files(path: Path) -> list[Path]:
    """The quarantined copies of ``path`` (``<name>.corrupt-<UTC time>``), oldest first."""
    return sorted(path.parent.glob(f"{path.name}.corrupt-*"))
