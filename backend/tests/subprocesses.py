"""Run Django in a fresh interpreter with a clean environment.

Settings are read once per process, so whatever depends on the environment
at import time (a missing SECRET_KEY, the HTTPS switches, `check --deploy`)
is tested in a child process that sees only the variables a test gives it.
"""

import json
import os
import secrets
import subprocess
import sys
from pathlib import Path

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
