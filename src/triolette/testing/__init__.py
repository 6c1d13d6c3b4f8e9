"""Helpers for testing triolette apps and backends."""

from triolette.testing.conformance import check_store as check_store

__all__ = ["check_store"]

for _name in __all__:
    globals()[_name].__module__ = __name__
del _name
