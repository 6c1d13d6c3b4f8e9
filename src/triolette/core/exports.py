"""How a public namespace claims its names, so reprs and tracebacks show the import that works."""

from __future__ import annotations

from typing import Any


def claim_public_names(namespace: dict[str, Any]) -> None:
    """Set ``__module__`` of every name in the namespace's ``__all__`` to that namespace."""
    for name in namespace["__all__"]:
        namespace[name].__module__ = namespace["__name__"]
