"""`make run` on a copy of the project: what it leaves behind."""

from __future__ import annotations

import os
import secrets
import shutil
import stat
import subprocess
import sys
from pathlib import Path

import httpx
import pytest

from backend.tests.subprocesses import BASE_DIR, serving
from keys.tests.helpers import free_port, needs

pytestmark = pytest.mark.slow

LEGACY_SECRET_KEY = secrets.token_urlsafe(50)  # made per run: nothing secret is committed
NOT_COPIED = (".git", ".venv", "var", ".env", "__pycache__", ".pytest_cache", ".hypothesis")


def newcomer_env(**variables: str) -> dict[str, str]:
    """A shell where nothing of keyscope's is exported."""
    env = {name: os.environ[name] for name in ("PATH", "HOME", "LANG", "TMPDIR") if name in os.environ}
    return {**env, **variables}


def private(path: Path) -> bool:
    return stat.S_IMODE(path.stat().st_mode) & 0o077 == 0


@pytest.fixture(scope="module")
def after_make_run(tmp_path_factory) -> Path:
    """A copy of the project after `make run` (scripts/run.sh on the installed virtualenv), its server stopped."""
    venv = Path(sys.prefix)
    needs("make run", (venv / "bin" / "gunicorn").is_file(), "the suite must run from the project's .venv")
    project = tmp_path_factory.mktemp("checkout") / "keyscope"
    shutil.copytree(BASE_DIR, project, ignore=shutil.ignore_patterns(*NOT_COPIED), symlinks=True)
    (project / ".venv").symlink_to(venv)
    # What an earlier run left readable by everyone: an empty database and a secret key.
    (project / "var").mkdir(mode=0o755)
    (project / "var" / "keyscope.sqlite3").touch(mode=0o644)
    (project / "var" / "secret_key").write_text(LEGACY_SECRET_KEY + "\n")
    (project / "var" / "secret_key").chmod(0o644)
    port = free_port()
    env = newcomer_env(PORT=str(port), DEMO_UPSTREAM_PORT=str(free_port()))
    with serving(["bash", "scripts/run.sh"], cwd=project, env=env, port=port, log=project.parent / "run.log") as base:
        assert httpx.get(f"{base}/admin/login/").status_code == 200
    return project


def test_make_run_leaves_its_secrets_and_database_readable_by_their_owner_only(after_make_run):
    var = after_make_run / "var"
    assert stat.S_IMODE(var.stat().st_mode) == 0o700
    # Everything but the static files, which every visitor may read anyway.
    files = [path for path in var.rglob("*") if path.is_file() and "static" not in path.relative_to(var).parts]
    assert var / "keyscope.sqlite3" in files
    for path in files:
        assert private(path), f"{path.relative_to(after_make_run)} is {oct(stat.S_IMODE(path.stat().st_mode))}"


def test_make_run_keeps_its_secrets_in_a_private_env_file(after_make_run):
    env_file = after_make_run / ".env"
    assert private(env_file)
    lines = dict(line.split("=", 1) for line in env_file.read_text().splitlines())
    # The secret an earlier run kept under var/ moved there, so its sessions stay valid.
    assert lines["SECRET_KEY"] == LEGACY_SECRET_KEY
    assert lines["KEYSCOPE_ENCRYPTION_KEYS"]
    assert not (after_make_run / "var" / "secret_key").exists()


@pytest.mark.parametrize(
    "command",
    [["check"], ["keys", "--help"], ["keys", "list", "--org", "demo"], ["seed_demo", "--reset"],
     ["reencrypt_upstream_credentials"]],
    ids=" ".join,
)
def test_every_manage_py_command_works_after_make_run_with_nothing_exported(after_make_run, command):
    result = subprocess.run(
        [".venv/bin/python", "manage.py", *command], cwd=after_make_run, env=newcomer_env(),
        capture_output=True, text=True, timeout=120,
    )
    assert result.returncode == 0, result.stderr
    assert "Traceback" not in result.stderr
    if command[:2] == ["keys", "list"]:
        assert "Demo global key" in result.stdout


def test_make_run_without_redis_serves_with_one_process(after_make_run):
    """Without Redis, counters and caches are per process: one gunicorn worker (with threads) keeps them exact."""
    log = (after_make_run.parent / "run.log").read_text()
    assert log.count("Booting worker with pid") == 1, log[-2000:]
