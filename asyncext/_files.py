"""`FileClient`, the file API shared by the ``local`` and ``sftp`` adapters, and path confinement.

Both clients resolve every path against their root folder before touching the file system, with
the same lexical rules, so that code written for one runs unchanged on the other and neither ever
changes the process's working directory.
"""

from __future__ import annotations

import posixpath
from dataclasses import dataclass
from types import ModuleType
from typing import Protocol, runtime_checkable

from ._errors import PathOutsideRoot


@dataclass(frozen=True)
class FileInfo:
    """Metadata of one file or folder, as returned by `FileClient.stat`."""

    name: str
    size: int
    mtime: float
    """Last modification time, in seconds since the Unix epoch."""
    is_dir: bool


@runtime_checkable
class FileClient(Protocol):
    """File operations confined to one root folder.

    Paths are relative to `root`. An absolute path is accepted only when it lies inside the
    root. A path that leaves the root, through ``..``, an absolute path elsewhere or a symlink
    that points out, raises `PathOutsideRoot`. Missing files and similar failures raise the
    built-in `OSError` subclasses (`FileNotFoundError`, `FileExistsError`, ...).
    """

    @property
    def root(self) -> str:
        """Absolute path of the folder that confines this client."""
        ...

    async def listdir(self, path: str = ".") -> list[str]:
        """Return the sorted names of the entries of a folder, without ``.`` and ``..``."""
        ...

    async def stat(self, path: str) -> FileInfo:
        """Return the metadata of a file or folder, following symlinks inside the root."""
        ...

    async def exists(self, path: str) -> bool:
        """Return whether a file or folder exists. A path outside the root still raises."""
        ...

    async def read_bytes(self, path: str) -> bytes:
        """Return the content of a file."""
        ...

    async def write_bytes(self, path: str, data: bytes) -> None:
        """Create or replace a file with ``data``."""
        ...

    async def read_text(self, path: str, encoding: str = "utf-8") -> str:
        """Return the content of a file decoded with ``encoding``."""
        ...

    async def write_text(self, path: str, text: str, encoding: str = "utf-8") -> None:
        """Create or replace a file with ``text`` encoded with ``encoding``."""
        ...

    async def mkdir(self, path: str, parents: bool = False, exist_ok: bool = False) -> None:
        """Create a folder, and its missing parents when ``parents`` is true."""
        ...

    async def remove(self, path: str) -> None:
        """Delete a file or an empty folder."""
        ...

    async def rename(self, src: str, dst: str) -> None:
        """Move a file or folder to ``dst``, which must not exist yet."""
        ...


def confine(
    root: str, path: str, *, pathmod: ModuleType = posixpath, system: str | None = None
) -> str:
    """Resolve ``path`` against ``root`` and return the absolute, normalised result.

    The resolution is lexical: ``..`` removes the previous component without consulting the
    file system, so ``a/../b`` is ``b``. Clients check symlinks separately, on the file system
    the path belongs to.

    Args:
        root: absolute, normalised root folder.
        path: relative path, or an absolute path inside the root. ``""`` and ``"."`` mean the
            root itself.
        pathmod: `posixpath` for remote paths, `os.path` for local ones.
        system: name of the system the client serves, for the error message.

    Raises:
        PathOutsideRoot: the resolved path is not the root or below it.
        ValueError: the path contains a NUL character, which no file system accepts.
    """
    if "\x00" in path:
        raise ValueError(f"invalid path {path!r}: it contains a NUL character")

    resolved: str = pathmod.normpath(pathmod.join(root, path))
    if not is_inside(root, resolved, pathmod=pathmod):
        owner = f"system {system!r}: " if system is not None else ""
        raise PathOutsideRoot(
            f"{owner}path {path!r} resolves to {resolved!r}, outside the root {root!r}; "
            "use a path relative to the root",
            path=path,
            root=root,
        )
    return resolved


def is_inside(root: str, path: str, *, pathmod: ModuleType = posixpath) -> bool:
    """Return whether the normalised absolute ``path`` is ``root`` or lies below it.

    Whole components are compared, so ``/srv/data_secret`` is not inside ``/srv/data``.
    """
    try:
        common: str = pathmod.commonpath([root, path])
        return common == root
    except ValueError:
        # Raised by commonpath for a mix of absolute and relative paths, or different drives.
        return False


def require_bytes(data: object) -> None:
    """Raise `TypeError` unless ``data`` is bytes-like, before any file is opened.

    Opening a file for writing already empties it, and asyncssh would encode a str without
    complaint, so both clients check first and behave alike.
    """
    if not isinstance(data, (bytes, bytearray, memoryview)):
        raise TypeError(f"a bytes-like object is required, not {type(data).__name__!r}")
