"""The adapter registry: register_adapter, adapter_for and entry-point discovery."""

from __future__ import annotations

import importlib.metadata
import logging
import sys
import textwrap
from pathlib import Path

import pytest

import asyncext._adapters._registry
from asyncext import (
    Adapter,
    ExternalSystem,
    PoolOptions,
    SystemStore,
    UnknownSystemType,
    adapter_for,
    register_adapter,
)
from asyncext._adapters._registry import installed_adapters


def install_distribution(site: Path, name: str, module_source: str, entry_points: str) -> None:
    """Write an installed distribution (a module and its .dist-info) into ``site``.

    This is the layout pip leaves in site-packages, so importlib.metadata discovers the
    entry points exactly as it would for a package installed from a wheel.
    """
    (site / f"{name}.py").write_text(textwrap.dedent(module_source))
    info = site / f"{name}-1.0.dist-info"
    info.mkdir()
    (info / "METADATA").write_text(f"Metadata-Version: 2.1\nName: {name}\nVersion: 1.0\n")
    (info / "entry_points.txt").write_text(textwrap.dedent(entry_points))
    (info / "RECORD").write_text("")


@pytest.fixture
def site(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    folder = tmp_path / "site-packages"
    folder.mkdir()
    monkeypatch.syspath_prepend(str(folder))
    importlib.invalidate_caches()
    return folder


ECHO_ADAPTER = """
    from asyncext import Adapter

    class EchoAdapter(Adapter[str]):
        system_type = "test-echo-plugin"
        description = "echoes the host name"

        async def get_client(self, system):
            return "echo:" + system.host
"""


async def test_entry_point_adapter_is_discovered(site: Path, tmp_path: Path) -> None:
    """An adapter declared by an installed distribution's entry point is found and used."""
    install_distribution(
        site,
        "asyncext_echo_plugin",
        ECHO_ADAPTER,
        """
        [asyncext.adapters]
        test-echo-plugin = asyncext_echo_plugin:EchoAdapter
        """,
    )
    distribution = importlib.metadata.distribution("asyncext_echo_plugin")
    assert distribution.entry_points.select(group="asyncext.adapters")

    adapter = adapter_for("test-echo-plugin")

    assert type(adapter).__name__ == "EchoAdapter"
    async with SystemStore(tmp_path / "systems.db") as store:
        system = await store.add("echo", "test-echo-plugin", host="example.test")
        async with system.client() as client:
            assert client == "echo:example.test"
    assert "test-echo-plugin" in installed_adapters()


async def test_entry_point_failure_is_reported(
    site: Path, caplog: pytest.LogCaptureFixture
) -> None:
    """A broken entry point is logged, and looking up its type says why it is missing."""
    install_distribution(
        site,
        "asyncext_broken_plugin",
        "raise ImportError('needs libfoo')\n",
        """
        [asyncext.adapters]
        test-broken-plugin = asyncext_broken_plugin:Missing
        """,
    )
    caplog.set_level(logging.WARNING, logger="asyncext.adapters")

    with pytest.raises(UnknownSystemType, match="needs libfoo") as caught:
        adapter_for("test-broken-plugin")

    assert "local" in caught.value.installed
    assert any("test-broken-plugin" in record.getMessage() for record in caplog.records)
    sys.modules.pop("asyncext_broken_plugin", None)


def test_adapter_for_unknown_lists_installed() -> None:
    """UnknownSystemType lists the installed types and how to add one."""
    with pytest.raises(UnknownSystemType) as caught:
        adapter_for("no-such-type")

    message = str(caught.value)
    assert "'no-such-type'" in message
    assert "local" in message
    assert "register_adapter" in message
    assert caught.value.system_type == "no-such-type"
    assert "Did you mean" not in message


def test_adapter_for_misspelled_type_suggests() -> None:
    """UnknownSystemType for a typo of an installed type names that type."""
    with pytest.raises(UnknownSystemType, match="Did you mean 'local'\\?"):
        adapter_for("lokal")


def test_register_adapter_rejects_conflicting_type() -> None:
    """A second class for a taken system_type is refused; the same class again is fine."""

    @register_adapter
    class First(Adapter[object]):
        system_type = "test-conflict"
        description = "first"

        async def get_client(self, system: ExternalSystem) -> object:
            return object()

    class Second(First):
        description = "second"

    assert register_adapter(First) is First
    with pytest.raises(ValueError, match="test-conflict"):
        register_adapter(Second)
    assert type(adapter_for("test-conflict")) is First


def test_register_adapter_rejects_non_adapters() -> None:
    """Classes that are not Adapter subclasses, or lack system_type, are refused."""
    with pytest.raises(TypeError, match="Adapter subclass"):
        register_adapter(object)  # type: ignore[type-var]

    class Nameless(Adapter[object]):
        description = "no system_type"

        async def get_client(self, system: ExternalSystem) -> object:
            return object()

    with pytest.raises(TypeError, match="system_type"):
        register_adapter(Nameless)


async def test_adapter_defaults_work_without_store_knowledge(tmp_path: Path) -> None:
    """An adapter that implements only get_client works with clients and connection tests."""
    sentinel: list[str] = []

    @register_adapter
    class Minimal(Adapter[list[str]]):
        system_type = "test-minimal"
        description = "only get_client"

        async def get_client(self, system: ExternalSystem) -> list[str]:
            return sentinel

    system = ExternalSystem(name="minimal", system_type="test-minimal")
    async with system.client() as client:
        assert client is sentinel

    report = await system.test_connection()
    assert report.ok is True
    assert report.detail == "connected"


@register_adapter
class RemovableAdapter(Adapter[object]):
    """An adapter that a test uninstalls after adding a system of its type."""

    system_type = "test-removable"
    description = "an adapter that the test uninstalls"

    async def get_client(self, system: ExternalSystem) -> object:
        return object()


@pytest.mark.parametrize("pooled", [False, True], ids=["unpooled", "pooled"])
async def test_client_of_uninstalled_type_names_system(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, pooled: bool
) -> None:
    """client() of a system whose type is no longer installed names the system."""
    pool = PoolOptions() if pooled else None
    async with SystemStore(tmp_path / "systems.db", pool=pool) as store:
        system = await store.add("orphan", "test-removable")
        monkeypatch.delitem(asyncext._adapters._registry._adapters, "test-removable")

        with pytest.raises(UnknownSystemType) as caught:
            async with system.client():
                pass

    assert str(caught.value).startswith("system 'orphan': unknown system type 'test-removable'")
    assert caught.value.system == "orphan"
