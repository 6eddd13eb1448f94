"""Smoke runs of benchmarks/run.py: every benchmark runs and its JSON names what it compared.

The runs use ``--smoke``, whose loads are tiny and whose figures mean nothing, so no test
looks at how fast anything was.
"""

from __future__ import annotations

import importlib.util
import json
import math
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
from sshd import require_sshd

ROOT = Path(__file__).resolve().parent.parent
RUN = ROOT / "benchmarks" / "run.py"

# The distribution's import name for each peer pool of the bench extra.
PEERS = {
    "asyncio-connection-pool": "asyncio_connection_pool",
    "generic-connection-pool": "generic_connection_pool",
    "psycopg_pool": "psycopg_pool",
    "connpool": "connpool",
}
BASELINES = {"asyncio.Queue", *PEERS, "unpooled", "raw asyncssh", "raw aiosqlite"}


def run_smoke(tmp_path: Path, *arguments: str, env: dict[str, str] | None = None) -> Any:
    """Run ``run.py --smoke`` with ``arguments``; return its JSON after checking its exit."""
    output = tmp_path / "results.json"
    completed = subprocess.run(
        [sys.executable, str(RUN), "--smoke", "--json", str(output), *arguments],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=300,
        env=env,
        check=False,
    )
    assert completed.returncode == 0, completed.stdout + completed.stderr
    return json.loads(output.read_text())


def installed(module: str) -> bool:
    return importlib.util.find_spec(module) is not None


@pytest.fixture(scope="module")
def smoke_run(tmp_path_factory: pytest.TempPathFactory) -> tuple[Any, str, Path]:
    """One smoke run of every benchmark: its JSON, its Markdown and its output folder."""
    require_sshd()
    folder = tmp_path_factory.mktemp("benchmarks")
    markdown = folder / "results.md"
    data = run_smoke(folder, "--markdown", str(markdown))
    return data, markdown.read_text(), folder


def test_run_smoke_names_every_baseline(smoke_run: tuple[Any, str, Path]) -> None:
    """A smoke run measures all four benchmarks and names every baseline it compared."""
    data, _, _ = smoke_run

    assert data["errors"] == {}
    assert [report["name"] for report in data["reports"]] == [
        "store",
        "pool",
        "pool_scale",
        "ssh",
    ]
    missing = {peer for peer, module in PEERS.items() if not installed(module)}
    assert set(data["baselines"]) == BASELINES - missing
    assert set(data["unavailable"]) == missing

    for report in data["reports"]:
        for comparison in report["comparisons"]:
            assert comparison["ours"].startswith("asyncext"), comparison
            assert comparison["baseline"] in BASELINES, comparison
            assert math.isfinite(comparison["ratio"]), comparison
            assert comparison["ratio"] > 0, comparison
        for goal in report["goals"]:
            assert isinstance(goal["met"], bool), goal


def test_run_smoke_writes_markdown(smoke_run: tuple[Any, str, Path]) -> None:
    """The Markdown has the command, the machine and a section per benchmark."""
    _, text, folder = smoke_run

    assert f"python benchmarks/run.py --smoke --json {folder}/results.json" in text
    assert "Machine: " in text
    for name in ("store", "pool", "pool_scale", "ssh"):
        assert f"### {name} (" in text


def test_run_smoke_records_machine(smoke_run: tuple[Any, str, Path]) -> None:
    """The JSON records the command, cores, CPU, Python, library versions and git commit."""
    data, _, folder = smoke_run

    machine = data["machine"]
    assert data["command"] == (
        f"python benchmarks/run.py --smoke --json {folder}/results.json "
        f"--markdown {folder}/results.md"
    )
    assert machine["cores"] == os.cpu_count()
    assert machine["cpu"]
    assert machine["python"] == ".".join(map(str, sys.version_info[:3]))
    for library in ("asyncext", "asyncssh", "aiosqlite", "anyio", "cryptography"):
        assert machine["versions"][library], library
    assert len(machine["source"]["commit"]) == 40
    assert isinstance(machine["source"]["asyncext_changed_locally"], bool)


def test_run_smoke_ssh_workers_without_failures(smoke_run: tuple[Any, str, Path]) -> None:
    """200 concurrent workers through one pooled system all succeed on at most 10 connections."""
    data, _, _ = smoke_run

    ssh = data["reports"][3]
    workers = ssh["figures"]["workers"]
    assert workers["workers"] == 200
    assert workers["failures"] == 0, workers["failure_reasons"]
    assert 1 <= workers["connections_created"] <= 10
    assert ssh["parameters"]["sshd limits"] == {"maxstartups": "10:30:100", "maxsessions": "10"}


def test_run_reports_missing_peer(tmp_path: Path) -> None:
    """A peer that cannot be imported is reported as not measured; the other pools still are."""
    fake = tmp_path / "fake" / "connpool"
    fake.mkdir(parents=True)
    (fake / "__init__.py").write_text('raise ImportError("connpool is hidden by the test")\n')
    env = {**os.environ, "PYTHONPATH": str(fake.parent)}

    data = run_smoke(tmp_path, "--only", "pool", env=env)

    assert "connpool is hidden by the test" in data["unavailable"]["connpool"]
    assert "connpool" not in data["baselines"]
    assert "asyncio.Queue" in data["baselines"]
