"""The schedules guide's examples pass as written, run by pytest as a user runs them."""

from __future__ import annotations

from pathlib import Path

from tests.helpers import doc_blocks, run_blocks_as_tests


def test_the_schedules_guide_examples_pass_as_written(tmp_path: Path) -> None:
    run_blocks_as_tests(tmp_path, doc_blocks("schedules.md"))
