"""The public namespace: every name users import from asyncext, and nothing else."""

from __future__ import annotations

import asyncext

PUBLIC_NAMES = {
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
}


def test_public_all_is_pinned() -> None:
    """__all__ lists exactly the public names, each once."""
    assert len(asyncext.__all__) == len(set(asyncext.__all__))
    assert set(asyncext.__all__) == PUBLIC_NAMES


def test_public_names_resolve() -> None:
    """Every name in __all__ is importable from the package."""
    for name in asyncext.__all__:
        assert getattr(asyncext, name) is not None, name


def test_public_names_have_docstrings() -> None:
    """Every public class and function documents itself."""
    undocumented = [name for name in asyncext.__all__ if not getattr(asyncext, name).__doc__]
    assert undocumented == []


def test_public_errors_share_one_root() -> None:
    """Every public exception derives from AsyncextError."""
    errors = [
        value
        for value in (getattr(asyncext, name) for name in asyncext.__all__)
        if isinstance(value, type) and issubclass(value, BaseException)
    ]
    assert len(errors) == 12
    assert all(issubclass(error, asyncext.AsyncextError) for error in errors)


def test_public_package_is_typed() -> None:
    """The package ships py.typed so that type checkers use its annotations."""
    from pathlib import Path

    assert (Path(asyncext.__file__).parent / "py.typed").is_file()
