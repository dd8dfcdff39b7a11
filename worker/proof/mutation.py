"""A mutation check of the proof: does the simulation find the bugs it claims to rule out?

Each `Mutant` is one planted bug, a single textual edit of one file of the package, aimed at
one invariant of docs/DESIGN.md or one race the code defends against. `check` copies the
package to a temporary directory, applies the edit there (never to the working tree), and
runs the simulation on the copy in a child process, seed after seed, until the first
violation or the seed limit. A mutant that survives is either a gap in the proof or
equivalent (no behaviour can tell it from the original); `Mutant.equivalent` says why when
it is the latter, and the table says which.

    python -m worker.proof.mutation run --seeds 20 --ops 80 --json docs/mutation-runs/X.json
    python -m worker.proof.mutation run --only checkpoint-past-pending --seeds 5
    python -m worker.proof.mutation run --only read-torn --seeds 20 --every-seed

`--every-seed` does not stop at the first violation: it counts the seeds that find the bug,
which says whether a planted bug is found by the schedules' design or by one lucky draw.

Edits are matched exactly and must occur once in their file, so a refactoring that moves the
code makes the mutant fail loudly ("not applicable") instead of silently testing nothing, and
the child checks that it imported the copy, not the installed package.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

PACKAGE = Path(__file__).resolve().parents[1]  # the `worker` package this module belongs to


@dataclass(frozen=True, slots=True)
class Mutant:
    name: str
    breaks: str  # the invariant or defended race
    path: str  # relative to the package
    old: str
    new: str
    equivalent: str | None = None  # why surviving is expected, if it is


MUTANTS: tuple[Mutant, ...] = (
    Mutant(
        "persist-head-unordered",
        "I1 commit order = ULID order",
        "engine/persist.py",
        '"OR last_event_id < :e",',
        '"OR last_event_id <> :e",',
    ),
    Mutant(
        "step-pointer-unconditional",
        "I2 atomic step from exactly the previous pointer",
        "model/step.py",
        '"ConditionExpression": "last_event_id = :previous",',
        '"ConditionExpression": "attribute_exists(sk) OR last_event_id = :previous",',
    ),
    Mutant(
        "item-condition-always-true",
        "I3 item writes conditional on last_event_id",
        "model/step.py",
        'I3_CONDITION = "attribute_not_exists(sk) OR last_event_id < :event"',
        'I3_CONDITION = "attribute_exists(sk) OR attribute_not_exists(sk) '
        'OR last_event_id < :event"',
        equivalent="I3 is a second guard behind I2: every writer of a transaction item goes "
        "through a step whose pointer condition already excludes a stale write, so only an "
        "item written outside the projector (which nothing in the schedule does) can tell "
        "them apart; tests/test_projector.py::test_item_ahead_of_pointer_is_never_overwritten "
        "plants such an item",
    ),
    Mutant(
        "dirty-new-month-only",
        "I4 snapshot invalidation never lost",
        "model/fold.py",
        "months = {t.month for t in (self.before, self.after) if t is not None}",
        "months = {t.month for t in (self.after,) if t is not None}",
    ),
    Mutant(
        "persist-ignores-alias",
        "I5 exactly-once persistence (reassigned intents)",
        "engine/persist.py",
        "found = self._via_alias(event, requested, bound)",
        "found = None",
    ),
    Mutant(
        "rejection-not-recorded",
        "I6 a poison event is recorded as rejected",
        "model/step.py",
        "            self.rejected.append(_rejected_item(budget, change))\n",
        "",
    ),
    Mutant(
        "read-not-current",
        "I7 currency: a read equals the head",
        "engine/validated_read.py",
        "if pointer == head:",
        "if True:",
    ),
    Mutant(
        "read-torn",
        "I7 consistency: race of a step during the read's query",
        "engine/validated_read.py",
        "if after == pointer:",
        "if True:",
    ),
    Mutant(
        "checkpoint-past-pending",
        "checkpoint rule: no checkpoint past a pending budget",
        "stream/record_processor.py",
        'if self.pending:\n                metrics.current().count("CheckpointsHeld")',
        'if False:\n                metrics.current().count("CheckpointsHeld")',
    ),
    Mutant(
        "batch-read-failure-taken-as-current",
        "checkpoint rule: a failed batch-wide position read is no outcome",
        "engine/catch_ups.py",
        "                    yield budget, exc\n",
        "                    yield budget, Position(None, None)\n",
    ),
    Mutant(
        "batch-read-skips-behind",
        "checkpoint rule: a budget behind taken as current by the batch-wide read",
        "engine/catch_ups.py",
        "        if position.current:\n",
        "        if position.pointer is not None:\n",
    ),
    Mutant(
        "shard-end-past-pending",
        "checkpoint rule at shard end",
        "stream/record_processor.py",
        "if not self.pending:\n                    break",
        "if True:\n                    break",
    ),
    Mutant(
        "rebuild-overwrites-newer",
        "race: a slow rebuild overtaking a newer one",
        "engine/snapshots.py",
        'ConditionExpression="attribute_not_exists(sk) OR as_of_event <= :p",',
        'ConditionExpression="attribute_not_exists(sk) OR attribute_exists(sk)",',
    ),
    Mutant(
        "marker-cleared-unconditionally",
        "race: a newer invalidation during a rebuild must survive",
        "engine/snapshots.py",
        'ConditionExpression="event_id = :e",',
        'ConditionExpression="attribute_exists(sk) OR event_id = :e",',
    ),
    Mutant(
        "rebuild-ignores-moved-pointer",
        "race: a rebuild computed while a step committed",
        "engine/snapshots.py",
        "if self.store.pointer(budget) != pointer:",
        "if False:",
    ),
    Mutant(
        "reader-snapshots-before-markers",
        "race: the snapshot reader's two queries in the wrong order",
        "engine/snapshots.py",
        "    markers = snaps.markers(budget)\n    stored = snaps.snapshots(budget)\n",
        "    stored = snaps.snapshots(budget)\n    markers = snaps.markers(budget)\n",
    ),
    Mutant(
        "reader-range-after-markers",
        "race: the snapshot reader's month range read after its markers (seed 700346)",
        "engine/snapshots.py",
        "    span = snaps.month_range(budget)\n    markers = snaps.markers(budget)\n"
        "    stored = snaps.snapshots(budget)\n",
        "    markers = snaps.markers(budget)\n    stored = snaps.snapshots(budget)\n"
        "    span = snaps.month_range(budget)\n",
    ),
    Mutant(
        "projector-keeps-cache-after-race",
        "race: a projector deciding from items read before it lost a race",
        "engine/projector.py",
        "                    cache.clear()\n",
        "",
    ),
)

# Cheap enough for `make test` (tests/test_mutation.py): each is found within a few seeds.
CHEAP = (
    "checkpoint-past-pending",
    "read-not-current",
    "batch-read-skips-behind",
    "reader-range-after-markers",
)


def by_name(names: Sequence[str] | None) -> list[Mutant]:
    if not names:
        return list(MUTANTS)
    known = {m.name: m for m in MUTANTS}
    unknown = [n for n in names if n not in known]
    if unknown:
        raise SystemExit(f"unknown mutants: {', '.join(unknown)} (known: {', '.join(known)})")
    return [known[n] for n in names]


def apply(mutant: Mutant | None, root: Path) -> Path:
    """Copy the package under `root` and plant `mutant` in the copy (None: an unmutated
    copy, the baseline). Raises ValueError if the edit does not match exactly once."""
    copy = root / "worker"
    shutil.copytree(PACKAGE, copy, ignore=shutil.ignore_patterns("__pycache__"))
    if mutant is not None:
        target = copy / mutant.path
        text = target.read_text()
        if text.count(mutant.old) != 1:
            raise ValueError(
                f"mutant {mutant.name}: expected the edited text once in {mutant.path}, "
                f"found it {text.count(mutant.old)} times (the code moved: update the mutant)"
            )
        target.write_text(text.replace(mutant.old, mutant.new))
    return copy


@dataclass(slots=True)
class MutantResult:
    name: str
    breaks: str
    found: bool
    seed: int | None = None
    at_operation: int | None = None
    violation: str | None = None
    seeds_run: int = 0
    seconds: float = 0.0
    equivalent: str | None = None
    error: str | None = None  # the mutant could not be applied or the child failed
    finding_seeds: list[int] | None = None  # with --every-seed: every seed that found it


def check(
    mutant: Mutant | None,
    *,
    start: int,
    seeds: int,
    ops: int,
    timeout: float = 900.0,
    every_seed: bool = False,
) -> MutantResult:
    """Plant `mutant` in a copy and hunt: seeds from `start` until the first violation (or
    through every seed, `every_seed`)."""
    name = mutant.name if mutant else "baseline (no mutant)"
    breaks = mutant.breaks if mutant else "-"
    equivalent = mutant.equivalent if mutant else None
    began = time.monotonic()
    with tempfile.TemporaryDirectory(prefix="budget-worker-mutant-") as tmp:
        try:
            apply(mutant, Path(tmp))
        except ValueError as exc:
            return MutantResult(name, breaks, False, equivalent=equivalent, error=str(exc))
        env = {**os.environ, "PYTHONPATH": tmp, "PYTHONDONTWRITEBYTECODE": "1"}
        command = [sys.executable, "-m", "worker.proof.mutation", "hunt"]
        command += ["--start", str(start), "--seeds", str(seeds), "--ops", str(ops)]
        command += ["--expect-root", tmp] + (["--every-seed"] if every_seed else [])
        try:
            done = subprocess.run(
                command, cwd=tmp, env=env, capture_output=True, text=True, timeout=timeout
            )
        except subprocess.TimeoutExpired:
            return MutantResult(
                name, breaks, False, seconds=time.monotonic() - began, error="timed out"
            )
    lines = done.stdout.strip().splitlines()
    if done.returncode != 0 or not lines:
        tail = done.stderr.strip().splitlines()[-3:]
        return MutantResult(name, breaks, False, error=f"child failed: {' | '.join(tail)}")
    found = json.loads(lines[-1])
    return MutantResult(
        name,
        breaks,
        found["found"],
        seed=found.get("seed"),
        at_operation=found.get("at_operation"),
        violation=found.get("violation"),
        seeds_run=found["seeds_run"],
        seconds=round(time.monotonic() - began, 1),
        equivalent=equivalent,
        finding_seeds=found.get("finding_seeds"),
    )


def hunt(start: int, seeds: int, ops: int, *, every_seed: bool = False) -> dict[str, Any]:
    """In the child, on the copy: run seeds until the first violation (moto), or through
    every seed, listing those that found one."""
    from worker import logs
    from worker.proof.runner import SeedRunner

    logs.configure("critical")
    runner = SeedRunner(None)
    first: dict[str, Any] = {"found": False, "seeds_run": seeds}
    finding: list[int] = []
    for n, seed in enumerate(range(start, start + seeds), start=1):
        report = runner.run(seed, ops).report
        if not report.violations:
            continue
        finding.append(seed)
        if not first["found"]:
            first = {
                "found": True,
                "seed": seed,
                "at_operation": report.at_operation,
                "violation": report.violations[0],
                "seeds_run": n,
            }
        if not every_seed:
            return first
    return {**first, "seeds_run": seeds, "finding_seeds": finding} if every_seed else first


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m worker.proof.mutation")
    commands = parser.add_subparsers(dest="command", required=True)
    run = commands.add_parser("run", help="plant each mutant in a copy and run the simulation")
    run.add_argument("--only", nargs="*", metavar="NAME", help="these mutants (default: all)")
    run.add_argument("--baseline", action="store_true", help="also run the unmutated copy")
    run.add_argument("--json", metavar="FILE", help="write the results document here")
    child = commands.add_parser("hunt", help="(internal) run in the copy")
    child.add_argument("--expect-root", required=True)
    for sub in (run, child):
        sub.add_argument("--start", type=int, default=0)
        sub.add_argument("--seeds", type=int, default=20)
        sub.add_argument("--ops", type=int, default=80)
        sub.add_argument(
            "--every-seed",
            action="store_true",
            help="run every seed, counting those that find the bug (default: stop at the first)",
        )
    args = parser.parse_args(argv)
    if args.command == "hunt":
        if not PACKAGE.is_relative_to(Path(args.expect_root).resolve()):
            raise SystemExit(f"imported {PACKAGE}, not the mutated copy: nothing would be tested")
        print(json.dumps(hunt(args.start, args.seeds, args.ops, every_seed=args.every_seed)))
        return 0
    chosen: list[Mutant | None] = [None] if args.baseline else []
    chosen += by_name(args.only)
    results = []
    for mutant in chosen:
        result = check(
            mutant, start=args.start, seeds=args.seeds, ops=args.ops, every_seed=args.every_seed
        )
        results.append(result)
        verdict = "found" if result.found else "ERROR" if result.error else "survived"
        print(
            f"{result.name}: {verdict} after {result.seeds_run} seed(s), {result.seconds}s"
            + (f" (seed {result.seed}, operation {result.at_operation})" if result.found else "")
            + (
                f"; found by {len(result.finding_seeds)} of {result.seeds_run} seeds"
                if result.finding_seeds is not None
                else ""
            )
            + (f": {result.error}" if result.error else ""),
            file=sys.stderr,
            flush=True,
        )
    document = {
        "when": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime()),
        "command": "python -m worker.proof.mutation "
        + " ".join(sys.argv[1:] if argv is None else argv),
        "start": args.start,
        "seeds": args.seeds,
        "ops": args.ops,
        "every_seed": args.every_seed,
        "results": [asdict(r) for r in results],
    }
    if args.json:
        Path(args.json).write_text(json.dumps(document, indent=1) + "\n")
    from worker.proof.runner import render_mutation_table

    print("\n".join(render_mutation_table(document)))
    survivors = [r for r in results if r.name != "baseline (no mutant)" and not r.found]
    baseline_failed = any(r.name == "baseline (no mutant)" and r.found for r in results)
    return 1 if baseline_failed or any(not r.equivalent for r in survivors) else 0


if __name__ == "__main__":
    raise SystemExit(main())
