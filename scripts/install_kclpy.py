"""Install amazon_kclpy's Python interface into the running interpreter's environment.

amazon-kclpy's own build downloads the KCL jars from Maven Central and fails where that is
unreachable. The MultiLang protocol side (`amazon_kclpy.kcl`, `amazon_kclpy.v3.processor`) is
pure Python and is all that `budget-worker kcl-processor` needs; the Java side is built by Maven
in the Docker image. So:

- mode `full`: the normal `pip install amazon-kclpy` (jars included); fail if it fails.
- mode `interface`: build a wheel from the PyPI sdist's `amazon_kclpy` package folder only.
- mode `auto` (default): `full`, falling back to `interface` when the normal build fails.

Mode comes from the first argument or BUDGET_KCLPY_MODE. Idempotent: does nothing when the
interface already imports (unless `--force`).
"""

from __future__ import annotations

import os
import subprocess
import sys
import tarfile
import tempfile
from pathlib import Path

VERSION = "3.2.0"
SPEC = f"amazon-kclpy=={VERSION}"


def pip(*args: str, quiet: bool = True) -> subprocess.CompletedProcess[str]:
    command = [sys.executable, "-m", "pip", *args]
    if quiet:
        command.append("-q")
    return subprocess.run(command, capture_output=True, text=True, check=False)


def interface_imports() -> bool:
    probe = "import amazon_kclpy.kcl, amazon_kclpy.v3.processor"
    return subprocess.run([sys.executable, "-c", probe], capture_output=True).returncode == 0


def install_full() -> bool:
    done = pip("install", "--no-cache-dir", SPEC)
    if done.returncode != 0:
        print(
            f"install_kclpy: normal install of {SPEC} failed (jars unreachable?)", file=sys.stderr
        )
        return False
    return True


def install_interface() -> None:
    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
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
            license_name = f"amazon_kclpy-{VERSION}/LICENSE.txt"
            if license_name in archive.getnames():
                member = archive.getmember(license_name)
                member.name = "LICENSE.txt"
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
        done = pip("install", "--no-deps", "--no-build-isolation", str(project))
        if done.returncode != 0:
            done = pip("install", "--no-deps", str(project))
        if done.returncode != 0:
            sys.exit(f"install_kclpy: building the interface wheel failed: {done.stderr[-800:]}")
    print(
        f"install_kclpy: installed the amazon_kclpy {VERSION} interface (no jars)", file=sys.stderr
    )


def main(argv: list[str]) -> None:
    force = "--force" in argv
    args = [a for a in argv if a != "--force"]
    mode = (args[0] if args else os.environ.get("BUDGET_KCLPY_MODE", "auto")).lower()
    if mode not in {"auto", "full", "interface"}:
        sys.exit(f"install_kclpy: unknown mode {mode!r} (auto, full or interface)")
    if not force and interface_imports():
        return
    if mode in {"auto", "full"} and install_full():
        return
    if mode == "full":
        sys.exit(f"install_kclpy: {SPEC} could not be installed with its jars")
    install_interface()
    if not interface_imports():
        sys.exit("install_kclpy: amazon_kclpy still does not import")


if __name__ == "__main__":
    main(sys.argv[1:])
