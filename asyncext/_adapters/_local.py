"""The ``local`` adapter: a folder on this machine, served through `FileClient`.

Blocking file calls run in worker threads, so a slow disk never stalls the event loop. The
process's working directory is never changed: every path is resolved to an absolute one.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from typing import TYPE_CHECKING, TypeVar

import anyio.to_thread

from .._errors import InvalidSystem, PathOutsideRoot
from .._files import FileInfo, confine, is_inside, require_bytes
from .._validation import shorten
from ._base import Adapter
from ._registry import register_adapter

if TYPE_CHECKING:
    from .._system import ExternalSystem

T = TypeVar("T")


class LocalFileClient:
    """A `FileClient` confined to a folder on this machine.

    A path is first resolved lexically against the root, then its symlinks are resolved on
    disk, and both results must stay inside the root.

    NOTE: the symlink check and the file operation are two steps, so a process that can write
    inside the root may swap a link in between. The confinement protects against paths from
    callers, not against hostile local users.
    """

    def __init__(self, root: str, *, system: str | None = None) -> None:
        self._root = os.path.normpath(root)
        self._real_root = os.path.realpath(self._root)
        self._system = system

    @property
    def root(self) -> str:
        return self._root

    def __repr__(self) -> str:
        return f"<LocalFileClient system={self._system!r} root={self._root!r}>"

    def _resolve(self, path: str) -> str:
        """Return the absolute path for ``path``, or raise `PathOutsideRoot`."""
        resolved = confine(self._root, path, pathmod=os.path, system=self._system)
        real = os.path.realpath(resolved)
        if not is_inside(self._real_root, real, pathmod=os.path):
            owner = f"system {self._system!r}: " if self._system is not None else ""
            raise PathOutsideRoot(
                f"{owner}path {path!r} leads through a symlink to {real!r}, outside the root "
                f"{self._root!r}; links may only point inside the root",
                path=path,
                root=self._root,
            )
        return resolved

    async def _run(self, function: Callable[[], T]) -> T:
        return await anyio.to_thread.run_sync(function)

    async def listdir(self, path: str = ".") -> list[str]:
        return await self._run(lambda: sorted(os.listdir(self._resolve(path))))

    async def stat(self, path: str) -> FileInfo:
        def stat_in_thread() -> FileInfo:
            resolved = self._resolve(path)
            result = os.stat(resolved)
            return FileInfo(
                name=os.path.basename(resolved),
                size=result.st_size,
                mtime=result.st_mtime,
                is_dir=os.path.isdir(resolved),
            )

        return await self._run(stat_in_thread)

    async def exists(self, path: str) -> bool:
        return await self._run(lambda: os.path.exists(self._resolve(path)))

    async def read_bytes(self, path: str) -> bytes:
        def read_in_thread() -> bytes:
            with open(self._resolve(path), "rb") as file:
                return file.read()

        return await self._run(read_in_thread)

    async def write_bytes(self, path: str, data: bytes) -> None:
        require_bytes(data)

        def write_in_thread() -> None:
            with open(self._resolve(path), "wb") as file:
                file.write(data)

        await self._run(write_in_thread)

    async def read_text(self, path: str, encoding: str = "utf-8") -> str:
        return (await self.read_bytes(path)).decode(encoding)

    async def write_text(self, path: str, text: str, encoding: str = "utf-8") -> None:
        await self.write_bytes(path, text.encode(encoding))

    async def mkdir(self, path: str, parents: bool = False, exist_ok: bool = False) -> None:
        def mkdir_in_thread() -> None:
            resolved = self._resolve(path)
            if parents:
                os.makedirs(resolved, exist_ok=exist_ok)
                return
            try:
                os.mkdir(resolved)
            except FileExistsError:
                if not (exist_ok and os.path.isdir(resolved)):
                    raise

        await self._run(mkdir_in_thread)

    async def remove(self, path: str) -> None:
        def remove_in_thread() -> None:
            resolved = self._resolve(path)
            if resolved == self._root:
                raise PermissionError(f"the root folder {self._root!r} cannot be removed")
            if os.path.isdir(resolved) and not os.path.islink(resolved):
                os.rmdir(resolved)
            else:
                os.remove(resolved)

        await self._run(remove_in_thread)

    async def rename(self, src: str, dst: str) -> None:
        def rename_in_thread() -> None:
            source = self._resolve(src)
            target = self._resolve(dst)

            # os.rename replaces an existing file silently on POSIX. SFTP servers refuse, and
            # both clients must behave alike.
            # NOTE: another process can still create dst between this check and the rename.
            if os.path.lexists(target):
                raise FileExistsError(f"cannot rename {src!r}: {dst!r} already exists")
            os.rename(source, target)

        await self._run(rename_in_thread)


@register_adapter
class LocalAdapter(Adapter[LocalFileClient]):
    """Serves a folder on this machine; ``remote_path`` is that folder's absolute path."""

    system_type = "local"
    description = "a folder on this machine (remote_path: its absolute path)"

    def validate(self, system: ExternalSystem) -> None:
        path = system.remote_path
        if not path:
            raise InvalidSystem(
                f"system {system.name!r} of type 'local' needs remote_path: "
                "the absolute path of the folder it serves",
                system=system.name,
            )
        if "\x00" in path or not os.path.isabs(path):
            raise InvalidSystem(
                f"system {system.name!r}: remote_path {shorten(path)} is not an absolute path; "
                "give the full path of the folder, starting at the file system root",
                system=system.name,
            )

    async def get_client(self, system: ExternalSystem) -> LocalFileClient:
        root = system.remote_path
        assert root is not None  # guaranteed by validate()

        is_folder = await anyio.to_thread.run_sync(os.path.isdir, root)
        if not is_folder:
            raise FileNotFoundError(
                f"system {system.name!r}: the folder {root!r} does not exist or is not a "
                "folder; create it or update remote_path"
            )
        return LocalFileClient(root, system=system.name)

    async def check_client(self, client: LocalFileClient) -> bool:
        return await anyio.to_thread.run_sync(os.path.isdir, client.root)
