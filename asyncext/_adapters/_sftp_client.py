"""`SFTPFileClient`: the `FileClient` of the ``sftp`` adapter, over one asyncssh SFTP session.

Paths are resolved against the root on this side with the same lexical rules as the ``local``
adapter, then symlinks are resolved by the server (SFTP ``realpath``), and both results must
stay inside the root. Errors are the built-in `OSError` subclasses that the ``local`` adapter
raises. OpenSSH's SFTP server speaks protocol version 3, which reports most failures as a
bare "failure" or "no such file", so the cause is then read back with ``stat`` calls.

When the connection or the session ends during a call (the server is gone, or keepalive
requests timed out), the call raises `ConnectionFailed` naming the system, with asyncssh's or
the socket's error chained. A call that only reads first tries once more on a new session.

All pool holders of one connection share its SFTP session: asyncssh tags each request with an
id and matches the replies, so concurrent calls are safe, and one session per connection
never runs into the server's limit on session channels.
"""

from __future__ import annotations

import asyncio
import errno
import logging
import os
import posixpath
import stat
from collections.abc import Awaitable, Callable
from typing import TypeVar

import asyncssh

from .._errors import ConnectionFailed, PathOutsideRoot
from .._files import FileInfo, confine, is_inside, require_bytes

logger = logging.getLogger("asyncext.ssh")

T = TypeVar("T")

MAX_SYMLINK_DEPTH = 40
"""Links followed while resolving one path, as Linux's own limit."""

# Errors of a request whose session or connection ends under it: asyncssh's SFTP errors for a
# closed session, the connection's own error (keepalive timeout, disconnect) and the socket's
# error (reset, broken pipe), which asyncssh hands to every pending request.
_LOST = (
    asyncssh.SFTPConnectionLost,
    asyncssh.SFTPNoConnection,
    asyncssh.DisconnectError,
    ConnectionError,
)


