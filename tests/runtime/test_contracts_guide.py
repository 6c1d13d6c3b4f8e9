"""The runtime guide's "Typed state and payloads" examples pass as written, run by pytest."""

from __future__ import annotations

from pathlib import Path

from tests.helpers import doc_blocks, run_blocks_as_tests


def test_the_typed_state_examples_pass_as_written(tmp_path: Path) -> None:
    blocks = doc_blocks("runtime.md", section="Typed state and payloads")
    assert len(blocks) == 2
    run_blocks_as_tests(tmp_path, blocks)
