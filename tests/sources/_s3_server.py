"""A real S3 endpoint on 127.0.0.1 for tests and benchmarks: moto's server behind a proxy.

`S3Server` starts moto's ``ThreadedMotoServer`` and, in front of it, a small HTTP proxy
that logs every request (method, path, ``Range``, bytes sent back) and can be told to
fail the next requests with an HTTP status, a connection dropped before the response or
in the middle of its body, or an answer slower than the client's timeout. Sources are pointed
at the proxy (`S3Server.uri`), so the log is the server's view of what was fetched,
across all processes.
"""

from __future__ import annotations

import contextlib
import http.client
import io
import logging
import os
import socket
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pyarrow.fs as pafs

# Credentials come from the environment, as in production: set at import (collection
# time), before any forkserver starts, so worker processes resolve them too. moto does
# not check them; no instance-metadata lookups.
for _name, _value in (
    ("AWS_ACCESS_KEY_ID", "testing"),
    ("AWS_SECRET_ACCESS_KEY", "testing-secret"),
    ("AWS_EC2_METADATA_DISABLED", "true"),
):
    os.environ.setdefault(_name, _value)


@dataclass(frozen=True)
class Request:
    """One request the proxy forwarded (or failed)."""

    method: str
    path: str
    range: str | None
    status: int
    nbytes: int


def _dechunk(stream: io.BufferedIOBase) -> bytes:
    """The payload of a chunked body (HTTP's or the SDK's aws-chunked), trailers dropped."""
    chunks = []
    while True:
        size = int(stream.readline().split(b";")[0], 16)
        chunks.append(stream.read(size))
        if size == 0:
            while stream.readline().strip():  # trailers, up to the blank line
                pass
            return b"".join(chunks)
        stream.readline()  # the CRLF after the chunk


class _Proxy(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server: _ProxyServer

    def log_message(self, *args: object) -> None:  # quiet
        pass

    def setup(self) -> None:
        super().setup()
        # Headers and body go out in separate writes: without this, Nagle's algorithm
        # and delayed ACKs hold every response back ~40 ms.
        self.connection.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)

    def _handle(self) -> None:
        headers = dict(self.headers)
        if self.headers.get("Transfer-Encoding") == "chunked":  # uploads of parts
            body = _dechunk(self.rfile)
        else:
            length = int(self.headers.get("Content-Length") or 0)
            body = self.rfile.read(length) if length else None
        if "aws-chunked" in (self.headers.get("Content-Encoding") or ""):
            # The SDK's streaming uploads frame the payload in chunks (and a checksum
            # trailer); moto gets it plain, unsigned (it checks no signature anyway).
            body = _dechunk(io.BytesIO(body or b""))
            headers = {k: v for k, v in headers.items() if k.lower() != "x-amz-content-sha256"}
            headers["x-amz-content-sha256"] = "UNSIGNED-PAYLOAD"
        if body is not None:
            framing = ("transfer-encoding", "content-encoding", "x-amz-trailer", "content-length")
            headers = {k: v for k, v in headers.items() if k.lower() not in framing}
            headers["Content-Length"] = str(len(body))
        owner = self.server.owner
        failure = owner.take_failure(self.command, self.path)
        if failure == "reset":
            owner.record(Request(self.command, self.path, self.headers.get("Range"), 0, 0))
            self.connection.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, b"\1\0\0\0\0\0\0\0")
            self.close_connection = True
            self.connection.close()
            return
        if isinstance(failure, int):
            message = b"<Error><Code>ServiceUnavailable</Code><Message>injected</Message></Error>"
            owner.record(Request(self.command, self.path, self.headers.get("Range"), failure, 0))
            self.send_response(failure)
            self.send_header("Content-Type", "application/xml")
            self.send_header("Content-Length", str(len(message)))
            self.end_headers()
            if self.command != "HEAD":
                self.wfile.write(message)
            return
        if isinstance(failure, str) and failure.startswith("slow:"):
            # Past the client's timeout: it gives up (and retries) before this answers.
            owner.record(Request(self.command, self.path, self.headers.get("Range"), 0, 0))
            time.sleep(float(failure.partition(":")[2]))
        upstream = http.client.HTTPConnection(owner.moto_host, owner.moto_port, timeout=30)
        try:
            upstream.request(self.command, self.path, body=body, headers=headers)
            response = upstream.getresponse()
            data = response.read()
        finally:
            upstream.close()
        if failure == "cut" and len(data) > 1:
            # Headers and half the body, then a reset: a connection dropped mid-body.
            owner.record(Request(self.command, self.path, self.headers.get("Range"), 0, 0))
            self.send_response(response.status)
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data[: len(data) // 2])
            self.wfile.flush()
            self.connection.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, b"\1\0\0\0\0\0\0\0")
            self.close_connection = True
            self.connection.close()
            return
        if isinstance(failure, str) and failure.startswith("slow:"):
            self.close_connection = True
            return
        owner.record(
            Request(self.command, self.path, self.headers.get("Range"), response.status, len(data))
        )
        self.send_response(response.status)
        for name, value in response.getheaders():
            if name.lower() not in (
                "transfer-encoding",
                "connection",
                "content-length",
                "date",
                "server",
            ):
                self.send_header(name, value)
        if self.command == "HEAD":
            self.send_header("Content-Length", response.getheader("Content-Length") or "0")
        else:
            self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(data)

    def handle_one_request(self) -> None:
        try:
            super().handle_one_request()
        except ConnectionError:  # the client gave up on a failed request: expected
            self.close_connection = True

    do_GET = do_PUT = do_POST = do_DELETE = do_HEAD = _handle


