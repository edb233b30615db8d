"""Call a WSGI application directly, as gunicorn does, without a server.

Imports neither pytest nor Django settings, so a child process that uses it
still runs with production settings (settings.TESTING off).
"""

import io
import sys
from collections.abc import Callable, Iterable


def call_wsgi(
    application: Callable[..., Iterable[bytes]], path: str, **environ: object
) -> tuple[str, dict[str, str], bytes]:
    base = {
        "REQUEST_METHOD": "GET",
        "PATH_INFO": path,
        "QUERY_STRING": "",
        "SERVER_NAME": "127.0.0.1",
        "SERVER_PORT": "8000",
        "HTTP_HOST": "127.0.0.1:8000",
        "SERVER_PROTOCOL": "HTTP/1.1",
        "wsgi.version": (1, 0),
        "wsgi.url_scheme": "http",
        "wsgi.input": io.BytesIO(b""),
        "wsgi.errors": sys.stderr,
        "wsgi.multithread": True,
        "wsgi.multiprocess": True,
        "wsgi.run_once": False,
    }
    base.update(environ)
    captured: dict = {}

    def start_response(status, headers, exc_info=None):
        captured["status"] = status
        captured["headers"] = dict(headers)

    body = b"".join(application(base, start_response))
    return captured["status"], captured["headers"], body
