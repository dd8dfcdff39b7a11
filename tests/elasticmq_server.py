"""ElasticMQ, an SQS-compatible server, started for the test session like DynamoDB Local.

moto answers SQS calls in-process and fakes time; ElasticMQ is a real server with its own
clock, so visibility timeouts, receive counts and redrive to a dead-letter queue happen the way
a networked queue does them (tests/test_retry_queue_elasticmq.py). It is test-only, so it lives
here and not in `worker.local` (the product's embedded default is DynamoDB Local alone).

Maven Central serves `elasticmq-server_2.13` as a jar without its dependencies, so `make setup`
copies it and its runtime dependencies into `tests/elasticmq/target/lib` (the pom there pins the
version; the directory is gitignored) and this module runs `java -cp 'lib/*'` on its main class.
"""

from __future__ import annotations

import subprocess
import time
import urllib.error
import urllib.request
from dataclasses import dataclass
from pathlib import Path

from worker.local.dynamodb_local import check_java, free_port

ELASTICMQ_VERSION = "1.7.1"  # the version tests/elasticmq/pom.xml pins
POM_DIR = Path(__file__).resolve().parent / "elasticmq"
LIB = POM_DIR / "target" / "lib"
MAIN_CLASS = "org.elasticmq.server.Main"
ACCOUNT = "000000000000"
REGION = "us-east-1"


class ElasticMQMissing(RuntimeError):
    """ElasticMQ's jars are not where `make setup` puts them, or it did not start."""


def server_jar() -> Path:
    """The server jar `make setup` copied, or ElasticMQMissing saying how to get it."""
    jar = LIB / f"elasticmq-server_2.13-{ELASTICMQ_VERSION}.jar"
    if not jar.is_file():
        raise ElasticMQMissing(
            f"ElasticMQ {ELASTICMQ_VERSION} is not in {LIB}: run `make setup` (it needs Maven "
            "3.8+ and Maven Central: `cd tests/elasticmq && mvn -B -q "
            "dependency:copy-dependencies -DoutputDirectory=target/lib`)"
        )
    return jar


def config(port: int) -> str:
    """HOCON for one loopback server. `sqs-limits = strict` keeps SQS's own limits (message
    size, attribute names, wait times) so a request SQS would refuse is refused here too; the
    statistics UI is off (it would want a second fixed port)."""
    return f"""include classpath("application.conf")
node-address {{ protocol = http, host = "127.0.0.1", port = {port}, context-path = "" }}
rest-sqs {{ enabled = true, bind-port = {port}, bind-hostname = "127.0.0.1", sqs-limits = strict }}
rest-stats {{ enabled = false }}
aws {{ region = "{REGION}", accountId = "{ACCOUNT}" }}
"""


@dataclass(slots=True)
class ElasticMQ:
    endpoint_url: str
    process: subprocess.Popen[bytes]
    log_path: Path

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(timeout=15)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()


def start(workdir: Path, *, ready_timeout: float = 60.0) -> ElasticMQ:
    """Start ElasticMQ on a free loopback port (its config and log in `workdir`) and wait until
    it answers; the caller stops it."""
    check_java()
    server_jar()
    port = free_port()
    conf = workdir / "elasticmq.conf"
    conf.write_text(config(port))
    log_path = workdir / "elasticmq.log"
    with log_path.open("ab") as out:
        process = subprocess.Popen(
            ["java", f"-Dconfig.file={conf}", "-cp", str(LIB / "*"), MAIN_CLASS],
            stdout=out,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
        )
    server = ElasticMQ(f"http://127.0.0.1:{port}", process, log_path)
    deadline = time.monotonic() + ready_timeout
    while time.monotonic() < deadline:
        if process.poll() is not None:
            tail = log_path.read_text(errors="replace")[-800:]
            raise ElasticMQMissing(f"ElasticMQ exited with {process.returncode}: {tail}")
        if _answers(server.endpoint_url):
            return server
        time.sleep(0.1)
    server.stop()
    raise ElasticMQMissing(f"ElasticMQ did not answer on port {port} in {ready_timeout}s")


def _answers(endpoint_url: str) -> bool:
    """True once the SQS endpoint answers HTTP at all (an unsigned request gets an error)."""
    try:
        with urllib.request.urlopen(f"{endpoint_url}/?Action=ListQueues", timeout=1):
            return True
    except urllib.error.HTTPError:
        return True
    except OSError:
        return False
