"""`simulate`: the deterministic fault-injection simulation over many seeds, and with
`--report` the other backend and the bad-input corpus (docs/RELIABILITY.md).

The corpus feeds bad command lines to the CLI's own entry point, which `main` hands this
command as `args.entry_point`: the command modules sit below the entry, never import it.
"""

from __future__ import annotations

import argparse
import contextlib
import re
import sys
import time
from pathlib import Path

from rich.console import Console

from worker import logs
from worker.cli.output import emit, out
from worker.cli.parsing import Command, Parser

_DURATION = re.compile(r"(?:(\d+)h)?(?:(\d+)m)?(?:(\d+(?:\.\d+)?)s?)?")


def _duration(value: str) -> float:
    """argparse type for `simulate --time-budget`: 90s, 45m, 1h30m, or plain seconds."""
    match = _DURATION.fullmatch(value.strip())
    if not value.strip() or match is None:
        raise argparse.ArgumentTypeError(f"not a duration (like 90s, 45m, 1h30m): {value!r}")
    hours, minutes, seconds = (float(g) if g else 0.0 for g in match.groups())
    total = hours * 3600 + minutes * 60 + seconds
    if total <= 0:
        raise argparse.ArgumentTypeError(f"a time budget must be positive: {value!r}")
    return total


def simulate(args: argparse.Namespace) -> int:
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TimeRemainingColumn

    from worker.proof import runner
    from worker.proof.report import write_report
    from worker.proof.run_summary import RunSummary, SeedResult, reproduce_command

    logs.configure("critical")  # the simulation provokes failures on purpose: keep it quiet
    errors = Console(stderr=True)
    bar = (
        Progress(
            "{task.description}",
            BarColumn(),
            MofNCompleteColumn(),
            TimeRemainingColumn(),
            console=errors,
            transient=True,
        )
        if errors.is_terminal
        else None
    )
    jobs = args.jobs or runner.default_jobs()

    def run_one(backend: str, seeds: int, budget: float | None) -> RunSummary:
        task = bar.add_task(f"{backend} seeds", total=seeds) if bar is not None else None
        violations = 0

        def progress(result: SeedResult) -> None:
            nonlocal violations
            report = result.report
            if report.violations:  # said at once, not only at the end of a long run
                violations += 1
                errors.print(
                    f"seed {report.seed} ({backend}) VIOLATION: {'; '.join(report.violations)}"
                    f"\n  reproduce: {reproduce_command(backend, report.seed, args.ops)}",
                    markup=False,
                    highlight=False,
                )
            if bar is not None and task is not None:
                bar.update(task, advance=1, description=f"{backend} seeds, {violations} failing")
            elif not report.violations:
                sys.stderr.write(
                    f"seed {report.seed} ({backend}): ok, {result.seconds:.1f}s, "
                    f"peak RSS {result.peak_rss_mb:.0f} MB\n"
                )
                sys.stderr.flush()

        return runner.run_seeds(
            backend,
            args.start,
            seeds,
            args.ops,
            endpoint=args.endpoint,
            jobs=jobs,
            time_budget=budget,
            progress=progress,
        )

    began = time.monotonic()
    runs: list[RunSummary] = []
    bad_inputs = None
    with runner.sigterm_interrupts(), bar if bar is not None else contextlib.nullcontext():
        runs.append(run_one(args.backend, args.seeds, args.time_budget))
        if args.report and not runs[-1].interrupted:
            other = "local" if args.backend == "moto" else "moto"
            left = None
            if args.time_budget is not None:
                left = max(0.0, args.time_budget - (time.monotonic() - began))
            runs.append(run_one(other, args.other_seeds, left))
    interrupted = any(r.interrupted for r in runs)
    if args.report and not interrupted:
        bad_inputs = runner.run_bad_inputs(args.entry_point)
        write_report(Path(args.report), runs, bad_inputs)
    document = {
        "runs": [r.as_json() for r in runs],
        "bad_inputs": bad_inputs,
        "interrupted": interrupted,
    }
    failures = [(r, f) for r in runs for f in r.failures]
    bad = [p for v in (bad_inputs or {}).values() for p in v["problems"]]

    def human() -> None:
        for run in runs:
            stopped = (
                ", interrupted"
                if run.interrupted
                else ", time budget reached"
                if run.time_budget_reached
                else ""
            )
            out.print(
                f"{run.backend}: {len(run.seeds)} seeds x {run.ops} operations on {run.jobs} "
                f"jobs, {sum(run.faults.values())} faults injected, "
                f"{sum(run.checks.values())} invariant checks, "
                f"{len(run.failures)} failing seeds, {run.seconds:.0f}s, "
                f"peak RSS {run.peak_rss_mb:.0f} MB{stopped}"
            )
        if bad_inputs is not None:
            tried = sum(v["tried"] for v in bad_inputs.values())
            out.print(f"bad inputs: {tried} tried, {len(bad)} mishandled")
        if args.report and not interrupted:
            out.print(f"report written to {args.report}")

    emit(args, document, human)
    for run, failure in failures:
        sys.stderr.write(
            f"budget-worker: seed {failure.seed} violated: "
            f"{'; '.join(failure.violations)}; reproduce: "
            f"{run.reproduce(failure.seed)}\n"
        )
    if failures or bad:
        return 1
    return 130 if interrupted else 0


def _arguments(sim: Parser) -> None:
    sim.add_argument("--backend", choices=["moto", "local"], default="moto")
    sim.add_argument("--seeds", type=int, default=20, help="how many seeds (default 20)")
    sim.add_argument("--start", type=int, default=0, help="first seed (default 0)")
    sim.add_argument("--ops", type=int, default=40, help="operations per seed (default 40)")
    sim.add_argument("--endpoint", help="a running DynamoDB Local for --backend local")
    sim.add_argument(
        "--report",
        metavar="FILE",
        help="also run the other backend and the bad-input corpus, and write "
        "the reliability report (docs/RELIABILITY.md)",
    )
    sim.add_argument(
        "--other-seeds",
        type=int,
        default=5,
        help="seeds on the other backend with --report (default 5)",
    )
    sim.add_argument(
        "--jobs",
        type=int,
        default=0,
        help="worker processes (default: one per core); a seed's result does not depend on it",
    )
    sim.add_argument(
        "--time-budget",
        type=_duration,
        metavar="DURATION",
        help="run as many seeds as fit in this time (e.g. 90s, 45m, 1h30m)",
    )


COMMANDS = [
    Command(
        "simulate",
        simulate,
        "deterministic fault-injection simulation over many seeds (exit 1 on a violation)",
        _arguments,
        prints='{"runs": [{"backend", "seeds", "first_seed", "ops_per_seed", "seconds", '
        '"operations", "faults", "checks", "paths", "violations"}], "bad_inputs"}; paths '
        "counts the failure paths and pre-emptions a run exercised",
    ),
]
