"""Property tests of path confinement: random paths never reach outside a local or sftp root.

Each example rebuilds a root with links that point inside, outside and nowhere, runs one
FileClient operation on random paths, and checks the files outside the root byte for byte.
"""

from __future__ import annotations

import shutil
import uuid
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from sshd import SSHServer
from strategies import relative_paths

from asyncext import ExternalSystem, PathOutsideRoot

OPERATIONS = ("write", "read", "listdir", "stat", "exists", "mkdir", "remove", "rename")
INSIDE_NAMES = {"a", "b", "link_in", "link_out", "link_up", "dangling"}
OUTSIDE_TEXT = {"etc/passwd": "root:x:0:0", "srv/data_secret/x": "sibling secret"}
MARK = b"written-by-the-path-test"


@dataclass
class PathLayout:
    """A root at ``base/srv/data`` and the files around it that must stay out of reach."""

    base: Path
    client: Any

    @property
    def root(self) -> Path:
        return self.base / "srv" / "data"

    def rebuild(self) -> None:
        """Create the root afresh, with its links, and the outside files."""
        shutil.rmtree(self.base / "srv", ignore_errors=True)
        shutil.rmtree(self.base / "etc", ignore_errors=True)
        root = self.root
        (root / "a").mkdir(parents=True)
        (root / "a" / "inner.txt").write_text("inner")
        (root / "b").write_text("inside")
        (root / "link_in").symlink_to(root / "a")
        (root / "link_out").symlink_to(self.base / "etc")
        (root / "link_up").symlink_to("..")
        (root / "dangling").symlink_to(self.base / "nowhere" / "x")
        for relative, text in OUTSIDE_TEXT.items():
            (self.base / relative).parent.mkdir(parents=True, exist_ok=True)
            (self.base / relative).write_text(text)

    def outside_snapshot(self) -> dict[str, bytes | str]:
        """Return every path under ``base`` but outside the root, with its content or link."""
        snapshot: dict[str, bytes | str] = {}
        for path in sorted(self.base.rglob("*")):
            if path == self.root or self.root in path.parents:
                continue
            key = str(path.relative_to(self.base))
            if path.is_symlink():
                snapshot[key] = f"-> {path.readlink()}"
            elif path.is_dir():
                snapshot[key] = "folder"
            else:
                snapshot[key] = path.read_bytes()
        return snapshot


async def apply(client: Any, operation: str, path: str, other: str) -> Any:
    """Run one FileClient operation on ``path`` (and ``other`` for rename)."""
    if operation == "write":
        return await client.write_bytes(path, MARK)
    if operation == "read":
        return await client.read_bytes(path)
    if operation == "listdir":
        return await client.listdir(path)
    if operation == "stat":
        return await client.stat(path)
    if operation == "exists":
        return await client.exists(path)
    if operation == "mkdir":
        return await client.mkdir(path, parents=True, exist_ok=True)
    if operation == "remove":
        return await client.remove(path)
    return await client.rename(path, other)


async def check_confined(
    layout: PathLayout, operation: str, path: str, other: str, anchor: str
) -> None:
    """Assert that the operation stays in the root, whatever it returns or raises.

    ``anchor`` puts the absolute path of the root or of the folder around it in front of
    ``path``, for absolute paths that start inside or next to the root.
    """
    layout.rebuild()
    if anchor == "root":
        path = f"{layout.root}/{path}"
    elif anchor == "base":
        path = f"{layout.base}/{path}"
    before = layout.outside_snapshot()
    try:
        result = await apply(layout.client, operation, path, other)
    except (PathOutsideRoot, OSError, ValueError):
        # Rejected, or failed inside the root as the local file system would (missing
        # file, not a folder, NUL in the path, ...).
        result = None

    assert layout.outside_snapshot() == before, f"{operation} {path!r} {other!r}"
    if operation == "read" and result is not None:
        assert result.decode(errors="replace") not in OUTSIDE_TEXT.values()
    if operation == "listdir" and result is not None:
        assert set(result) <= INSIDE_NAMES | {"inner.txt"}, f"listdir {path!r}: {result}"


path_cases = {
    "operation": st.sampled_from(OPERATIONS),
    "path": relative_paths(),
    "other": relative_paths(),
    "anchor": st.sampled_from(["", "root", "base"]),
}


@pytest.fixture
async def local_layout(tmp_path: Path) -> AsyncIterator[PathLayout]:
    layout = PathLayout(base=tmp_path / "base", client=None)
    layout.rebuild()
    system = ExternalSystem(name="paths", system_type="local", remote_path=str(layout.root))
    async with system.client() as client:
        layout.client = client
        yield layout


@pytest.fixture
async def sftp_layout(sshd: SSHServer) -> AsyncIterator[PathLayout]:
    layout = PathLayout(base=sshd.folder / "paths" / uuid.uuid4().hex, client=None)
    layout.rebuild()
    async with sshd.system("sftp", name="paths", remote_path=str(layout.root)).client() as client:
        layout.client = client
        yield layout
    shutil.rmtree(layout.base, ignore_errors=True)


@settings(
    max_examples=200, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(**path_cases)
async def test_local_paths_stay_in_root(
    local_layout: PathLayout, operation: str, path: str, other: str, anchor: str
) -> None:
    """No operation on random local paths reads, writes or lists anything outside the root."""
    await check_confined(local_layout, operation, path, other, anchor)


@settings(
    max_examples=100, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(**path_cases)
async def test_sftp_paths_stay_in_root(
    sftp_layout: PathLayout, operation: str, path: str, other: str, anchor: str
) -> None:
    """No operation on random sftp paths reads, writes or lists anything outside the root."""
    await check_confined(sftp_layout, operation, path, other, anchor)
