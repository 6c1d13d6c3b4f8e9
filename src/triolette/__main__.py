"""``python -m triolette``: the ``triolette`` command (see :mod:`triolette.runtime.cli`)."""

from __future__ import annotations

from triolette.runtime.cli import main

if __name__ == "__main__":
    raise SystemExit(main())