class _ProxyServer(ThreadingHTTPServer):
    daemon_threads = True
    owner: S3Server


class S3Server:
    """moto's S3 on 127.0.0.1 behind a logging, failure-injecting proxy.

    Use as a context manager. `uri(path)` names a path through the proxy;
    `filesystem()` is a `pyarrow.fs.S3FileSystem` straight on moto for uploads.
    """

    def __init__(self) -> None:
        from moto.server import ThreadedMotoServer

        logging.getLogger("werkzeug").setLevel(logging.ERROR)  # no line per request
        self._moto = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
        self._lock = threading.Lock()
        self.log: list[Request] = []
        self._failures: list[tuple[str, object]] = []  # (path prefix, status or "reset")

    def __enter__(self) -> S3Server:
        self._moto.start()
        self.moto_host, self.moto_port = self._moto.get_host_and_port()
        self._proxy = _ProxyServer(("127.0.0.1", 0), _Proxy)
        self._proxy.owner = self
        self.endpoint = f"127.0.0.1:{self._proxy.server_address[1]}"
        threading.Thread(target=self._proxy.serve_forever, daemon=True).start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._proxy.shutdown()
        self._proxy.server_close()
        self._moto.stop()

    def uri(self, path: str) -> str:
        """``s3://path`` through the proxy."""
        return f"s3://{path}?endpoint_override={self.endpoint}&scheme=http"

    def filesystem(self) -> pafs.S3FileSystem:
        """An S3 filesystem straight on moto (not logged) that may create buckets: uploads."""
        return pafs.S3FileSystem(
            endpoint_override=f"{self.moto_host}:{self.moto_port}",
            scheme="http",
            allow_bucket_creation=True,
        )

    @contextlib.contextmanager
    def missing(self, path: str) -> Iterator[None]:
        """``path`` (``bucket/key``) deleted for the block, as a file deleted after a
        source listed it, and put back after."""
        fs = self.filesystem()
        kept = path + ".kept"
        fs.copy_file(path, kept)
        fs.delete_file(path)
        try:
            yield
        finally:
            fs.move(kept, path)

    def record(self, request: Request) -> None:
        with self._lock:
            self.log.append(request)

    def clear(self) -> None:
        """Forgets the log."""
        with self._lock:
            self.log.clear()

    def fail(self, times: int, status: object = 503, path: str = "/") -> None:
        """Fails the next ``times`` requests under ``path``: ``status`` is an HTTP status,
        ``"reset"`` (the connection dropped before the response), ``"cut"`` (dropped
        after half the body) or ``"slow:<seconds>"`` (no answer for that long)."""
        with self._lock:
            self._failures += [(path, status)] * times

    def clear_failures(self) -> None:
        """Forgets the failures not yet injected."""
        with self._lock:
            self._failures.clear()

    def take_failure(self, method: str, path: str) -> object | None:
        with self._lock:
            for i, (prefix, status) in enumerate(self._failures):
                if path.startswith(prefix):
                    del self._failures[i]
                    return status
        return None

    def gets(self) -> list[Request]:
        """The successful GETs of objects (not listings) so far."""
        with self._lock:
            return [
                r for r in self.log if r.method == "GET" and "?" not in r.path and r.status < 300
            ]
