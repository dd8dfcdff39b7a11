"""A loopback HTTP proxy in front of DynamoDB Local that makes each answer take about as long
as it would on AWS, so benchmarks can measure the worker "as on AWS" on one machine.

Every request is forwarded unchanged to the upstream server; the operation is read from the
`X-Amz-Target` header (`DynamoDB_20120810.GetItem`, `DynamoDBStreams_20120810.GetRecords`, ...)
and the answer is held until a latency drawn for that operation has passed since the request
arrived (a server slower than the draw adds nothing more). Latencies are log-normal, set by
their p50 and p99: the defaults come from a public measurement from Lambda in one region
(PutItem p50 7.6 ms / p99 16 ms, a 5-item TransactWriteItems p50 25 ms / p99 93 ms); reads and
single-item writes take PutItem's figures, transactions and batch writes TransactWriteItems',
stream reads and anything unknown PutItem's. Both the DynamoDB and the DynamoDB Streams
clients go through it (point `AWS_ENDPOINT_URL` at it), so the local driver's polling pays too.

Why hand-rolled (about 200 lines of the standard library) rather than a tool: TCP-level fault
proxies (toxiproxy, tc netem) cannot see which operation a request is, and the point is that a
transactional write costs three times a read; a general HTTP proxy (mitmproxy) would be a large
dependency for reading one header and sleeping.

Bounded and local only: it binds 127.0.0.1 and refuses a non-loopback upstream; at most
`MAX_CONNECTIONS` client connections are served at once (a thread each, persistent HTTP/1.1
connections, as botocore keeps them), request bodies are capped at DynamoDB's own 16 MB and a
drawn latency at `MAX_LATENCY_MS`.

It also counts the calls it forwards, by operation and table (`GET /__counts`), which is how
the benchmarks count calls per budget of a worker running in another process.

Run: `python -m benchmarks.latency_proxy --upstream http://127.0.0.1:8000` prints
`listening <url>` on its first line; `proxied(upstream)` runs it as a child process (the
proxy's threads then never compete with the benchmark's own for the GIL).
"""

from __future__ import annotations

import argparse
import http.client
import json
import math
import random
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import urlsplit

MAX_CONNECTIONS = 256
MAX_BODY = 16 * 1024 * 1024  # DynamoDB's largest request
MAX_LATENCY_MS = 2_000.0
Z99 = 2.3263  # the standard normal's 99th percentile
HOP_BY_HOP = {"connection", "keep-alive", "transfer-encoding", "te", "trailer", "upgrade"}


@dataclass(frozen=True, slots=True)
class Latency:
    """A log-normal latency given by its median and 99th percentile (ms)."""

    p50_ms: float
    p99_ms: float

    def draw(self, rng: random.Random) -> float:
        sigma = math.log(self.p99_ms / self.p50_ms) / Z99
        return min(MAX_LATENCY_MS, rng.lognormvariate(math.log(self.p50_ms), sigma))


SINGLE = Latency(7.6, 16.0)  # PutItem, measured from Lambda
TRANSACTION = Latency(25.0, 93.0)  # TransactWriteItems of 5 items, measured from Lambda
DEFAULTS: dict[str, Latency] = {
    **dict.fromkeys(
        [
            "GetItem",
            "PutItem",
            "UpdateItem",
            "DeleteItem",
            "Query",
            "Scan",
            "BatchGetItem",
            "DescribeTable",
            "GetRecords",
            "GetShardIterator",
            "DescribeStream",
            "ListStreams",
        ],
        SINGLE,
    ),
    **dict.fromkeys(["TransactWriteItems", "TransactGetItems", "BatchWriteItem"], TRANSACTION),
}


def operation_of(target: str | None) -> str:
    """`DynamoDB_20120810.GetItem` -> `GetItem`; '' when the header is missing."""
    return (target or "").rpartition(".")[2]


def tables_of(body: bytes) -> str:
    """The tables a request names (comma-separated), "stream" for stream reads: what the calls
    are counted by, so a benchmark can tell the catch-up's reads from the rebuilds'."""
    try:
        request = json.loads(body or b"{}")
    except ValueError:
        return "?"
    if "TableName" in request:
        return str(request["TableName"])
    if "RequestItems" in request:
        return ",".join(sorted(request["RequestItems"]))
    if "TransactItems" in request:
        names = {next(iter(i.values())).get("TableName", "?") for i in request["TransactItems"]}
        return ",".join(sorted(names))
    return "stream" if "ShardIterator" in request or "StreamArn" in request else "?"


def loopback(url: str) -> bool:
    return (urlsplit(url).hostname or "") in {"127.0.0.1", "localhost", "::1"}


