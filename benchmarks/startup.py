"""Start-up of a shard's record processor: precompiled bytecode against compiling from source.

KCL spawns one `budget-worker kcl-processor` per shard it leases (again for every child shard
when a DynamoDB stream's shard rolls over, about every four hours), and `run --driver local`,
`replay` and the Lambda handler's cold start pay the same imports. A process that cannot write
`__pycache__` (the image runs as a non-root user over a root-owned virtualenv; this machine sets
PYTHONDONTWRITEBYTECODE) compiles boto3, botocore, structlog and rich from source on every
start unless the install compiled them, which is what `uv sync --compile-bytecode` (make setup,
the Dockerfile) does.

Measured: from spawning the child until it answers MultiLang's `initialize` (imports, settings,
clients; no DynamoDB call is made), in the virtualenv as installed ("precompiled") and with the
bytecode cache pointed at an empty folder ("from source": PYTHONPYCACHEPREFIX, nothing written).
Both are given as multiples of a bare interpreter start (`python -c pass`) measured in the same
run, alternating, so the machine's load weighs on all three alike. No server is needed.
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import sysconfig
import tempfile
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from benchmarks import harness
from worker.stream.local_driver import PROCESSOR_COMMAND
from worker.stream.multilang import MultiLangChild


def child_env(source_only: Path | None) -> dict[str, str]:
    env = {
        **os.environ,
        # Never contacted: the child makes no call before its first records.
        "AWS_ENDPOINT_URL": "http://127.0.0.1:9",
        "AWS_DEFAULT_REGION": "us-east-1",
        "AWS_ACCESS_KEY_ID": "startup",
        "AWS_SECRET_ACCESS_KEY": "startup",
        "BUDGET_LOG_LEVEL": "error",
        "BUDGET_METRICS": "off",
    }
    env.pop("BUDGET_RETRY_QUEUE_URL", None)
    if source_only is not None:
        env["PYTHONPYCACHEPREFIX"] = str(source_only)
        env["PYTHONDONTWRITEBYTECODE"] = "1"
    return env


def processor_ready(env: dict[str, str]) -> float:
    """Seconds from spawning the child until its `initialize` is answered."""
    started = time.perf_counter()
    child = MultiLangChild(PROCESSOR_COMMAND, env=env, stderr=subprocess.DEVNULL)
    try:
        child.initialize("shardId-startup", "TRIM_HORIZON")
        return time.perf_counter() - started
    finally:
        child.close()


def bare_interpreter() -> float:
    started = time.perf_counter()
    subprocess.run([sys.executable, "-c", "pass"], check=True)
    return time.perf_counter() - started


def compiled_files() -> int:
    """Bytecode files the virtualenv's site-packages holds (0: nothing was precompiled)."""
    site = Path(sysconfig.get_paths()["purelib"])
    return sum(1 for _ in site.rglob("*.pyc"))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=9)
    parser.add_argument("--out", default=str(harness.RESULTS / "startup.json"))
    args = parser.parse_args()
    bare: list[float] = []
    compiled: list[float] = []
    source: list[float] = []
    with tempfile.TemporaryDirectory(prefix="no-bytecode-") as empty:
        for _ in range(args.rounds):
            bare.append(bare_interpreter())
            compiled.append(processor_ready(child_env(None)))
            source.append(processor_ready(child_env(Path(empty))))
            if any(Path(empty).iterdir()):
                raise RuntimeError("the from-source child wrote bytecode; the figures mix modes")
    base = statistics.median(bare)

    def figures(samples: list[float]) -> dict[str, Any]:
        median = statistics.median(samples)
        return {
            "seconds": [round(s, 3) for s in samples],
            "median_s": round(median, 3),
            "ratio_to_bare_interpreter": round(median / base, 1),
        }

    results: dict[str, Any] = {
        "when": datetime.now(UTC).isoformat(timespec="seconds"),
        "command": "python -m benchmarks.startup",
        "python": sys.version.split()[0],
        "site_packages_pyc_files": compiled_files(),
        "bare_interpreter": figures(bare),
        "processor_ready_precompiled": figures(compiled),
        "processor_ready_from_source": figures(source),
        "from_source_over_precompiled": round(
            statistics.median(source) / statistics.median(compiled), 2
        ),
    }
    harness.write_results(Path(args.out), results)
    for name in ("bare_interpreter", "processor_ready_precompiled", "processor_ready_from_source"):
        row = results[name]
        print(f"{name}: median {row['median_s']} s, {row['ratio_to_bare_interpreter']}x bare")
    print(f"from source / precompiled: {results['from_source_over_precompiled']}")


if __name__ == "__main__":
    main()
