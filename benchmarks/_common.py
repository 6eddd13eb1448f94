"""Pieces shared by the benchmarks: sizes, timing, result records, tables, JSON, machine facts.

Every benchmark module offers ``run(size) -> Report`` for ``benchmarks/run.py`` and a ``main``
that runs it alone. A `Report` holds the printed tables, the raw figures, each comparison
with the names of both sides, and each goal with its verdict.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import datetime
import gc
import importlib.metadata
import json
import os
import platform
import statistics
import subprocess
import time
from collections.abc import Awaitable, Callable, Iterator, Mapping, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

SIZES = ("smoke", "quick", "full")
"""Run sizes: ``smoke`` checks that everything runs (seconds), ``quick`` gives rough figures,
``full`` gives the figures that are quoted."""

Operation = Callable[[], Awaitable[object]]

LIBRARIES = (
    "asyncext",
    "asyncssh",
    "aiosqlite",
    "anyio",
    "cryptography",
    "asyncio-connection-pool",
    "generic-connection-pool",
    "psycopg-pool",
    "psycopg",
    "connpool",
)
"""Distributions whose versions every report records: asyncext, its dependencies, the peers."""


# --- command line ------------------------------------------------------------------------


def add_size_arguments(parser: argparse.ArgumentParser) -> None:
    """Add ``--quick``, ``--smoke``, ``--json FILE`` and ``--strict`` to a benchmark's parser."""
    parser.add_argument("--quick", action="store_true", help="smaller loads and fewer rounds")
    parser.add_argument(
        "--smoke",
        action="store_true",
        help="tiny loads that only check that the benchmark runs; the figures mean nothing",
    )
    parser.add_argument("--json", metavar="FILE", help="also write the results as JSON to FILE")
    parser.add_argument(
        "--strict", action="store_true", help="exit with status 1 when a goal is not met"
    )


def size_of(arguments: argparse.Namespace) -> str:
    """Return the run size that ``--smoke`` and ``--quick`` select; ``full`` without either."""
    if arguments.smoke:
        return "smoke"
    return "quick" if arguments.quick else "full"


# --- timing ------------------------------------------------------------------------------


async def mean_seconds(operation: Operation, repeats: int) -> float:
    """Return the mean time of one call of ``operation`` over ``repeats`` calls, in seconds."""
    started = time.perf_counter()
    for _ in range(repeats):
        await operation()
    return (time.perf_counter() - started) / repeats


async def interleaved_seconds(
    variants: Mapping[str, Operation], repeats: int, rounds: int
) -> dict[str, float]:
    """Return the median over ``rounds`` of each variant's mean time per call, in seconds.

    Each round runs every variant in turn, so a change in the machine's load during the run
    affects all variants alike instead of whichever ran last.
    """
    samples: dict[str, list[float]] = {name: [] for name in variants}
    for _ in range(rounds):
        for name, operation in variants.items():
            gc.collect()
            samples[name].append(await mean_seconds(operation, repeats))
    return {name: statistics.median(values) for name, values in samples.items()}


async def rate(operation: Operation, seconds: float) -> float:
    """Return calls per second, calling ``operation`` repeatedly for about ``seconds``."""
    gc.collect()
    count = 0
    started = time.perf_counter()
    deadline = started + seconds
    while True:
        await operation()
        count += 1
        # Reading the clock every 16 calls keeps it out of the measured cost.
        if count % 16 == 0 and time.perf_counter() >= deadline:
            break
    return count / (time.perf_counter() - started)


def run_async(coroutine: Awaitable[Any]) -> Any:
    """Run ``coroutine`` in a new event loop and return its result."""

    async def main() -> Any:
        return await coroutine

    return asyncio.run(main())


@contextlib.contextmanager
def one_core() -> Iterator[int | None]:
    """Run the block, and the threads it starts, on one CPU; yield its number.

    A thread inherits the affinity of the thread that starts it, so aiosqlite's worker threads
    share the core of the event loop. Otherwise each connection's worker lands on either core,
    and the placement decides the figure: on the 2-core VM of docs/benchmarks.md, the same
    ``get`` took 0.03 ms or 0.1 ms depending on it. Yields None where Linux's affinity calls
    are missing.
    """
    if not hasattr(os, "sched_setaffinity"):
        yield None
        return
    previous = os.sched_getaffinity(0)
    core = min(previous)
    os.sched_setaffinity(0, {core})
    try:
        yield core
    finally:
        os.sched_setaffinity(0, previous)


