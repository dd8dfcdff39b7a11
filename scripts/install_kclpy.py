"""Install amazon_kclpy's Python interface only (no KCL jars): `make setup KCL=interface`.

The default set-up installs amazon-kclpy the normal way, from uv.lock (the `kcl` extra), and
its build downloads the KCL jars from Maven Central. A machine that cannot reach Maven Central
cannot do that, yet the MultiLang protocol side (`amazon_kclpy.kcl`, `amazon_kclpy.v3.processor`)
is pure Python and is all that `budget-worker kcl-processor`, the local driver and the unit
tests need. So this builds a wheel from the same sdist's `amazon_kclpy` package folder and
installs it into the given interpreter's environment. `run --driver kcl` then has no daemon to
start; everything else works.

Usage: `python scripts/install_kclpy.py TARGET_PYTHON` (run by an interpreter that has pip;
the target environment needs none). Idempotent: does nothing when the interface imports.
"""

from __future__ import annotations

import subprocess
import sys
import tarfile
import tempfile
from pathlib import Path

# The same release as the `kcl` extra in pyproject.toml (a test keeps them equal).
VERSION = "3.1.3"
SPEC = f"amazon-kclpy=={VERSION}"


def pip(*args: str) -> subprocess.CompletedProcess[str]:
    command = [sys.executable, "-m", "pip", *args, "-q"]
    return subprocess.run(command, capture_output=True, text=True, check=False)


def interface_imports(target: str) -> bool:
    probe = "import amazon_kclpy.kcl, amazon_kclpy.v3.processor"
    return subprocess.run([target, "-c", probe], capture_output=True).returncode == 0


def build_interface(work: Path) -> Path:
    done = pip("download", "--no-deps", "--no-binary", ":all:", "-d", str(work), SPEC)
    if done.returncode != 0:
        sys.exit(f"install_kclpy: cannot download the {SPEC} sdist: {done.stderr[-800:]}")
    sdist = next(work.glob("amazon_kclpy-*.tar.gz"))
    project = work / "project"
    project.mkdir()
    with tarfile.open(sdist) as archive:
        prefix = f"amazon_kclpy-{VERSION}/amazon_kclpy/"
        for member in archive.getmembers():
            if member.name.startswith(prefix) and member.isfile():
                member.name = "amazon_kclpy/" + member.name[len(prefix) :]
                archive.extract(member, project, filter="data")
    (project / "pyproject.toml").write_text(
        "[build-system]\n"
        'requires = ["setuptools>=69"]\n'
        'build-backend = "setuptools.build_meta"\n\n'
        "[project]\n"
        'name = "amazon-kclpy"\n'
        f'version = "{VERSION}+interface"\n'
        'description = "amazon_kclpy Python interface only (no KCL jars)"\n'
        'license = {text = "Apache-2.0"}\n\n'
        "[tool.setuptools.packages.find]\n"
        'include = ["amazon_kclpy*"]\n'
    )
    wheels = work / "wheels"
    done = pip("wheel", "--no-deps", "-w", str(wheels), str(project))
    if done.returncode != 0:
        sys.exit(f"install_kclpy: building the interface wheel failed: {done.stderr[-800:]}")
    return next(wheels.glob("amazon_kclpy-*.whl"))


def main(argv: list[str]) -> None:
    if len(argv) != 1:
        sys.exit("usage: install_kclpy.py TARGET_PYTHON")
    target = argv[0]
    if interface_imports(target):
        return
    with tempfile.TemporaryDirectory() as tmp:
        wheel = build_interface(Path(tmp))
        done = pip("--python", target, "install", "--no-deps", str(wheel))
        if done.returncode != 0:
            sys.exit(f"install_kclpy: installing the interface failed: {done.stderr[-800:]}")
    if not interface_imports(target):
        sys.exit("install_kclpy: amazon_kclpy still does not import")
    print(
        f"install_kclpy: installed the amazon_kclpy {VERSION} interface (no jars)",
        file=sys.stderr,
    )


if __name__ == "__main__":
    main(sys.argv[1:])
