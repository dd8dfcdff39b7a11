"""A loopback proxy that lets the KCL launcher read DynamoDB Local's stream.

DynamoDB Local names every stream `arn:aws:dynamodb:ddblocal:...`. The DynamoDB Streams Kinesis
Adapter turns a stream ARN into a lease-key prefix and back, and 2.0.1 (the newest 2.x that
Maven Central serves here, pinned in launcher/pom.xml) only turns it back for a real AWS
region, so against DynamoDB Local its scheduler never gets past the lease sync (upstream fixed
this in 2.1.0). Nothing else about the launcher differs between DynamoDB Local and AWS, so
rather than patch the adapter, `run --driver kcl` puts this proxy between the launcher and a
DynamoDB Local whose stream is in the `ddblocal` region: responses say the configured region
instead, requests are translated back. The rewrite is a bijection (DynamoDB Local never names a
stream in a real region), so shard iterators and sequence numbers pass through unchanged.

Hand-rolled because no maintained proxy rewrites bodies and recomputes DynamoDB's
`x-amz-crc32` response checksum (the AWS SDK for Java checks it). Loopback only; one thread per
connection; it lives as long as the process that started it.
"""

from __future__ import annotations

import http.client
import threading
import zlib
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import ClassVar
from urllib.parse import urlsplit

from worker import logs

log = logs.get(__name__)

LOCAL_REGION = "ddblocal"
HOP_BY_HOP = frozenset({"connection", "keep-alive", "transfer-encoding", "content-length"})


def needs_proxy(stream_arn: str | None) -> bool:
    """True for a DynamoDB Local stream ARN (region `ddblocal`)."""
    return bool(stream_arn) and f":dynamodb:{LOCAL_REGION}:" in (stream_arn or "")


def present(stream_arn: str, region: str) -> str:
    """The stream ARN as the launcher sees it through the proxy."""
    return stream_arn.replace(f":dynamodb:{LOCAL_REGION}:", f":dynamodb:{region}:", 1)


class RegionProxy:
    """Forwards to `upstream`, presenting DynamoDB Local's stream ARNs in `region`."""

    def __init__(self, upstream: str, region: str) -> None:
        target = urlsplit(upstream)
        if target.hostname is None:
            raise ValueError(f"not an endpoint URL: {upstream!r}")
        local = f"arn:aws:dynamodb:{LOCAL_REGION}:".encode()
        aws = f"arn:aws:dynamodb:{region}:".encode()

        class Handler(_Forward):
            host = target.hostname or "127.0.0.1"
            port = target.port or 80
            to_upstream = (aws, local)
            to_client = (local, aws)

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        self.thread = threading.Thread(
            target=self.server.serve_forever, name="region-proxy", daemon=True
        )

    @property
    def endpoint_url(self) -> str:
        host, port = self.server.server_address[:2]
        return f"http://{host!s}:{port}"

    def start(self) -> RegionProxy:
        self.thread.start()
        log.info(
            "DynamoDB Local stream region proxy started (adapter 2.0.1 needs a real region)",
            endpoint_url=self.endpoint_url,
        )
        return self

    def stop(self) -> None:
        self.server.shutdown()
        self.server.server_close()

    def __enter__(self) -> RegionProxy:
        return self.start()

    def __exit__(self, *_exc: object) -> None:
        self.stop()


class _Forward(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    host: ClassVar[str]
    port: ClassVar[int]
    to_upstream: ClassVar[tuple[bytes, bytes]]
    to_client: ClassVar[tuple[bytes, bytes]]

    def do_POST(self) -> None:
        length = int(self.headers.get("Content-Length") or 0)
        body = self.rfile.read(length).replace(*self.to_upstream)
        headers = {k: v for k, v in self.headers.items() if k.lower() not in HOP_BY_HOP}
        upstream = http.client.HTTPConnection(self.host, self.port, timeout=60)
        try:
            upstream.request("POST", self.path, body=body, headers=headers)
            answer = upstream.getresponse()
            payload = answer.read().replace(*self.to_client)
            status, reason, answer_headers = answer.status, answer.reason, answer.getheaders()
        except OSError as exc:
            self.send_error(502, f"upstream: {exc}")
            return
        finally:
            upstream.close()
        self.send_response(status, reason)
        for name, value in answer_headers:
            lowered = name.lower()
            if lowered in HOP_BY_HOP or lowered == "x-amz-crc32":
                continue
            self.send_header(name, value)
        self.send_header("x-amz-crc32", str(zlib.crc32(payload)))
        self.send_header("Content-Length", str(len(payload)))
        self.end_headers()
        self.wfile.write(payload)

    def log_message(self, format: str, *args: object) -> None:
        """Quiet: the launcher logs its own calls."""
