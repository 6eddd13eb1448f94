"""The README's commands are the ones CI runs, and its links lead somewhere."""

from __future__ import annotations

import re
import shlex
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent

QUICK_START_COMMAND = (
    "python3 -m venv .venv && .venv/bin/pip install . && .venv/bin/python examples/quickstart.py"
)

# A Markdown link [text](target), excluding images; the target ends at ')' or a space.
LINK = re.compile(r"(?<!!)\[[^\]]*\]\(([^)\s]+)\)")


def ci_test_command() -> str:
    ci_script = (ROOT / ".ci" / "run").read_text()
    match = re.search(r'^TEST_COMMAND="(.+)"$', ci_script, re.MULTILINE)
    assert match is not None
    return match.group(1)


def quick_start_commands() -> list[str]:
    """Return the shell commands of the README's Quick start section, in order."""
    readme = (ROOT / "README.md").read_text()
    section = re.search(r"^## Quick start\n(.*?)(?=^## )", readme, re.MULTILINE | re.DOTALL)
    assert section is not None, "README.md has no '## Quick start' section"
    blocks = re.findall(r"^```sh\n(.*?)^```", section.group(1), re.MULTILINE | re.DOTALL)
    return [line for block in blocks for line in block.splitlines() if line.strip()]


def test_readme_test_command_matches_ci() -> None:
    """CI runs the README's test command word for word."""
    readme = (ROOT / "README.md").read_text()
    assert ci_test_command() in readme.splitlines()


def test_readme_quick_start_two_commands() -> None:
    """The quick start is two commands: run examples/quickstart.py, then the tests."""
    commands = quick_start_commands()

    assert commands == [QUICK_START_COMMAND, ci_test_command()]


def test_readme_quick_start_runs_quickstart() -> None:
    """The first quick start command installs the package and runs an existing example."""
    steps = [shlex.split(step) for step in quick_start_commands()[0].split("&&")]

    assert steps[0] == ["python3", "-m", "venv", ".venv"]
    assert steps[1] == [".venv/bin/pip", "install", "."]
    assert steps[2][0] == ".venv/bin/python"
    assert steps[2][1:] == ["examples/quickstart.py"]
    assert (ROOT / steps[2][1]).is_file()


def test_readme_links_exist() -> None:
    """Every relative link in the README and in docs/ points to an existing file."""
    pages = [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]
    checked = 0
    broken = []
    for page in pages:
        for target in LINK.findall(page.read_text()):
            if target.startswith(("http://", "https://", "#")):
                continue
            checked += 1
            path = target.split("#", 1)[0]
            if not (page.parent / path).exists():
                broken.append(f"{page.relative_to(ROOT)}: {target}")
    assert checked > 0
    assert broken == []