class SFTPFileClient:
    """A `FileClient` confined to a folder on an SFTP server.

    The `sftp` property returns asyncssh's `asyncssh.SFTPClient` for what `FileClient` does
    not cover. That client is NOT confined: it accepts any path the server account can reach.

    NOTE: the symlink check and the file operation are two requests, so a process that can
    write inside the root may swap a link in between. The confinement protects against paths
    from callers, not against hostile users of the server.
    """

    def __init__(
        self,
        *,
        system: str,
        connection: asyncssh.SSHClientConnection,
        sftp: asyncssh.SFTPClient,
        root: str,
        real_root: str,
    ) -> None:
        self._system = system
        self._connection = connection
        self._root = root
        self._real_root = real_root
        self._reopen_lock = asyncio.Lock()
        self._sftp = sftp
        self._sftp_open = True
        self._watch(sftp)

    def __repr__(self) -> str:
        return f"<SFTPFileClient system={self._system!r} root={self._root!r}>"

    @property
    def root(self) -> str:
        """Absolute path of the root folder on the server, as configured."""
        return self._root

    @property
    def sftp(self) -> asyncssh.SFTPClient:
        """The raw asyncssh SFTP client. Unconfined: it reaches every path the account can."""
        return self._sftp

    @property
    def connection(self) -> asyncssh.SSHClientConnection:
        """The SSH connection that carries the SFTP session."""
        return self._connection

    # --- session -------------------------------------------------------------------------

    def is_usable(self) -> bool:
        """Return whether the SSH connection is open (the SFTP session is re-opened on use)."""
        return not self._connection.is_closed()

    async def ensure_session(self) -> asyncssh.SFTPClient:
        """Return the SFTP session, opening a new one if the server closed the old one.

        Servers close idle sessions (sshd's ``ChannelTimeout``) while the connection lives on.

        Raises:
            ConnectionFailed: the SSH connection itself is closed.
        """
        if self._sftp_open:
            return self._sftp
        async with self._reopen_lock:
            if self._sftp_open:
                return self._sftp
            if self._connection.is_closed():
                raise ConnectionFailed(
                    f"system {self._system!r}: the SSH connection is closed; "
                    "open a new client with system.client()",
                    system=self._system,
                )
            try:
                sftp = await self._connection.start_sftp_client()
            except (asyncssh.Error, OSError) as exc:
                raise ConnectionFailed(
                    f"system {self._system!r}: re-opening the SFTP session failed: {exc}; "
                    "open a new client with system.client()",
                    system=self._system,
                ) from exc
            logger.info(
                "system %r: re-opened the SFTP session that the server had closed", self._system
            )
            self._sftp = sftp
            self._sftp_open = True
            self._watch(sftp)
            return sftp

    def _watch(self, sftp: asyncssh.SFTPClient) -> None:
        watcher = asyncio.ensure_future(sftp.wait_closed())

        def closed(_: asyncio.Future[None]) -> None:
            if self._sftp is sftp:
                self._sftp_open = False

        watcher.add_done_callback(closed)
        self._watcher = watcher

    async def aclose(self) -> None:
        """Close the SFTP session and the SSH connection."""
        self._sftp.exit()
        self._connection.close()
        await self._connection.wait_closed()

    async def _call(
        self, operation: Callable[[asyncssh.SFTPClient], Awaitable[T]], *, retry: bool
    ) -> T:
        """Run ``operation`` on the session; once more on a new session if it was lost.

        Only operations that change nothing (``retry``) run again, because a lost request
        may or may not have reached the server.
        """
        sftp = await self.ensure_session()
        try:
            return await operation(sftp)
        except _LOST as exc:
            if not retry or self._connection.is_closed():
                raise self._lost(exc) from exc
            if self._sftp is sftp:
                self._sftp_open = False
        sftp = await self.ensure_session()
        try:
            return await operation(sftp)
        except _LOST as exc:
            raise self._lost(exc) from exc

    def _lost(self, exc: Exception) -> ConnectionFailed:
        reason = str(exc) or type(exc).__name__
        return ConnectionFailed(
            f"system {self._system!r}: the SFTP session was lost ({reason}); "
            "open a new client with system.client() and try again",
            system=self._system,
        )

    # --- paths ---------------------------------------------------------------------------

    def _resolve(self, path: str) -> str:
        return confine(self._root, path, system=self._system)

    async def _check_links(self, sftp: asyncssh.SFTPClient, path: str, resolved: str) -> None:
        """Raise `PathOutsideRoot` if the server resolves ``resolved`` outside the root."""
        if resolved == self._root:
            return
        if posixpath.dirname(resolved) == self._root:
            # Only the last component can be a link, and lstat shows whether it is one.
            try:
                attributes = await sftp.lstat(resolved)
            except asyncssh.SFTPError as exc:
                if isinstance(exc, _LOST):
                    raise
                return
            if not _is_link(attributes):
                return
        real = await self._real_path(sftp, resolved, 0)
        if not is_inside(self._real_root, real):
            raise PathOutsideRoot(
                f"path {path!r} leads through a symlink to {real!r}, outside the root "
                f"{self._root!r} of system {self._system!r}; links may only point inside "
                "the root",
                path=path,
                root=self._root,
            )

    async def _real_path(self, sftp: asyncssh.SFTPClient, path: str, depth: int) -> str:
        """Return the server's resolution of ``path``, tolerating missing components.

        OpenSSH's ``realpath`` resolves every link but fails when a component other than
        the last is missing. Missing components cannot be links, so the existing part is
        resolved and the rest appended. A dangling link is followed through ``readlink``.
        """
        if depth > MAX_SYMLINK_DEPTH:
            raise OSError(errno.ELOOP, os.strerror(errno.ELOOP), path)
        try:
            return str(await sftp.realpath(path))
        except _LOST:
            raise
        except asyncssh.SFTPError:
            pass
        if path == "/":
            return path

        try:
            attributes = await sftp.lstat(path)
        except _LOST:
            raise
        except asyncssh.SFTPError:
            attributes = None
        if attributes is not None and _is_link(attributes):
            target = str(await sftp.readlink(path))
            joined = posixpath.normpath(posixpath.join(posixpath.dirname(path), target))
            return await self._real_path(sftp, joined, depth + 1)

        parent = await self._real_path(sftp, posixpath.dirname(path), depth + 1)
        return posixpath.join(parent, posixpath.basename(path))

    async def _checked(self, sftp: asyncssh.SFTPClient, path: str) -> str:
        resolved = self._resolve(path)
        await self._check_links(sftp, path, resolved)
        return resolved

    # --- FileClient ----------------------------------------------------------------------

    async def listdir(self, path: str = ".") -> list[str]:
        async def run(sftp: asyncssh.SFTPClient) -> list[str]:
            resolved = await self._checked(sftp, path)
            try:
                names = await sftp.listdir(resolved)
            except asyncssh.SFTPError as exc:
                raise await self._translate(sftp, exc, resolved, is_folder_expected=True) from exc
            return sorted(str(name) for name in names if name not in (".", ".."))

        return await self._call(run, retry=True)

    async def stat(self, path: str) -> FileInfo:
        async def run(sftp: asyncssh.SFTPClient) -> FileInfo:
            attributes = await self._stat(sftp, path)
            return _file_info(self._resolve(path), attributes)

        return await self._call(run, retry=True)

    async def _stat(self, sftp: asyncssh.SFTPClient, path: str) -> asyncssh.SFTPAttrs:
        resolved = self._resolve(path)
        try:
            # For a path directly in the root, one lstat both checks for a link and returns
            # the result unless the path is a link, because stat and lstat agree on the rest.
            if resolved != self._root and posixpath.dirname(resolved) == self._root:
                attributes = await sftp.lstat(resolved)
                if not _is_link(attributes):
                    return attributes
            await self._check_links(sftp, path, resolved)
            return await sftp.stat(resolved)
        except asyncssh.SFTPError as exc:
            if isinstance(exc, _LOST):
                raise
            raise await self._translate(sftp, exc, resolved) from exc

    async def exists(self, path: str) -> bool:
        self._resolve(path)

        async def run(sftp: asyncssh.SFTPClient) -> bool:
            try:
                await self._stat(sftp, path)
            except PathOutsideRoot:
                raise
            except OSError:
                return False
            return True

        return await self._call(run, retry=True)

    async def read_bytes(self, path: str) -> bytes:
        async def run(sftp: asyncssh.SFTPClient) -> bytes:
            resolved = await self._checked(sftp, path)
            try:
                async with sftp.open(resolved, "rb") as file:
                    data: bytes = await file.read()
                    return data
            except asyncssh.SFTPError as exc:
                if isinstance(exc, _LOST):
                    raise
                raise await self._translate(sftp, exc, resolved, is_file_expected=True) from exc

        return await self._call(run, retry=True)

    async def write_bytes(self, path: str, data: bytes) -> None:
        require_bytes(data)

        async def run(sftp: asyncssh.SFTPClient) -> None:
            resolved = await self._checked(sftp, path)
            try:
                async with sftp.open(resolved, "wb") as file:
                    await file.write(data)
            except asyncssh.SFTPError as exc:
                if isinstance(exc, _LOST):
                    raise
                raise await self._translate(sftp, exc, resolved, is_file_expected=True) from exc

        await self._call(run, retry=False)

    async def read_text(self, path: str, encoding: str = "utf-8") -> str:
        return (await self.read_bytes(path)).decode(encoding)

    async def write_text(self, path: str, text: str, encoding: str = "utf-8") -> None:
        await self.write_bytes(path, text.encode(encoding))

    async def mkdir(self, path: str, parents: bool = False, exist_ok: bool = False) -> None:
        async def run(sftp: asyncssh.SFTPClient) -> None:
            resolved = await self._checked(sftp, path)
            if not parents:
                await self._make_folder(sftp, resolved, exist_ok=exist_ok)
                return

            # Like os.makedirs: create each missing folder from the root down.
            relative = posixpath.relpath(resolved, self._root)
            current = self._root
            parts = [] if relative == "." else relative.split("/")
            for index, part in enumerate(parts):
                current = posixpath.join(current, part)
                if index < len(parts) - 1:
                    await self._make_folder(sftp, current, exist_ok=True, target=resolved)
                else:
                    await self._make_folder(sftp, current, exist_ok=exist_ok)
            if not parts and not exist_ok:
                raise _os_error(errno.EEXIST, resolved)

        await self._call(run, retry=False)

    async def _make_folder(
        self,
        sftp: asyncssh.SFTPClient,
        resolved: str,
        *,
        exist_ok: bool,
        target: str | None = None,
    ) -> None:
        """Create one folder; ``target`` is the deeper folder it is made for, if any.

        A file in place of a parent of ``target`` is ENOTDIR, as ``os.makedirs`` reports it.
        """
        try:
            await sftp.mkdir(resolved)
            return
        except _LOST:
            raise
        except asyncssh.SFTPError as exc:
            failure = exc
        kind = await self._kind(sftp, resolved, follow=True)
        if kind is None:
            kind = await self._kind(sftp, resolved, follow=False)
        if kind == "folder" and exist_ok:
            return
        if kind is not None and target is not None:
            raise _os_error(errno.ENOTDIR, target) from failure
        if kind is not None:
            raise _os_error(errno.EEXIST, resolved) from failure
        raise await self._translate(sftp, failure, resolved) from failure

    async def remove(self, path: str) -> None:
        async def run(sftp: asyncssh.SFTPClient) -> None:
            resolved = await self._checked(sftp, path)
            if resolved == self._root:
                raise PermissionError(f"the root folder {self._root!r} cannot be removed")
            try:
                attributes = await sftp.lstat(resolved)
                if stat.S_ISDIR(attributes.permissions or 0):
                    await self._remove_folder(sftp, resolved)
                else:
                    await sftp.remove(resolved)
            except asyncssh.SFTPError as exc:
                if isinstance(exc, _LOST):
                    raise
                raise await self._translate(sftp, exc, resolved) from exc

        await self._call(run, retry=False)

    async def _remove_folder(self, sftp: asyncssh.SFTPClient, resolved: str) -> None:
        try:
            await sftp.rmdir(resolved)
        except asyncssh.SFTPFailure as exc:
            names = await sftp.listdir(resolved)
            if any(name not in (".", "..") for name in names):
                raise _os_error(errno.ENOTEMPTY, resolved) from exc
            raise

    async def rename(self, src: str, dst: str) -> None:
        async def run(sftp: asyncssh.SFTPClient) -> None:
            source = await self._checked(sftp, src)
            target = await self._checked(sftp, dst)

            # NOTE: another client can still create dst between this check and the rename.
            if await self._kind(sftp, target, follow=False) is not None:
                raise FileExistsError(f"cannot rename {src!r}: {dst!r} already exists")
            try:
                await sftp.rename(source, target)
            except asyncssh.SFTPError as exc:
                if isinstance(exc, _LOST):
                    raise
                if await self._kind(sftp, source, follow=False) is None:
                    raise await self._translate(sftp, exc, source) from exc
                raise await self._translate(sftp, exc, target) from exc

        await self._call(run, retry=False)

    # --- errors --------------------------------------------------------------------------

    async def _kind(self, sftp: asyncssh.SFTPClient, resolved: str, *, follow: bool) -> str | None:
        """Return ``"folder"``, ``"file"`` (anything else) or None when the path is missing."""
        try:
            attributes = await (sftp.stat(resolved) if follow else sftp.lstat(resolved))
        except _LOST:
            raise
        except asyncssh.SFTPError:
            return None
        return "folder" if stat.S_ISDIR(attributes.permissions or 0) else "file"

    async def _translate(
        self,
        sftp: asyncssh.SFTPClient,
        exc: asyncssh.SFTPError,
        resolved: str,
        *,
        is_folder_expected: bool = False,
        is_file_expected: bool = False,
    ) -> OSError:
        """Return the `OSError` that the local file system would raise for this failure.

        SFTP version 3 servers report ENOTDIR as "no such file" and EEXIST, EISDIR and
        ENOTEMPTY as a bare "failure", so the path and its parents are examined.
        """
        if isinstance(exc, asyncssh.SFTPPermissionDenied):
            return _os_error(errno.EACCES, resolved)
        if isinstance(exc, asyncssh.SFTPBadMessage):
            return _os_error(errno.EINVAL, resolved)

        # A parent that exists but is not a folder means ENOTDIR, as on a local file system.
        parent = posixpath.dirname(resolved)
        while parent != self._root and is_inside(self._root, parent):
            kind = await self._kind(sftp, parent, follow=True)
            if kind == "file":
                return _os_error(errno.ENOTDIR, resolved)
            parent = posixpath.dirname(parent)

        kind = await self._kind(sftp, resolved, follow=True)
        if kind is None:
            return _os_error(errno.ENOENT, resolved)
        if is_folder_expected and kind == "file":
            return _os_error(errno.ENOTDIR, resolved)
        if is_file_expected and kind == "folder":
            return _os_error(errno.EISDIR, resolved)
        return OSError(f"SFTP server error on {resolved!r}: {exc.reason or type(exc).__name__}")


def _os_error(code: int, path: str) -> OSError:
    """Return the built-in `OSError` subclass for ``code``, as ``open()`` would raise it."""
    return OSError(code, os.strerror(code), path)


def _is_link(attributes: asyncssh.SFTPAttrs) -> bool:
    return stat.S_ISLNK(attributes.permissions or 0)


def _file_info(resolved: str, attributes: asyncssh.SFTPAttrs) -> FileInfo:
    mtime = float(attributes.mtime or 0)
    if attributes.mtime_ns is not None:
        mtime += attributes.mtime_ns / 1e9
    return FileInfo(
        name=posixpath.basename(resolved),
        size=attributes.size or 0,
        mtime=mtime,
        is_dir=stat.S_ISDIR(attributes.permissions or 0),
    )
