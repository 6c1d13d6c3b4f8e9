"""The runtime guide's "Typed state and payloads" examples pass as written, run by pytest."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

GUIDE = Path(__file__).parents[2] / "docs" / "runtime.md"


def test_the_typed_state_examples_pass_as_written(tmp_path: Path) -> None:
    text = GUIDE.read_text()
    start = text.index("\n## Typed state and payloads\n")
    section = text[start : text.index("\n## ", start + 1)]
    blocks = re.findall(r"```python\n(.*?)```", section, re.DOTALL)
    assert len(blocks) == 2
    (tmp_path / "test_typed_state.py").write_text("\n\n".join(blocks))
    (tmp_path / "pytest.ini").write_text("[pytest]\ntrio_mode = true\n")
    result = subprocess.run(
        [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", "-W", "error"],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    assert f"{len(blocks)} passed" in result.stdout
