"""The local adapter: confinement to the root folder, no chdir, file I/O off the event loop."""

from __future__ import annotations

import asyncio
import os
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import asyncext
from asyncext import (
    ConnectionFailed,
    ExternalSystem,
    InvalidSystem,
    LocalFileClient,
    PathOutsideRoot,
)


@pytest.fixture
def data_root(tmp_path: Path) -> Path:
    """A root like /srv/data, with a sibling /srv/data_secret and /etc/passwd outside."""
    root = tmp_path / "srv" / "data"
    root.mkdir(parents=True)
    (root / "a").mkdir()
    (root / "b").write_text("inside")
    secret_sibling = tmp_path / "srv" / "data_secret"
    secret_sibling.mkdir()
    (secret_sibling / "x").write_text("sibling secret")
    (tmp_path / "etc").mkdir()
    (tmp_path / "etc" / "passwd").write_text("root:x:0:0")
    return root


def local_system(root: Path, name: str = "files") -> ExternalSystem:
    return ExternalSystem(name=name, system_type="local", remote_path=str(root))


@pytest.mark.parametrize(
    "path",
    [
        "../etc/passwd",
        "../../etc/passwd",
        "a/../../etc",
        "a/../../../etc/passwd",
        "../data_secret/x",
        "./../data_secret",
        "a/./../..",
        "..",
    ],
)
async def test_local_rejects_relative_escape(data_root: Path, path: str) -> None:
    """Relative paths that climb out of the root raise PathOutsideRoot."""
    async with local_system(data_root).client() as files:
        with pytest.raises(PathOutsideRoot):
            await files.read_bytes(path)
        with pytest.raises(PathOutsideRoot):
            await files.write_bytes(path, b"x")


async def test_local_rejects_absolute_path_elsewhere(data_root: Path, tmp_path: Path) -> None:
    """An absolute path outside the root is rejected, one inside it is accepted."""
    async with local_system(data_root).client() as files:
        with pytest.raises(PathOutsideRoot):
            await files.read_text("/etc/passwd")
        with pytest.raises(PathOutsideRoot):
            await files.read_text(str(tmp_path / "etc" / "passwd"))
        assert await files.read_text(str(data_root / "b")) == "inside"


async def test_local_allows_dotdot_inside_root(data_root: Path) -> None:
    """a/../b stays inside the root and is allowed."""
    async with local_system(data_root).client() as files:
        assert await files.read_text("a/../b") == "inside"


async def test_local_rejects_symlink_pointing_out(data_root: Path, tmp_path: Path) -> None:
    """A symlink inside the root that points outside raises PathOutsideRoot."""
    (data_root / "passwd-link").symlink_to(tmp_path / "etc" / "passwd")
    (data_root / "etc-link").symlink_to(tmp_path / "etc")

    async with local_system(data_root).client() as files:
        with pytest.raises(PathOutsideRoot, match="symlink"):
            await files.read_text("passwd-link")
        with pytest.raises(PathOutsideRoot):
            await files.read_text("etc-link/passwd")
        with pytest.raises(PathOutsideRoot):
            await files.write_text("etc-link/new-file", "x")
        with pytest.raises(PathOutsideRoot):
            await files.listdir("etc-link")

    assert not (tmp_path / "etc" / "new-file").exists()


async def test_local_follows_symlink_inside_root(data_root: Path) -> None:
    """A symlink that stays inside the root works like its target."""
    (data_root / "b-link").symlink_to(data_root / "b")

    async with local_system(data_root).client() as files:
        assert await files.read_text("b-link") == "inside"


async def test_local_rejects_root_reached_through_symlink_prefix(tmp_path: Path) -> None:
    """A root given through a symlinked folder still confines to the real folder."""
    real = tmp_path / "real"
    real.mkdir()
    (real / "f").write_text("ok")
    (tmp_path / "outside.txt").write_text("no")
    alias = tmp_path / "alias"
    alias.symlink_to(real)

    async with local_system(alias).client() as files:
        assert await files.read_text("f") == "ok"
        with pytest.raises(PathOutsideRoot):
            await files.read_text("../outside.txt")


