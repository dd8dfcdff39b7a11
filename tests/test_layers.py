"""The package's layers, read from the import lines alone (docs/ARCHITECTURE.md, "Layers").

Each module may import only from its own layer or a lower one; `worker.model` imports no I/O at
all; no two modules import each other, directly or in a circle. Imports inside functions count:
a lazy import is still a dependency.
"""

from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parent.parent / "worker"

# Lower number = lower layer. The foundation modules sit below everything.
RANKS = {
    "worker.errors": 0,
    "worker.config": 0,
    "worker.logs": 0,
    "worker.metrics": 0,
    "worker.model": 1,
    "worker.engine": 2,
    "worker.stream": 3,
    "worker.local": 4,
    "worker.proof": 5,
    "worker.api": 6,
    "worker.cli": 7,
    "worker.__main__": 8,
    "worker": 8,  # the package itself re-exports the API
}
# What the pure model may import besides itself and the foundation's errors.
MODEL_ALLOWED = {"ulid"} | set(sys.stdlib_module_names)


def module_name(path: Path) -> str:
    parts = path.relative_to(PACKAGE.parent).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def modules() -> dict[str, Path]:
    return {module_name(p): p for p in sorted(PACKAGE.rglob("*.py"))}


def rank(name: str) -> int:
    best = max(
        (prefix for prefix in RANKS if name == prefix or name.startswith(prefix + ".")), key=len
    )
    return RANKS[best]


def imports_of(name: str, path: Path, known: set[str]) -> set[str]:
    """Every module `name` imports (absolute or relative, at any depth of the file)."""
    found: set[str] = set()
    package = name if path.name == "__init__.py" else name.rpartition(".")[0]
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                anchor = package.split(".")[: len(package.split(".")) - node.level + 1]
                base = ".".join([*anchor, base] if base else anchor)
            # `from worker.engine import aws` imports the submodule worker.engine.aws; any other
            # name comes from the module `base` itself.
            for alias in node.names:
                submodule = f"{base}.{alias.name}"
                found.add(submodule if submodule in known else base)
    return found


def graph() -> dict[str, set[str]]:
    mods = modules()
    known = set(mods)
    return {
        name: {i for i in imports_of(name, path, known) if i in known and i != name}
        for name, path in mods.items()
    }


def test_every_module_belongs_to_a_layer():
    for name in modules():
        assert rank(name) >= 0, name


def test_no_module_imports_a_higher_layer():
    wrong = [
        f"{name} (layer {rank(name)}) imports {target} (layer {rank(target)})"
        for name, targets in graph().items()
        for target in targets
        if rank(target) > rank(name) and not target.startswith(name + ".")
    ]
    assert wrong == []


def test_the_model_imports_no_io():
    mods = modules()
    wrong = []
    for name, path in mods.items():
        if not name.startswith("worker.model"):
            continue
        for target in imports_of(name, path, set(mods)):
            top = target.split(".")[0]
            if top == "worker":
                if not (target.startswith("worker.model") or target == "worker.errors"):
                    wrong.append(f"{name} imports {target}")
            elif top not in MODEL_ALLOWED or top in {"socket", "http", "urllib", "sqlite3"}:
                wrong.append(f"{name} imports {target}")
    assert wrong == []


def test_no_import_circles():
    edges = graph()
    state: dict[str, int] = {}
    cycles: list[list[str]] = []

    def visit(node: str, trail: list[str]) -> None:
        state[node] = 1
        for nxt in sorted(edges[node]):
            if state.get(nxt) == 1:
                cycles.append([*trail[trail.index(nxt) :], nxt] if nxt in trail else [node, nxt])
            elif nxt not in state:
                visit(nxt, [*trail, nxt])
        state[node] = 2

    for start in sorted(edges):
        if start not in state:
            visit(start, [start])
    assert cycles == []


@pytest.mark.parametrize("module", ["worker.model.fold", "worker.model.step", "worker.errors"])
def test_loading_the_model_loads_no_aws_sdk(module):
    code = (
        f"import sys, {module}; "
        "loaded = [m for m in ('boto3', 'botocore', 'structlog') if m in sys.modules]; "
        "print(','.join(loaded))"
    )
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True
    ).stdout.strip()
    assert out == ""


def test_the_checker_catches_an_upward_import(tmp_path):
    """The layer check itself can fail: a model module importing the engine is reported."""
    bad = tmp_path / "bad.py"
    bad.write_text("from worker.engine.reads import Store\n")
    known = set(modules())
    found = imports_of("worker.model.bad", bad, known)
    assert any(rank(t) > rank("worker.model.bad") for t in found if t in known)
