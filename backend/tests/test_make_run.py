"""`make run` on a copy of the project: what it leaves behind (CONTRACT §2)."""

from __future__ import annotations

import os
import secrets
import shutil
import stat
import sys
from pathlib import Path

import httpx
import pytest

from backend.tests.attack.conftest import needs
from backend.tests.subprocesses import BASE_DIR, serving
from keys.tests.limits.conftest import free_port

pytestmark = pytest.mark.slow

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
    (project / "var" / "secret_key").write_text(secrets.token_urlsafe(50) + "\n")
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