@settings(
    max_examples=150, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(
    segments=st.lists(
        st.sampled_from(["..", ".", "a", "b", "", "data", "data_secret", "srv", "etc"]),
        min_size=1,
        max_size=8,
    ),
    absolute=st.booleans(),
)
def test_local_confinement_holds_for_any_segments(
    data_root: Path, segments: list[str], absolute: bool
) -> None:
    """Any mix of segments either resolves inside the root or raises PathOutsideRoot."""
    path = ("/" if absolute else "") + "/".join(segments)
    client = LocalFileClient(str(data_root))

    try:
        resolved = client._resolve(path)
    except PathOutsideRoot:
        return

    real_root = os.path.realpath(data_root)
    real = os.path.realpath(resolved)
    assert real == real_root or real.startswith(real_root + os.sep)


async def test_local_overlapping_clients_keep_their_roots(tmp_path: Path) -> None:
    """Two local clients used concurrently each see only their own root; cwd never changes."""
    cwd_before = os.getcwd()
    roots = [tmp_path / "one", tmp_path / "two"]
    for root in roots:
        root.mkdir()

    async def work(root: Path, tag: str) -> list[str]:
        async with local_system(root, name=tag).client() as files:
            for index in range(20):
                await files.write_text(f"{tag}-{index}.txt", tag)
                assert os.getcwd() == cwd_before
                await asyncio.sleep(0)
            return await files.listdir()

    one, two = await asyncio.gather(work(roots[0], "one"), work(roots[1], "two"))

    assert one == sorted(f"one-{index}.txt" for index in range(20))
    assert two == sorted(f"two-{index}.txt" for index in range(20))
    assert os.getcwd() == cwd_before


def test_local_package_never_changes_directory() -> None:
    """No module of the package calls chdir, which would change every task's paths."""
    package = Path(asyncext.__file__).parent
    offenders = [
        str(source.relative_to(package))
        for source in package.rglob("*.py")
        if "chdir" in source.read_text(encoding="utf-8")
    ]
    assert offenders == []


async def test_local_file_io_runs_off_event_loop(data_root: Path) -> None:
    """A read that blocks in the OS leaves the event loop free for other tasks."""
    fifo = data_root / "pipe"
    os.mkfifo(fifo)

    async with local_system(data_root).client() as files:
        # Opening a FIFO for reading blocks until a writer opens it; on the event loop that
        # would freeze this test, so the ticks below prove the read runs in a thread.
        reader = asyncio.create_task(files.read_bytes("pipe"))
        ticks = 0
        for _ in range(5):
            await asyncio.sleep(0.01)
            ticks += 1
        assert not reader.done()

        def write_to_fifo() -> None:
            with open(fifo, "wb") as writer:
                writer.write(b"through the pipe")

        await asyncio.to_thread(write_to_fifo)
        assert await asyncio.wait_for(reader, timeout=5) == b"through the pipe"

    assert ticks == 5


def test_local_validate_requires_absolute_remote_path() -> None:
    """remote_path is required and must be absolute."""
    with pytest.raises(InvalidSystem, match="needs remote_path"):
        ExternalSystem(name="files", system_type="local")
    with pytest.raises(InvalidSystem, match="not an absolute path"):
        ExternalSystem(name="files", system_type="local", remote_path="data/files")


async def test_local_missing_root_is_connection_failed(tmp_path: Path) -> None:
    """A root folder that does not exist fails the connection, naming the folder."""
    system = local_system(tmp_path / "missing")

    with pytest.raises(ConnectionFailed, match="missing"):
        async with system.client():
            pass

    report = await system.test_connection()
    assert report.ok is False
    assert "does not exist" in report.detail


async def test_local_rename_refuses_existing_target(data_root: Path) -> None:
    """rename() keeps an existing target, as SFTP servers do."""
    async with local_system(data_root).client() as files:
        await files.write_text("c", "new")
        with pytest.raises(FileExistsError):
            await files.rename("c", "b")
        assert await files.read_text("b") == "inside"


async def test_local_remove_refuses_root(data_root: Path) -> None:
    """remove('.') cannot delete the root folder itself."""
    async with local_system(data_root).client() as files:
        with pytest.raises(PermissionError, match="root"):
            await files.remove(".")
    assert data_root.is_dir()