class Proxy(ThreadingHTTPServer):
    """The listening server: one thread per client connection, at most MAX_CONNECTIONS."""

    daemon_threads = True

    def __init__(self, upstream: str, latencies: dict[str, Latency], seed: int | None) -> None:
        if not loopback(upstream):
            raise ValueError(f"latency proxy: upstream {upstream} is not a loopback address")
        parts = urlsplit(upstream)
        self.upstream = (parts.hostname or "127.0.0.1", parts.port or 80)
        self.latencies = latencies
        self.rng = random.Random(seed)
        self.rng_lock = threading.Lock()
        self.slots = threading.BoundedSemaphore(MAX_CONNECTIONS)
        self.counts: dict[str, int] = {}  # "<operation> <tables>" -> calls forwarded
        super().__init__(("127.0.0.1", 0), Handler)

    def count(self, operation: str, body: bytes) -> None:
        key = f"{operation} {tables_of(body)}"
        with self.rng_lock:
            self.counts[key] = self.counts.get(key, 0) + 1

    def take_counts(self, reset: bool) -> dict[str, int]:
        with self.rng_lock:
            counts = dict(self.counts)
            if reset:
                self.counts.clear()
        return counts

    def delay_for(self, operation: str) -> float:
        latency = self.latencies.get(operation, SINGLE)
        with self.rng_lock:  # random.Random is not meant to be shared across threads
            return latency.draw(self.rng) / 1000

    def handle_error(self, request: Any, client_address: Any) -> None:
        """A client that closed its connection (a worker stopped) is not worth a traceback."""
        if not isinstance(sys.exc_info()[1], ConnectionError):
            super().handle_error(request, client_address)

    def process_request(self, request: Any, client_address: Any) -> None:
        self.slots.acquire()  # bounded: the accept loop waits for a free slot
        super().process_request(request, client_address)

    def shutdown_request(self, request: Any) -> None:
        super().shutdown_request(request)
        self.slots.release()


class Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"  # persistent connections, as botocore's pool expects
    server: Proxy
    _connection: http.client.HTTPConnection | None = None  # upstream, per client connection

    def setup(self) -> None:
        super().setup()
        self.connection.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)

    def log_message(self, format: str, *args: Any) -> None:
        return  # one line per request would cost more than the requests

    def do_GET(self) -> None:
        """`GET /__counts` (`?reset=1` to start again): the calls forwarded so far, by
        operation and table, as JSON. DynamoDB's clients only ever POST."""
        if not self.path.startswith("/__counts"):
            self.send_error(404)
            return
        payload = json.dumps(self.server.take_counts("reset=1" in self.path)).encode()
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(payload)))
        self.end_headers()
        self.wfile.write(payload)

    def do_POST(self) -> None:
        arrived = time.perf_counter()
        length = int(self.headers.get("Content-Length") or 0)
        if length > MAX_BODY:
            self.send_error(413, "request larger than DynamoDB accepts")
            return
        body = self.rfile.read(length)
        headers = {k: v for k, v in self.headers.items() if k.lower() not in HOP_BY_HOP}
        upstream = self._upstream()
        try:
            upstream.request("POST", self.path, body=body, headers=headers)
            answer = upstream.getresponse()
            payload = answer.read()
        except (OSError, http.client.HTTPException):
            upstream.close()
            self._connection = None
            self.send_error(502, "upstream unreachable")
            return
        operation = operation_of(self.headers.get("X-Amz-Target"))
        self.server.count(operation, body)
        delay = self.server.delay_for(operation)
        wait = arrived + delay - time.perf_counter()
        if wait > 0:
            time.sleep(wait)
        self.send_response_only(answer.status, answer.reason)
        for name, value in answer.getheaders():
            if name.lower() not in HOP_BY_HOP and name.lower() != "content-length":
                self.send_header(name, value)
        self.send_header("Content-Length", str(len(payload)))
        # Head and body in one write: two small writes meet Nagle's algorithm and the
        # client's delayed ACK, which added 40 ms to every answer.
        self._headers_buffer.append(b"\r\n" + payload)  # type: ignore[attr-defined]
        self.flush_headers()

    def _upstream(self) -> http.client.HTTPConnection:
        """One upstream connection per client connection, kept open across its requests."""
        connection = self._connection
        if connection is None:
            connection = http.client.HTTPConnection(*self.server.upstream, timeout=30)
            self._connection = connection
        return connection

    def finish(self) -> None:
        connection = self._connection
        if connection is not None:
            connection.close()
        super().finish()


def serve(upstream: str, seed: int | None = None) -> Proxy:
    """A proxy serving on a background thread of this process; `.shutdown()` stops it."""
    proxy = Proxy(upstream, DEFAULTS, seed)
    threading.Thread(target=proxy.serve_forever, name="latency-proxy", daemon=True).start()
    return proxy


def url_of(proxy: Proxy) -> str:
    host, port = proxy.server_address[:2]
    return f"http://{host!s}:{port}"


def counts(url: str, reset: bool = False) -> dict[str, int]:
    """The calls a proxy at `url` has forwarded, by "<operation> <tables>"."""
    import urllib.request

    with urllib.request.urlopen(f"{url}/__counts{'?reset=1' if reset else ''}") as answer:
        found: dict[str, int] = json.loads(answer.read())
    return found


@contextmanager
def proxied(upstream: str, seed: int = 0) -> Iterator[str]:
    """The URL of a latency proxy in front of `upstream`, run as a child process."""
    child = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "benchmarks.latency_proxy",
            "--upstream",
            upstream,
            "--seed",
            str(seed),
        ],
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert child.stdout is not None
        line = child.stdout.readline().split()
        if line[:1] != ["listening"]:
            raise RuntimeError(f"latency proxy did not start: {line}")
        yield line[1]
    finally:
        child.terminate()
        child.wait(timeout=10)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--upstream", required=True, help="DynamoDB Local's URL (loopback)")
    parser.add_argument("--seed", type=int, default=None)
    args = parser.parse_args()
    proxy = Proxy(args.upstream, DEFAULTS, args.seed)
    print(f"listening {url_of(proxy)}", flush=True)
    proxy.serve_forever()


if __name__ == "__main__":
    main()