# --- results -----------------------------------------------------------------------------


@dataclass
class Comparison:
    """One figure of asyncext against the same figure of a baseline, measured in one run.

    ``ratio`` is how many times faster asyncext is: ours / baseline for rates, baseline /
    ours for times. Below 1, the baseline is faster.
    """

    measure: str
    ours: str
    baseline: str
    ours_value: float
    baseline_value: float
    unit: str
    higher_is_better: bool

    @property
    def ratio(self) -> float:
        if self.higher_is_better:
            return self.ours_value / self.baseline_value
        return self.baseline_value / self.ours_value

    def to_json(self) -> dict[str, Any]:
        return {**asdict(self), "ratio": self.ratio}


@dataclass
class Goal:
    """A target a figure must meet: at least ``target`` when ``at_least``, else at most."""

    description: str
    value: float
    target: float
    at_least: bool = True

    @property
    def met(self) -> bool:
        return self.value >= self.target if self.at_least else self.value <= self.target

    def verdict(self) -> str:
        sign = ">=" if self.at_least else "<="
        outcome = "met" if self.met else "NOT MET"
        return f"{self.description}: {self.value:.2f} (goal {sign} {self.target:g}) {outcome}"

    def to_json(self) -> dict[str, Any]:
        return {**asdict(self), "met": self.met}


@dataclass
class Table:
    """Cells formatted for reading; the raw figures are in the report's ``figures``."""

    title: str
    headers: list[str]
    rows: list[list[str]]
    text_columns: int = 1
    """How many leading columns hold text, aligned left; the others hold numbers."""

    def text(self) -> str:
        """Return the table as aligned plain text: text columns left, numbers right."""
        widths = [
            max(len(line[index]) for line in [self.headers, *self.rows])
            for index in range(len(self.headers))
        ]

        def line(cells: Sequence[str]) -> str:
            aligned = [
                cell.ljust(width) if index < self.text_columns else cell.rjust(width)
                for index, (cell, width) in enumerate(zip(cells, widths, strict=True))
            ]
            return "  ".join(aligned).rstrip()

        divider = "-" * len(line(self.headers))
        body = [line(row) for row in self.rows]
        return "\n".join([self.title, line(self.headers), divider, *body])

    def markdown(self) -> str:
        """Return the table in Markdown, numbers right-aligned."""
        align = ["---"] * self.text_columns + ["---:"] * (len(self.headers) - self.text_columns)
        lines = [self.headers, align, *self.rows]
        return "\n".join("| " + " | ".join(cells) + " |" for cells in lines)


@dataclass
class Report:
    """What one benchmark measured, ready to print or to write as JSON."""

    name: str
    size: str
    parameters: dict[str, Any]
    tables: list[Table] = field(default_factory=list)
    figures: dict[str, Any] = field(default_factory=dict)
    comparisons: list[Comparison] = field(default_factory=list)
    goals: list[Goal] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    unavailable: dict[str, str] = field(default_factory=dict)
    """Baselines that could not be measured, with the reason (a peer not installed, say)."""
    seconds: float = 0.0
    """Wall-clock time the benchmark took, set by `timed`."""

    def text(self) -> str:
        """Return the tables, the notes and the goal verdicts as plain text."""
        parts = [table.text() for table in self.tables]
        if self.unavailable:
            parts.append(
                "\n".join(
                    f"not measured: {name}: {reason}" for name, reason in self.unavailable.items()
                )
            )
        if self.notes:
            parts.append("\n".join(f"note: {note}" for note in self.notes))
        if self.goals:
            parts.append("\n".join(f"goal {goal.verdict()}" for goal in self.goals))
        return "\n\n".join(parts)

    def to_json(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "size": self.size,
            "seconds": self.seconds,
            "parameters": self.parameters,
            "figures": self.figures,
            "comparisons": [comparison.to_json() for comparison in self.comparisons],
            "goals": [goal.to_json() for goal in self.goals],
            "notes": self.notes,
            "unavailable": self.unavailable,
            "tables": [asdict(table) for table in self.tables],
        }


