"""The README's commands are the ones CI runs."""

from __future__ import annotations

import re
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def test_readme_test_command_matches_ci() -> None:
    """CI runs the README's test command word for word."""
    ci_script = (ROOT / ".ci" / "run").read_text()
    match = re.search(r'^TEST_COMMAND="(.+)"$', ci_script, re.MULTILINE)
    assert match is not None

    readme = (ROOT / "README.md").read_text()
    assert match.group(1) in readme.splitlines()
