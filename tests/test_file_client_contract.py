"""The FileClient contract, run unchanged against the ``local`` and ``sftp`` adapters.

Each test gets a root like /srv/data with a folder ``a``, a file ``b`` and, next to the root,
a sibling ``data_secret`` and an ``etc/passwd`` that must stay out of reach. The SFTP server
is OpenSSH's sshd on this machine, so the tests arrange files and symlinks directly on disk.
"""

from __future__ import annotations

import errno
import os
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from asyncext import ExternalSystem, FileClient, PathOutsideRoot


@dataclass
class Layout:
    client: Any
    root: Path
    outside: Path
    """The folder that holds ``srv`` and ``etc``, outside the root."""


@pytest.fixture(params=["local", "sftp"])
async def files(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[Layout]:
    """A FileClient of each adapter over the same folder layout."""
    if request.param == "local":
        base = tmp_path
    else:
        server = request.getfixturevalue("sshd")
        base = server.folder / "contract" / uuid.uuid4().hex
    root = base / "srv" / "data"
    root.mkdir(parents=True)
    (root / "a").mkdir()
    (root / "b").write_text("inside")
    (base / "srv" / "data_secret").mkdir()
    (base / "srv" / "data_secret" / "x").write_text("sibling secret")
    (base / "etc").mkdir()
    (base / "etc" / "passwd").write_text("root:x:0:0")

    if request.param == "local":
        system = ExternalSystem(name="box", system_type="local", remote_path=str(root))
    else:
        system = server.system("sftp", remote_path=str(root))
    async with system.client() as client:
        yield Layout(client=client, root=root, outside=base)


ESCAPES = [
    "../etc/passwd",
    "../../etc/passwd",
    "a/../../etc",
    "a/../../../etc/passwd",
    "../data_secret/x",
    "./../data_secret",
    "a/./../..",
    "..",
    "a/..//../b",
]


def operations(client: Any, path: str) -> dict[str, Callable[[], Awaitable[object]]]:
    """Every FileClient method applied to ``path``, by name."""
    return {
        "listdir": lambda: client.listdir(path),
        "stat": lambda: client.stat(path),
        "exists": lambda: client.exists(path),
        "read_bytes": lambda: client.read_bytes(path),
        "read_text": lambda: client.read_text(path),
        "write_bytes": lambda: client.write_bytes(path, b"x"),
        "write_text": lambda: client.write_text(path, "x"),
        "mkdir": lambda: client.mkdir(path),
        "mkdir_parents": lambda: client.mkdir(path, parents=True, exist_ok=True),
        "remove": lambda: client.remove(path),
        "rename_from": lambda: client.rename(path, "moved"),
        "rename_to": lambda: client.rename("b", path),
    }


async def assert_outside(client: Any, path: str) -> None:
    for name, operation in operations(client, path).items():
        with pytest.raises(PathOutsideRoot):
            await operation()
            pytest.fail(f"{name}({path!r}) did not raise PathOutsideRoot")


# --- protocol and listing --------------------------------------------------------------


async def test_file_client_implements_protocol(files: Layout) -> None:
    """Both clients satisfy the FileClient protocol and report their root."""
    assert isinstance(files.client, FileClient)
    assert files.client.root == str(files.root)


async def test_listdir_returns_sorted_names(files: Layout) -> None:
    """listdir lists the root's entries sorted, without . and .."""
    (files.root / "c").write_text("")
    (files.root / "a" / "z").write_text("")
    assert await files.client.listdir() == ["a", "b", "c"]
    assert await files.client.listdir(".") == ["a", "b", "c"]
    assert await files.client.listdir("a") == ["z"]


async def test_listdir_missing_folder(files: Layout) -> None:
    """listdir of a missing folder raises FileNotFoundError."""
    with pytest.raises(FileNotFoundError):
        await files.client.listdir("missing")


async def test_listdir_of_file(files: Layout) -> None:
    """listdir of a file raises NotADirectoryError."""
    with pytest.raises(NotADirectoryError):
        await files.client.listdir("b")


# --- stat and exists -------------------------------------------------------------------


async def test_stat_file(files: Layout) -> None:
    """stat returns a file's name, size, modification time and kind."""
    info = await files.client.stat("b")
    assert info.name == "b"
    assert info.size == len("inside")
    assert not info.is_dir
    assert abs(info.mtime - os.stat(files.root / "b").st_mtime) < 1.0


async def test_stat_folder_and_root(files: Layout) -> None:
    """stat of a folder and of the root reports a folder named after it."""
    assert (await files.client.stat("a")).is_dir
    root_info = await files.client.stat(".")
    assert root_info.is_dir
    assert root_info.name == "data"


async def test_stat_missing(files: Layout) -> None:
    """stat of a missing path raises FileNotFoundError, in the root and below it."""
    with pytest.raises(FileNotFoundError):
        await files.client.stat("missing")
    with pytest.raises(FileNotFoundError):
        await files.client.stat("a/missing")


async def test_stat_below_a_file(files: Layout) -> None:
    """stat of a path below a file raises NotADirectoryError."""
    with pytest.raises(NotADirectoryError):
        await files.client.stat("b/x")


async def test_exists(files: Layout) -> None:
    """exists is true for files and folders and false for missing paths."""
    assert await files.client.exists("b")
    assert await files.client.exists("a")
    assert await files.client.exists(".")
    assert not await files.client.exists("missing")
    assert not await files.client.exists("a/missing")
    assert not await files.client.exists("b/x")


async def test_absolute_path_inside_root(files: Layout) -> None:
    """An absolute path inside the root is accepted."""
    assert await files.client.read_text(str(files.root / "b")) == "inside"


async def test_dotdot_that_stays_inside(files: Layout) -> None:
    """a/../b resolves to b inside the root."""
    assert await files.client.read_text("a/../b") == "inside"


# --- reading and writing ---------------------------------------------------------------


async def test_write_and_read_bytes(files: Layout) -> None:
    """write_bytes creates and replaces a file; read_bytes returns its content."""
    await files.client.write_bytes("new.bin", b"\x00\x01" * 40000)
    assert await files.client.read_bytes("new.bin") == b"\x00\x01" * 40000
    await files.client.write_bytes("new.bin", b"short")
    assert (files.root / "new.bin").read_bytes() == b"short"


async def test_write_and_read_text_encoding(files: Layout) -> None:
    """read_text and write_text use the given encoding."""
    await files.client.write_text("a/t.txt", "héllo")
    assert (files.root / "a" / "t.txt").read_bytes() == "héllo".encode()
    await files.client.write_text("latin.txt", "héllo", encoding="latin-1")
    assert await files.client.read_text("latin.txt", encoding="latin-1") == "héllo"
    assert (files.root / "latin.txt").read_bytes() == "héllo".encode("latin-1")


async def test_read_missing_file(files: Layout) -> None:
    """read_bytes of a missing file raises FileNotFoundError."""
    with pytest.raises(FileNotFoundError):
        await files.client.read_bytes("missing")


async def test_read_folder(files: Layout) -> None:
    """read_bytes of a folder raises IsADirectoryError."""
    with pytest.raises(IsADirectoryError):
        await files.client.read_bytes("a")


async def test_write_to_folder(files: Layout) -> None:
    """write_bytes onto a folder raises IsADirectoryError."""
    with pytest.raises(IsADirectoryError):
        await files.client.write_bytes("a", b"x")


async def test_write_into_missing_folder(files: Layout) -> None:
    """write_bytes into a missing folder raises FileNotFoundError."""
    with pytest.raises(FileNotFoundError):
        await files.client.write_bytes("missing/x", b"x")


async def test_write_below_a_file(files: Layout) -> None:
    """write_bytes below a file raises NotADirectoryError."""
    with pytest.raises(NotADirectoryError):
        await files.client.write_bytes("b/x", b"x")


# --- folders -----------------------------------------------------------------------------


async def test_mkdir(files: Layout) -> None:
    """mkdir creates one folder."""
    await files.client.mkdir("new")
    assert (files.root / "new").is_dir()


async def test_mkdir_existing(files: Layout) -> None:
    """mkdir of an existing folder or file raises FileExistsError unless exist_ok allows it."""
    with pytest.raises(FileExistsError):
        await files.client.mkdir("a")
    with pytest.raises(FileExistsError):
        await files.client.mkdir(".")
    await files.client.mkdir("a", exist_ok=True)
    with pytest.raises(FileExistsError):
        await files.client.mkdir("b", exist_ok=True)


async def test_mkdir_missing_parent(files: Layout) -> None:
    """mkdir without parents raises FileNotFoundError when the parent is missing."""
    with pytest.raises(FileNotFoundError):
        await files.client.mkdir("x/y")


async def test_mkdir_parents(files: Layout) -> None:
    """mkdir with parents creates every missing folder and honours exist_ok."""
    await files.client.mkdir("x/y/z", parents=True)
    assert (files.root / "x" / "y" / "z").is_dir()
    with pytest.raises(FileExistsError):
        await files.client.mkdir("x/y/z", parents=True)
    await files.client.mkdir("x/y/z", parents=True, exist_ok=True)
    await files.client.mkdir("a", parents=True, exist_ok=True)
    with pytest.raises(FileExistsError):
        await files.client.mkdir("b", parents=True, exist_ok=True)


async def test_mkdir_parents_below_a_file(files: Layout) -> None:
    """mkdir with parents below a file raises NotADirectoryError."""
    with pytest.raises(NotADirectoryError):
        await files.client.mkdir("b/x", parents=True)


# --- remove and rename -----------------------------------------------------------------


async def test_remove_file_and_empty_folder(files: Layout) -> None:
    """remove deletes a file and an empty folder."""
    await files.client.remove("b")
    await files.client.remove("a")
    assert await files.client.listdir() == []


async def test_remove_folder_not_empty(files: Layout) -> None:
    """remove of a folder with entries raises OSError with ENOTEMPTY and keeps it."""
    (files.root / "a" / "z").write_text("")
    with pytest.raises(OSError) as raised:
        await files.client.remove("a")
    assert raised.value.errno == errno.ENOTEMPTY
    assert (files.root / "a" / "z").exists()


async def test_remove_missing(files: Layout) -> None:
    """remove of a missing path raises FileNotFoundError."""
    with pytest.raises(FileNotFoundError):
        await files.client.remove("missing")


async def test_remove_root(files: Layout) -> None:
    """remove of the root raises PermissionError and keeps it."""
    with pytest.raises(PermissionError):
        await files.client.remove(".")
    assert files.root.is_dir()


async def test_remove_link_to_inside_folder(files: Layout) -> None:
    """remove of a link to a folder inside the root deletes the link, not the folder."""
    (files.root / "link").symlink_to(files.root / "a")
    await files.client.remove("link")
    assert not (files.root / "link").is_symlink()
    assert (files.root / "a").is_dir()


async def test_rename_file_and_folder(files: Layout) -> None:
    """rename moves a file and a folder."""
    await files.client.rename("b", "a/b2")
    await files.client.rename("a", "c")
    assert (files.root / "c" / "b2").read_text() == "inside"


async def test_rename_onto_existing(files: Layout) -> None:
    """rename onto an existing file or folder raises FileExistsError and changes nothing."""
    (files.root / "c").write_text("other")
    with pytest.raises(FileExistsError):
        await files.client.rename("b", "c")
    with pytest.raises(FileExistsError):
        await files.client.rename("b", "a")
    assert (files.root / "b").read_text() == "inside"
    assert (files.root / "c").read_text() == "other"


async def test_rename_missing_source(files: Layout) -> None:
    """rename of a missing source raises FileNotFoundError."""
    with pytest.raises(FileNotFoundError):
        await files.client.rename("missing", "c")


# --- confinement -------------------------------------------------------------------------


@pytest.mark.parametrize("path", ESCAPES)
async def test_relative_escape(files: Layout, path: str) -> None:
    """Every method rejects relative paths that climb out of the root."""
    await assert_outside(files.client, path)


async def test_absolute_path_outside(files: Layout) -> None:
    """Every method rejects absolute paths outside the root, siblings with a shared prefix too."""
    await assert_outside(files.client, str(files.outside / "etc" / "passwd"))
    await assert_outside(files.client, str(files.outside / "srv" / "data_secret" / "x"))
    await assert_outside(files.client, "/")


async def test_symlink_to_outside_file(files: Layout) -> None:
    """A link inside the root to a file outside is rejected by every method."""
    passwd = files.outside / "etc" / "passwd"
    (files.root / "out").symlink_to(passwd)
    await assert_outside(files.client, "out")
    assert passwd.read_text() == "root:x:0:0"


async def test_symlink_to_outside_folder(files: Layout) -> None:
    """Paths through a link to a folder outside are rejected, at any depth."""
    (files.root / "out").symlink_to(files.outside / "etc")
    (files.root / "a" / "up").symlink_to("../../../etc")
    await assert_outside(files.client, "out/passwd")
    await assert_outside(files.client, "a/up/passwd")
    await assert_outside(files.client, "a/up/missing/deeper")
    assert (files.outside / "etc" / "passwd").read_text() == "root:x:0:0"


async def test_symlink_to_shared_prefix_sibling(files: Layout) -> None:
    """A link to the sibling folder whose name starts like the root's is rejected."""
    (files.root / "sibling").symlink_to(files.outside / "srv" / "data_secret")
    await assert_outside(files.client, "sibling/x")


async def test_dangling_symlink_to_outside(files: Layout) -> None:
    """A link to a missing path outside the root is rejected, not followed."""
    (files.root / "dangling").symlink_to(files.outside / "etc" / "missing")
    (files.root / "deep").symlink_to(files.outside / "missing" / "deeper" / "x")
    with pytest.raises(PathOutsideRoot):
        await files.client.exists("dangling")
    with pytest.raises(PathOutsideRoot):
        await files.client.write_bytes("dangling", b"x")
    with pytest.raises(PathOutsideRoot):
        await files.client.write_bytes("deep", b"x")
    assert not (files.outside / "etc" / "missing").exists()


async def test_symlink_inside_root(files: Layout) -> None:
    """Links that stay inside the root work like the paths they point to."""
    (files.root / "same").symlink_to(files.root / "b")
    (files.root / "a" / "back").symlink_to("..")
    assert await files.client.read_text("same") == "inside"
    assert (await files.client.stat("same")).size == len("inside")
    assert await files.client.read_text("a/back/b") == "inside"
    assert await files.client.listdir("a/back/a") == ["back"]


async def test_contract_escape_names_system(files: Layout) -> None:
    """PathOutsideRoot names the system, for a climb out and for a symlink out."""
    (files.root / "out-link").symlink_to(files.outside / "etc")

    with pytest.raises(PathOutsideRoot) as climbed:
        await files.client.read_text("../etc/passwd")
    with pytest.raises(PathOutsideRoot) as linked:
        await files.client.read_text("out-link/passwd")

    assert "system 'box'" in str(climbed.value)
    assert "system 'box'" in str(linked.value)


async def test_contract_write_bytes_rejects_text(files: Layout) -> None:
    """write_bytes() takes bytes only, on every adapter, and writes nothing for text."""
    with pytest.raises(TypeError, match="bytes-like"):
        await files.client.write_bytes("note.txt", "text")  # type: ignore[arg-type]

    assert not (files.root / "note.txt").exists()
