"""Tenant views of a store: what a tenant sees and what it can change."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from asyncext import InvalidSystem, SystemNotFound, SystemStore


@pytest.fixture
async def store(tmp_path: Path) -> AsyncIterator[SystemStore]:
    async with SystemStore(tmp_path / "systems.db") as opened:
        root = str(tmp_path)
        await opened.add("shared", "local", remote_path=root)
        await opened.add("acme-files", "local", remote_path=root, tenants=["acme"])
        await opened.add("globex-files", "local", remote_path=root, tenants=["globex"])
        await opened.add("both", "local", remote_path=root, tenants=["acme", "globex"])
        yield opened


async def test_tenant_view_lists_shared_and_own(store: SystemStore) -> None:
    """A view lists systems with no tenants or with its tenant, ordered by name."""
    acme = store.for_tenant("acme")

    assert [s.name for s in await acme.list()] == ["acme-files", "both", "shared"]
    assert [s.name for s in await acme.list(system_type="local")] == [
        "acme-files",
        "both",
        "shared",
    ]


async def test_tenant_view_hides_other_tenants(store: SystemStore) -> None:
    """A system of another tenant reads as SystemNotFound for get, update and remove."""
    acme = store.for_tenant("acme")

    with pytest.raises(SystemNotFound, match="tenant 'acme'"):
        await acme.get("globex-files")
    with pytest.raises(SystemNotFound):
        await acme.update("globex-files", username="intruder")
    with pytest.raises(SystemNotFound):
        await acme.remove("globex-files")

    assert (await store.get("globex-files")).username is None


async def test_tenant_view_add_records_tenant(store: SystemStore, tmp_path: Path) -> None:
    """add() through a view assigns the view's tenant, keeping any others given."""
    acme = store.for_tenant("acme")

    added = await acme.add("acme-new", "local", remote_path=str(tmp_path), tenants=["ops"])

    assert added.tenants == frozenset({"acme", "ops"})
    assert (await acme.get("acme-new")).name == "acme-new"
    with pytest.raises(SystemNotFound):
        await store.for_tenant("globex").get("acme-new")


async def test_tenant_view_reads_own_systems(store: SystemStore) -> None:
    """get() and update() work on systems the view sees."""
    acme = store.for_tenant("acme")

    assert (await acme.get("shared")).name == "shared"
    updated = await acme.update("acme-files", username="alice")
    assert updated.username == "alice"


def test_tenant_view_rejects_empty_tenant(store: SystemStore) -> None:
    """An empty tenant name is refused."""
    with pytest.raises(InvalidSystem):
        store.for_tenant(" ")
