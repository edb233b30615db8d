"""A real HTTP upstream on 127.0.0.1 for the http runner's tests.

Import the `upstream` fixture into a test module. Every request it gets is
recorded in `upstream.requests`, so tests can check what was (not) forwarded.
"""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import urlsplit

import pytest

SLOW_SECONDS = 3


@dataclass
class Received:
    method: str
    path: str
    query: str
    headers: dict[str, str]
    body: bytes

    def json(self) -> Any:
        return json.loads(self.body)


@dataclass
class Upstream:
    base_url: str
    requests: list[Received] = field(default_factory=list)

    def url(self, path: str) -> str:
        return f"{self.base_url}{path}"

    def paths(self) -> list[str]:
        return [received.path for received in self.requests]


class _Handler(BaseHTTPRequestHandler):
    server: _Server

    def log_message(self, format: str, *args: Any) -> None:  # keep test output quiet
        pass

    def _answer(self, status: int, body: bytes, content_type: str, extra: dict[str, str] | None = None) -> None:
        self.send_response(status)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(body)))
        for name, value in (extra or {}).items():
            self.send_header(name, value)
        self.end_headers()
        self.wfile.write(body)

    def _json(self, status: int, data: Any) -> None:
        self._answer(status, json.dumps(data).encode(), "application/json")

    def _handle(self) -> None:
        length = int(self.headers.get("Content-Length") or 0)
        body = self.rfile.read(length) if length else b""
        parts = urlsplit(self.path)
        received = Received(self.command, parts.path, parts.query, dict(self.headers.items()), body)
        self.server.upstream.requests.append(received)
        if parts.path == "/json":
            self._json(200, {"answer": 42, "received": json.loads(body or b"{}")})
        elif parts.path == "/text":
            self._answer(200, b"plain answer", "text/plain; charset=utf-8")
        elif parts.path == "/slow":
            time.sleep(SLOW_SECONDS)
            self._json(200, {"late": True})
        elif parts.path == "/error":
            self._json(500, {"error": "the model crashed"})
        elif parts.path == "/unavailable":
            self._answer(503, b"down for maintenance", "text/plain")
        elif parts.path == "/missing":
            self._json(404, {"error": "no such thing"})
        elif parts.path == "/redirect":
            self._answer(302, b"", "text/plain", {"Location": "/redirected"})
        elif parts.path == "/redirected":
            self._json(200, {"followed": True})
        elif parts.path == "/unstorable":  # what PostgreSQL's jsonb refuses: NUL and unpaired surrogates
            self._answer(200, b'{"nul": "a\\u0000b", "lone": "\\ud800", "\\udfff": "key", "pair": "\\ud83d\\udd11"}', "application/json")
        elif parts.path == "/headers":
            self._json(200, {"headers": dict(self.headers.items()), "query": parts.query})
        else:
            self._json(404, {"error": "unknown path"})

    do_GET = _handle
    do_POST = _handle


class _Server(ThreadingHTTPServer):
    daemon_threads = True
    block_on_close = False  # a /slow request still sleeping must not hold up the test's teardown
    upstream: Upstream


@pytest.fixture
def upstream(settings) -> Iterator[Upstream]:
    """The upstream server, with 127.0.0.1 allowed for the test's deployments."""
    server = _Server(("127.0.0.1", 0), _Handler)
    server.upstream = Upstream(base_url=f"http://127.0.0.1:{server.server_address[1]}")
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    settings.KEYSCOPE_UPSTREAM_ALLOWED_HOSTS = ["127.0.0.1"]
    yield server.upstream
    server.shutdown()
    server.server_close()
