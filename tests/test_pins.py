"""One set of versions everywhere: `make setup`, CI and the Dockerfile all install from uv.lock
(`uv sync --locked` refuses a lock that disagrees with pyproject.toml), and the KCL the
launcher is built with is the KCL amazon-kclpy ships. These checks catch an edit to one side
only before an image is built from it."""

from __future__ import annotations

import re
import shutil
import subprocess
import sys
import tomllib
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
UV = ROOT / ".venv-tools" / "bin" / "uv"


def _uv_lock_check(project: Path) -> subprocess.CompletedProcess[str]:
    assert UV.is_file(), "make setup installs the pinned uv into .venv-tools"
    return subprocess.run(
        [str(UV), "lock", "--check", "--offline", "--directory", str(project)],
        capture_output=True,
        text=True,
        check=False,
    )


def test_the_lock_agrees_with_pyproject() -> None:
    done = _uv_lock_check(ROOT)
    assert done.returncode == 0, done.stdout + done.stderr


def test_a_dependency_added_to_pyproject_only_fails_the_check(tmp_path: Path) -> None:
    """The check above can fail: the same lock with one more requirement is refused. Offline,
    uv says the lock needs updating when the registry's pages are in its cache, and otherwise
    that it could not re-resolve without the network; it only tries to re-resolve a lock that
    no longer satisfies pyproject.toml (the check above passes offline on a fresh machine)."""
    for name in ("pyproject.toml", "uv.lock", "README.md"):
        shutil.copy(ROOT / name, tmp_path / name)
    pyproject = tmp_path / "pyproject.toml"
    text = pyproject.read_text()
    pyproject.write_text(text.replace('    "pyyaml>=6,<7",\n', '    "pyyaml>=6,<7",\n    "six",\n'))
    assert pyproject.read_text() != text
    done = _uv_lock_check(tmp_path)
    assert done.returncode != 0
    assert "needs to be updated" in done.stderr or "network was disabled" in done.stderr, (
        done.stderr
    )


def _locked_version(package: str) -> str:
    lock = tomllib.loads((ROOT / "uv.lock").read_text())
    [version] = [p["version"] for p in lock["package"] if p["name"] == package]
    return str(version)


def test_amazon_kclpy_is_one_release_everywhere() -> None:
    pyproject = tomllib.loads((ROOT / "pyproject.toml").read_text())
    [pin] = pyproject["project"]["optional-dependencies"]["kcl"]
    assert pin == f"amazon-kclpy=={_locked_version('amazon-kclpy')}"
    sys.path.insert(0, str(ROOT / "scripts"))
    try:
        import install_kclpy
    finally:
        sys.path.remove(str(ROOT / "scripts"))
    assert pin == install_kclpy.SPEC  # the KCL=interface fallback installs the same release


def _pom_property(name: str) -> str:
    found = re.search(rf"<{name}>([^<]+)</{name}>", (ROOT / "launcher" / "pom.xml").read_text())
    assert found, name
    return found.group(1)


def test_the_launcher_runs_the_kcl_amazon_kclpy_ships() -> None:
    """amazon_kclpy speaks the MultiLang protocol of the KCL it bundles; the daemon that
    spawns our processor is the launcher's. They must be the same release."""
    kclpy = pytest.importorskip("amazon_kclpy")
    jars = Path(kclpy.__file__).parent / "jars"
    if not jars.is_dir():  # KCL=interface: no jars to compare with (documented fallback)
        pytest.skip("amazon_kclpy installed without its jars (make setup KCL=interface)")
    bundled = sorted(p.name for p in jars.glob("amazon-kinesis-client-multilang-*.jar"))
    assert bundled == [f"amazon-kinesis-client-multilang-{_pom_property('kcl.version')}.jar"]
    sdk = sorted(p.name for p in jars.glob("dynamodb-2*.jar"))
    assert sdk == [f"dynamodb-{_pom_property('awssdk.version')}.jar"]
