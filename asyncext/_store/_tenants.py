"""`TenantView`: the systems of a store that are visible to one tenant."""

from __future__ import annotations

import builtins
from collections.abc import Iterable, Mapping
from typing import TYPE_CHECKING, Any

from .._system import ExternalSystem
from ._export import ImportReport, OnConflict, export_systems, import_systems

if TYPE_CHECKING:
    from ._store import SystemStore


class TenantView:
    """The systems of a store that are shared by all tenants or assigned to one tenant.

    Returned by `SystemStore.for_tenant`. It has the store's reading and writing methods;
    a system outside the view reads as `SystemNotFound`, and `add` assigns the tenant.
    """

    def __init__(self, store: SystemStore, tenant: str) -> None:
        self._store = store
        self._tenant = tenant

    @property
    def tenant(self) -> str:
        return self._tenant

    @property
    def store(self) -> SystemStore:
        return self._store

    def __repr__(self) -> str:
        return f"<TenantView {self._tenant!r} of {self._store!r}>"

    async def get(self, name: str) -> ExternalSystem:
        """Return the system called ``name`` if it is visible; see `SystemStore.get`."""
        return await self._store._get(name, tenant=self._tenant)

    async def list(self, *, system_type: str | None = None) -> builtins.list[ExternalSystem]:
        """Return the visible systems, ordered by name; see `SystemStore.list`."""
        return await self._store._list(system_type=system_type, tenant=self._tenant)

    async def add(self, name: str, system_type: str, **fields: Any) -> ExternalSystem:
        """Add a system assigned to this tenant (and to any others in ``tenants``)."""
        return await self._store._add(name, system_type, fields, tenant=self._tenant)

    async def update(self, name: str, /, **changes: Any) -> ExternalSystem:
        """Change a visible system; see `SystemStore.update`."""
        return await self._store._update(name, changes, tenant=self._tenant)

    async def remove(self, name: str) -> None:
        """Delete a visible system; see `SystemStore.remove`."""
        await self._store._remove(name, tenant=self._tenant)

    async def export_systems(
        self, *, include_secrets: bool = False
    ) -> builtins.list[dict[str, Any]]:
        """Return the visible systems as records; see `SystemStore.export_systems`."""
        return await export_systems(
            self._store, include_secrets=include_secrets, tenant=self._tenant
        )

    async def import_systems(
        self, records: Iterable[Mapping[str, Any]], *, on_conflict: OnConflict = "fail"
    ) -> ImportReport:
        """Import records assigned to this tenant; see `SystemStore.import_systems`.

        A system of the same name outside this tenant's view is never overwritten: the
        import raises `DuplicateSystem`, or skips the record with ``on_conflict="skip"``.
        """
        return await import_systems(
            self._store, records, on_conflict=on_conflict, tenant=self._tenant
        )
