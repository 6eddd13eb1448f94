"""asyncext: a registry of external systems with pooled, ready-to-use async clients.

Every public name is importable from this package; the modules behind it are private.
"""

from __future__ import annotations

from ._adapters import _sftp, _ssh  # noqa: F401  (importing registers "sftp" and "ssh")
from ._adapters._base import Adapter
from ._adapters._local import LocalFileClient
from ._adapters._registry import adapter_for, register_adapter
from ._adapters._sftp_client import SFTPFileClient
from ._adapters._ssh_connect import scan_host_key
from ._crypto import generate_key
from ._errors import (
    AsyncextError,
    ConnectionFailed,
    DuplicateSystem,
    EncryptionKeyError,
    HostKeyMismatch,
    InvalidSystem,
    PathOutsideRoot,
    PoolClosed,
    PoolTimeout,
    StoreError,
    SystemNotFound,
    UnknownSystemType,
)
from ._files import FileClient, FileInfo
from ._pool import ClientPool, PoolOptions, PoolStats
from ._secrets import Secret
from ._store._export import ImportReport
from ._store._rotation import RotationReport
from ._store._store import SystemStore
from ._store._tenants import TenantView
from ._system import ConnectionReport, ExternalSystem

__version__ = "0.1.0"

__all__ = [
    # store and records
    "SystemStore",
    "TenantView",
    "ExternalSystem",
    "ConnectionReport",
    # secrets
    "Secret",
    "generate_key",
    "RotationReport",
    "ImportReport",
    # adapters and files
    "Adapter",
    "register_adapter",
    "adapter_for",
    "FileClient",
    "FileInfo",
    "LocalFileClient",
    "SFTPFileClient",
    "scan_host_key",
    # pool
    "ClientPool",
    "PoolOptions",
    "PoolStats",
    # errors
    "AsyncextError",
    "StoreError",
    "SystemNotFound",
    "DuplicateSystem",
    "InvalidSystem",
    "UnknownSystemType",
    "ConnectionFailed",
    "HostKeyMismatch",
    "PathOutsideRoot",
    "PoolTimeout",
    "PoolClosed",
    "EncryptionKeyError",
]
