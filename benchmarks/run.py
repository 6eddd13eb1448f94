"""Run every benchmark, print one table per measurement, and write every figure as JSON.

Each figure of asyncext is compared with baselines measured in the same run: raw aiosqlite
(``store.py``); asyncio.Queue and the pools asyncio-connection-pool, generic-connection-pool,
psycopg_pool and connpool (``pool.py``, ``pool_scale.py``); unpooled clients and raw asyncssh
(``ssh.py``). Install the peers with ``pip install -e '.[bench]'``; the SSH benchmark needs
OpenSSH's sshd.

    python benchmarks/run.py [--quick] [--json FILE] [--markdown FILE] [--only NAME ...]

The exit status is 0 when every benchmark ran, and 1 when one failed to run or, with
``--strict``, when a goal is not met.
"""

from __future__ import annotations

import argparse
import os
import sys
import time
import traceback
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pool
import pool_scale
import ssh
import store
from _common import (
    Report,
    Table,
    add_size_arguments,
    machine,
    machine_line,
    size_of,
    timed,
    write_json,
)

BENCHMARKS: dict[str, Callable[[str], Report]] = {
    "store": store.run,
    "pool": pool.run,
    "pool_scale": pool_scale.run,
    "ssh": ssh.run,
}


def summary(reports: list[Report]) -> Table:
    """Return every comparison of every report in one table."""
    rows = [
        [
            report.name,
            comparison.measure,
            comparison.baseline,
            f"{comparison.ratio:,.2f}x",
        ]
        for report in reports
        for comparison in report.comparisons
    ]
    return Table(
        title="Every comparison: how many times faster asyncext is than the baseline",
        headers=["benchmark", "measure", "baseline", "asyncext / baseline"],
        rows=rows,
        text_columns=3,
    )


def markdown(facts: dict[str, Any], reports: list[Report], command: str) -> str:
    """Return the tables, notes and goals of a run as Markdown, headed by the machine facts."""
    versions = ", ".join(f"{name} {version}" for name, version in facts["versions"].items())
    lines = [
        f"Command: `{command}`, {facts['date']}.",
        f"Machine: {facts['cores']} cores ({facts['cpu']}), Python {facts['python']}, "
        f"{facts['system']}; load average (1, 5, 15 min) "
        f"{', '.join(f'{value:.2f}' for value in facts['load_average'])} at the start, "
        f"{', '.join(f'{value:.2f}' for value in facts['load_average_end'])} at the end.",
        f"Versions: {versions}.",
    ]
    source = facts["source"]
    if source:
        changed = " with local changes to asyncext/" if source["asyncext_changed_locally"] else ""
        lines.append(f"Source: commit {source['commit'][:12]}{changed}.")
    for report in reports:
        lines += ["", f"### {report.name} ({report.seconds:.0f} s)"]
        for table in report.tables:
            lines += ["", table.title + ":", "", table.markdown()]
        if report.unavailable:
            lines += [""] + [
                f"- Not measured: {name}: {reason}" for name, reason in report.unavailable.items()
            ]
        if report.notes:
            lines += [""] + [f"- Note: {note}" for note in report.notes]
        if report.goals:
            lines += [""] + [f"- Goal {goal.verdict()}" for goal in report.goals]
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    add_size_arguments(parser)
    parser.add_argument("--markdown", metavar="FILE", help="also write the tables as Markdown")
    parser.add_argument(
        "--only",
        nargs="+",
        choices=list(BENCHMARKS),
        metavar="NAME",
        help=f"run only these benchmarks: {', '.join(BENCHMARKS)}",
    )
    arguments = parser.parse_args(argv)
    size = size_of(arguments)
    command = " ".join(["python benchmarks/run.py", *(sys.argv[1:] if argv is None else argv)])

    facts = machine()
    print(machine_line(facts))
    started = time.perf_counter()
    reports: list[Report] = []
    errors: dict[str, str] = {}
    for name, run in BENCHMARKS.items():
        if arguments.only and name not in arguments.only:
            continue
        print(f"\n=== {name} ({size}) ===\n", flush=True)
        try:
            report = timed(run, size)
        except Exception as exc:
            # One benchmark that cannot run (no sshd, say) leaves the others' figures usable.
            traceback.print_exc()
            errors[name] = f"{type(exc).__name__}: {exc}"
            continue
        reports.append(report)
        print(report.text())
        print(f"\n({name} took {report.seconds:.1f} s)", flush=True)

    total = time.perf_counter() - started
    # Other work on the machine changes the figures, so the load is recorded at both ends.
    facts["load_average_end"] = os.getloadavg()
    print()
    print(summary(reports).text())
    unmet = [goal for report in reports for goal in report.goals if not goal.met]
    print()
    print(f"{len(unmet)} goal(s) not met" + "".join(f"\n  {goal.verdict()}" for goal in unmet))
    for name, error in errors.items():
        print(f"benchmark {name} failed to run: {error}")
    load = ", ".join(f"{value:.2f}" for value in facts["load_average_end"])
    print(f"total {total:.1f} s; load average at the end {load}")

    if arguments.json:
        baselines = sorted(
            {comparison.baseline for report in reports for comparison in report.comparisons}
        )
        write_json(
            arguments.json,
            {
                "command": command,
                "size": size,
                "seconds": total,
                "machine": facts,
                "baselines": baselines,
                "unavailable": {
                    name: reason
                    for report in reports
                    for name, reason in report.unavailable.items()
                },
                "reports": [report.to_json() for report in reports],
                "errors": errors,
            },
        )
    if arguments.markdown:
        Path(arguments.markdown).write_text(markdown(facts, reports, command), encoding="utf-8")

    if errors or (arguments.strict and unmet):
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
