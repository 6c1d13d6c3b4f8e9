"""Helpers for testing triolette apps and backends."""

from triolette.core.exports import claim_public_names
from triolette.testing.conformance import check_store as check_store

__all__ = ["check_store"]

claim_public_names(globals())
del claim_public_names
