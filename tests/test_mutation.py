"""The mutation check of the proof (worker/proof/mutation.py): the planted bugs still apply to
the code, and the cheap ones (the checkpoint rule, the read's currency) are each found by a
bounded simulation run on a mutated copy of the package."""

from __future__ import annotations

from pathlib import Path

import pytest

from worker.proof import mutation


@pytest.mark.parametrize("mutant", mutation.MUTANTS, ids=lambda m: m.name)
def test_each_planted_bug_still_applies_to_the_code(
    mutant: mutation.Mutant, tmp_path: Path
) -> None:
    copy = mutation.apply(mutant, tmp_path)
    planted = (copy / mutant.path).read_text()
    original = (mutation.PACKAGE / mutant.path).read_text()
    assert planted != original
    assert planted.count(mutant.new) >= 1 or mutant.new == ""


def test_a_mutant_that_no_longer_matches_is_refused(tmp_path: Path) -> None:
    stale = mutation.Mutant("stale", "-", "model/fold.py", "no such text", "x")
    with pytest.raises(ValueError, match="found it 0 times"):
        mutation.apply(stale, tmp_path)


def test_the_hunt_refuses_to_run_on_the_unmutated_package() -> None:
    with pytest.raises(SystemExit, match="not the mutated copy"):
        mutation.main(["hunt", "--expect-root", "/nonexistent-mutant-copy", "--seeds", "1"])


@pytest.mark.parametrize("name", mutation.CHEAP)
def test_a_cheap_planted_bug_is_found_by_a_bounded_run(name: str) -> None:
    """Without the correlated faults no catch-up failed, so a processor checkpointing past a
    pending budget passed every seed; without the currency check a read returning an old
    projection did; and the simulation's record processor once caught up budgets one by one,
    so a batch-wide position read that took a budget behind for current passed too. Each must
    now be found within ten seeds of 40 operations (since every correlated schedule has the
    throttle-and-refuse incident: the checkpoint at seed 0, operation 14, the read at seed 0,
    operation 23, the batch-wide read at seed 0, operation 6). The snapshot reader's range read
    after its markers (seed 700346) needs the reader's set-up and race point: seed 0,
    operation 36."""
    [mutant] = mutation.by_name([name])
    result = mutation.check(mutant, start=0, seeds=10, ops=40, timeout=600)
    assert result.error is None, result.error
    assert result.found, f"{name} survived {result.seeds_run} seeds"
    assert result.seed is not None and result.at_operation is not None


def test_the_report_shows_each_planted_bug_with_its_verdict() -> None:
    from worker.proof.report import render_mutation_runs

    def result(name: str, found: bool, equivalent: str | None = None) -> dict[str, object]:
        return {
            "name": name,
            "breaks": "I9",
            "found": found,
            "seed": 4 if found else None,
            "at_operation": 17 if found else None,
            "violation": "it broke" if found else None,
            "seeds_run": 5 if found else 20,
            "seconds": 1.0,
            "equivalent": equivalent,
            "error": None,
        }

    document = {
        "when": "2026-12-05 18:00 UTC",
        "command": "python -m worker.proof.mutation run",
        "start": 0,
        "seeds": 20,
        "ops": 80,
        "results": [
            result("baseline (no mutant)", False),
            result("caught", True),
            result("twin", False, "no behaviour tells it apart"),
        ],
    }
    lines = render_mutation_runs([("2026-12-05-moto", document)])
    assert "Planted bugs found: 1 of 2 (1 survivor(s) argued equivalent below)" in "\n".join(lines)
    assert "| `caught` | I9 | yes | 4 | 17 | 5 | it broke |" in lines
    assert any(line.startswith("| `twin` | I9 | no |") and "equivalent" in line for line in lines)


def test_every_seed_counts_the_seeds_that_find_a_planted_bug_without_stopping() -> None:
    """`--every-seed` says whether a bug is found by the schedules' design or by one lucky
    draw: it must run past the first finding seed and list every one."""
    [mutant] = mutation.by_name(["read-not-current"])
    result = mutation.check(mutant, start=0, seeds=3, ops=30, timeout=600, every_seed=True)
    assert result.error is None, result.error
    assert result.found and result.seed is not None and result.seed < 2, result
    assert result.seeds_run == 3  # did not stop at the first finding seed
    assert result.finding_seeds is not None and result.finding_seeds[0] == result.seed
