"""The ``sftp`` adapter: an SFTP server, served through `FileClient`."""

from __future__ import annotations

import asyncio
import logging
import posixpath
import stat
from typing import TYPE_CHECKING

import asyncssh

from .._errors import ConnectionFailed, InvalidSystem
from .._tasks import CLEANUP_TIMEOUT, run_shielded
from ._registry import register_adapter
from ._sftp_client import SFTPFileClient
from ._ssh import SSHAdapterBase, close_connection, describe_connection, is_responsive
from ._ssh_settings import read_settings, validate_ssh_system

if TYPE_CHECKING:
    from .._system import ExternalSystem

logger = logging.getLogger("asyncext.ssh")


@register_adapter
class SFTPAdapter(SSHAdapterBase[SFTPFileClient]):
    """An SFTP server; the client is an `SFTPFileClient` confined to ``remote_path``.

    Takes the fields and options of the ``ssh`` adapter. ``remote_path`` is the root folder:
    an absolute path, or a path relative to the login folder, which is also the default.
    """

    system_type = "sftp"
    description = "an SFTP server (remote_path: the root folder, default the login folder)"

    def validate(self, system: ExternalSystem) -> None:
        validate_ssh_system(system)
        if system.remote_path is not None and not system.remote_path.strip():
            raise InvalidSystem(
                f"system {system.name!r}: remote_path is empty; give the root folder on the "
                "server, or leave it unset for the login folder",
                system=system.name,
            )

    async def get_client(self, system: ExternalSystem) -> SFTPFileClient:
        connection = await self.connect(system)
        try:
            return await self._open_file_client(system, connection)
        except BaseException:
            await run_shielded(lambda: close_connection(connection), timeout=CLEANUP_TIMEOUT)
            raise

    async def _open_file_client(
        self, system: ExternalSystem, connection: asyncssh.SSHClientConnection
    ) -> SFTPFileClient:
        timeout = read_settings(system).connect_timeout
        try:
            sftp = await asyncio.wait_for(connection.start_sftp_client(), timeout)
        except asyncio.TimeoutError:
            raise ConnectionFailed(
                f"system {system.name!r}: the server did not start its SFTP subsystem within "
                f"{timeout:g} s; check that it offers SFTP (sshd: 'Subsystem sftp ...')",
                system=system.name,
            ) from None
        except (asyncssh.Error, OSError) as exc:
            raise ConnectionFailed(
                f"system {system.name!r}: starting the SFTP subsystem failed ({exc}); "
                "check that it offers SFTP (sshd: 'Subsystem sftp ...') to this account",
                system=system.name,
            ) from exc

        # The root: remote_path as given when absolute, else below the login folder.
        login_folder = str(await sftp.realpath("."))
        root = posixpath.normpath(posixpath.join(login_folder, system.remote_path or "."))
        try:
            real_root = str(await sftp.realpath(root))
            attributes = await sftp.stat(real_root)
        except asyncssh.SFTPError as exc:
            raise FileNotFoundError(
                f"the folder {root!r} does not exist on the server ({exc.reason}); create it "
                "or update remote_path"
            ) from exc
        if not stat.S_ISDIR(attributes.permissions or 0):
            raise NotADirectoryError(f"{root!r} on the server is not a folder; update remote_path")

        return SFTPFileClient(
            system=system.name,
            connection=connection,
            sftp=sftp,
            root=root,
            real_root=real_root,
        )

    async def destroy_client(self, client: SFTPFileClient) -> None:
        await client.aclose()

    def connection_of(self, client: SFTPFileClient) -> asyncssh.SSHClientConnection:
        return client.connection

    async def check_client(self, client: SFTPFileClient) -> bool:
        if not await is_responsive(client.connection):
            return False
        try:
            await client.ensure_session()
        except ConnectionFailed:
            return False
        return True

    async def test_connection(self, system: ExternalSystem) -> str:
        client = await self.get_client(system)
        try:
            return f"connected to {describe_connection(client.connection)}, root {client.root!r}"
        finally:
            await run_shielded(client.aclose, timeout=CLEANUP_TIMEOUT)
