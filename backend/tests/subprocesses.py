"""Run Django in a fresh interpreter with a clean environment.

Settings are read once per process, so whatever depends on the environment
at import time (a missing SECRET_KEY, the HTTPS switches, `check --deploy`)
is tested in a child process that sees only the variables a test gives it.
"""

import contextlib
import json
import os
import secrets
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
from django.conf import settings

BASE_DIR = Path(settings.BASE_DIR)

PRODUCTION_HTTPS = {
    "SECURE_SSL_REDIRECT": "true",
    "SESSION_COOKIE_SECURE": "true",
    "CSRF_COOKIE_SECURE": "true",
    "SECURE_HSTS_SECONDS": "31536000",
    "SECURE_HSTS_INCLUDE_SUBDOMAINS": "true",
    "SECURE_HSTS_PRELOAD": "true",
    "SECURE_PROXY_SSL_HEADER": "true",
}


def production_secret_key() -> str:
    """A throwaway key made per test run: nothing secret is committed."""
    return secrets.token_urlsafe(50)


def clean_env(**variables: str) -> dict[str, str]:
    """Only what a child needs to start, plus the given variables."""
    env = {name: os.environ[name] for name in ("PATH", "HOME", "LANG", "TMPDIR") if name in os.environ}
    env["PYTHONDONTWRITEBYTECODE"] = "1"
    env["KEYSCOPE_ENV_FILE"] = ""  # not the .env a developer's `make run` wrote
    env.update(variables)
    return env


def run(args: list[str], env: dict[str, str], timeout: float = 120) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, *args], cwd=BASE_DIR, env=env, capture_output=True, text=True, timeout=timeout
    )


def manage(*args: str, env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    return run(["manage.py", *args], env=env)


SETTINGS_AS_JSON = """
import json, os
os.environ.setdefault("DJANGO_SETTINGS_MODULE", "backend.settings")
from django.conf import settings
names = {names!r}
print(json.dumps({{name: getattr(settings, name, None) for name in names}}, default=str))
"""


def read_settings(names: list[str], env: dict[str, str]) -> dict:
    """The values of `names` as a child process started with `env` sees them."""
    result = run(["-c", SETTINGS_AS_JSON.format(names=names)], env=env)
    assert result.returncode == 0, result.stderr
    return json.loads(result.stdout.strip().splitlines()[-1])


SERVER_START_SECONDS = 120  # a guard against a server that never answers, not a measure of speed


@contextlib.contextmanager
def serving(args: list[str], *, cwd: Path, env: dict[str, str], port: int, log: Path) -> Iterator[str]:
    """Start a server (and whatever it starts, in its own process group) and yield its base URL once
    /healthz answers 200; stop the whole group afterwards."""
    with open(log, "wb") as output:
        process = subprocess.Popen(args, cwd=cwd, env=env, stdout=output, stderr=subprocess.STDOUT, start_new_session=True)
    base = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + SERVER_START_SECONDS
        while True:
            assert process.poll() is None, f"{args[0]} exited with {process.returncode}:\n{log.read_text()[-4000:]}"
            try:
                if httpx.get(f"{base}/healthz", timeout=2).status_code == 200:
                    break
            except httpx.TransportError:
                pass
            assert time.monotonic() < deadline, f"{args[0]} did not answer:\n{log.read_text()[-4000:]}"
            time.sleep(0.2)
        yield base
    finally:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(process.pid, signal.SIGTERM)
        process.wait(timeout=30)