def timed(run: Callable[[str], Report], size: str) -> Report:
    """Call ``run(size)`` and record its wall-clock time in the report."""
    started = time.perf_counter()
    report = run(size)
    report.seconds = time.perf_counter() - started
    return report


def check_size(size: str) -> None:
    if size not in SIZES:
        raise ValueError(f"unknown benchmark size {size!r}; choose one of {', '.join(SIZES)}")


# --- the machine -------------------------------------------------------------------------


def cpu_model() -> str:
    """Return the CPU model name from /proc/cpuinfo, or the platform's processor string."""
    try:
        with open("/proc/cpuinfo", encoding="utf-8") as cpuinfo:
            for line in cpuinfo:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown"


def library_versions() -> dict[str, str | None]:
    """Return the installed version of each of `LIBRARIES`, None for one not installed."""
    versions: dict[str, str | None] = {}
    for name in LIBRARIES:
        try:
            versions[name] = importlib.metadata.version(name)
        except importlib.metadata.PackageNotFoundError:
            versions[name] = None
    return versions


def source_revision() -> dict[str, Any]:
    """Return the git commit of the measured code and whether asyncext/ had local changes.

    Returns an empty dict outside a git checkout, or where git is missing.
    """
    root = Path(__file__).resolve().parent.parent
    try:
        commit = subprocess.run(
            ["git", "rev-parse", "HEAD"], cwd=root, capture_output=True, text=True, check=True
        ).stdout.strip()
        changes = subprocess.run(
            ["git", "status", "--porcelain", "--", "asyncext"],
            cwd=root,
            capture_output=True,
            text=True,
            check=True,
        ).stdout
    except (OSError, subprocess.CalledProcessError):
        return {}
    return {"commit": commit, "asyncext_changed_locally": bool(changes.strip())}


def machine() -> dict[str, Any]:
    """Return the facts about this machine and run that every set of figures needs."""
    return {
        "date": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
        "source": source_revision(),
        "cores": os.cpu_count(),
        "cpu": cpu_model(),
        "python": platform.python_version(),
        "implementation": platform.python_implementation(),
        "system": f"{platform.system()} {platform.release()} {platform.machine()}",
        "load_average": os.getloadavg(),
        "versions": library_versions(),
    }


def machine_line(facts: Mapping[str, Any]) -> str:
    """Return the machine facts as one line for the top of a printed report."""
    versions = ", ".join(
        f"{name} {version}" for name, version in facts["versions"].items() if version
    )
    load = ", ".join(f"{value:.2f}" for value in facts["load_average"])
    return (
        f"{facts['date']}; {facts['cores']} cores, {facts['cpu']}; Python {facts['python']}; "
        f"load average {load}\n{versions}"
    )


def write_json(path: str | os.PathLike[str], data: Mapping[str, Any]) -> None:
    Path(path).write_text(json.dumps(data, indent=2) + "\n", encoding="utf-8")


def main_for(run: Callable[[str], Report], description: str, argv: list[str] | None) -> int:
    """Parse the common options, run one benchmark, print it and write its JSON if asked.

    Returns 1 with ``--strict`` when a goal is not met, so that a script can gate on it, and
    0 otherwise.
    """
    parser = argparse.ArgumentParser(description=description)
    add_size_arguments(parser)
    arguments = parser.parse_args(argv)

    facts = machine()
    print(machine_line(facts))
    print()
    report = timed(run, size_of(arguments))
    print(report.text())
    if arguments.json:
        write_json(arguments.json, {"machine": facts, "reports": [report.to_json()]})
    if arguments.strict and not all(goal.met for goal in report.goals):
        return 1
    return 0


def milliseconds(seconds: float) -> str:
    return f"{seconds * 1000:,.3f}"


def per_second(value: float) -> str:
    return f"{value:,.0f}"


def times(ratio: float) -> str:
    return f"{ratio:.2f}x"
