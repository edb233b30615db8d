#!/usr/bin/env python3
"""A tiny upstream for the demo's `http` deployment (standard library only).

`make run` starts it on 127.0.0.1:8001; by hand: `python3 scripts/demo_upstream.py --port 8001`.
It answers every POST with what it learned: the body, the query string, the
caller from the X-Keyscope-* headers, and whether an Authorization header
(the deployment's upstream credentials) arrived; never the header's value.
"""

from __future__ import annotations

import argparse
import json
import os
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import urlsplit


class Handler(BaseHTTPRequestHandler):
    server_version = "keyscope-demo-upstream"

    def do_POST(self) -> None:
        length = int(self.headers.get("Content-Length") or 0)
        raw = self.rfile.read(length) if length else b""
        try:
            received = json.loads(raw or b"{}")
        except ValueError:
            received = raw.decode("utf-8", "replace")
        answer = {
            "upstream": "keyscope demo upstream",
            "received": received,
            "query": urlsplit(self.path).query,
            "caller": {
                name: self.headers.get(f"X-Keyscope-{header}", "")
                for name, header in [
                    ("organization", "Organization"),
                    ("deployment", "Deployment"),
                    ("key_id", "Key-Id"),
                    ("execution_id", "Execution-Id"),
                ]
            },
            "upstream_credentials": "received" if self.headers.get("Authorization") else "none",
        }
        body = json.dumps(answer).encode()
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)


def exit_with_parent(parent_pid: int) -> None:
    """`make run` execs gunicorn in the shell that started us: stop when it stops."""
    while True:
        time.sleep(1)
        try:
            os.kill(parent_pid, 0)
        except ProcessLookupError:
            os._exit(0)
        except PermissionError:
            pass


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=8001)
    parser.add_argument("--parent-pid", type=int, default=0, help="Exit when this process does.")
    options = parser.parse_args()
    try:
        server = ThreadingHTTPServer((options.host, options.port), Handler)
    except OSError as error:
        raise SystemExit(
            f"demo upstream: cannot listen on {options.host}:{options.port} ({error.strerror}); "
            "the demo's http deployment will answer 502."
        ) from None
    server.daemon_threads = True
    if options.parent_pid:
        threading.Thread(target=exit_with_parent, args=(options.parent_pid,), daemon=True).start()
    print(f"demo upstream serving on http://{options.host}:{options.port}/", flush=True)
    server.serve_forever()


if __name__ == "__main__":
    main()
