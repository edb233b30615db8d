"""`manage.py check --deploy` is clean when the production variables are set."""

import pytest

from backend.tests.subprocesses import PRODUCTION_HTTPS, clean_env, manage, production_secret_key

pytestmark = pytest.mark.slow


def production_env(tmp_path, **overrides: str) -> dict[str, str]:
    variables = {
        "DEBUG": "false",
        "SECRET_KEY": production_secret_key(),
        "ALLOWED_HOSTS": "keyscope.example.com",
        "DATABASE_URL": f"sqlite:///{tmp_path / 'db.sqlite3'}",
        **PRODUCTION_HTTPS,
    }
    return clean_env(**{**variables, **overrides})


def test_check_deploy_is_clean_with_the_production_variables_set(tmp_path):
    result = manage("check", "--deploy", "--fail-level", "WARNING", env=production_env(tmp_path))

    assert result.returncode == 0, result.stderr
    assert "System check identified no issues (0 silenced)." in result.stdout
    assert "WARNING" not in result.stderr


def test_check_deploy_warns_without_the_https_variables(tmp_path):
    """The clean run above is earned by the variables, not by silenced checks."""
    env = clean_env(
        DEBUG="false",
        SECRET_KEY=production_secret_key(),
        ALLOWED_HOSTS="keyscope.example.com",
        DATABASE_URL=f"sqlite:///{tmp_path / 'db.sqlite3'}",
    )

    result = manage("check", "--deploy", "--fail-level", "WARNING", env=env)

    assert result.returncode != 0
    for check_id in ("security.W004", "security.W008", "security.W012", "security.W016"):
        assert check_id in result.stderr


def test_check_deploy_flags_a_weak_secret_key(tmp_path):
    env = production_env(tmp_path, SECRET_KEY="short")

    result = manage("check", "--deploy", "--fail-level", "WARNING", env=env)

    assert result.returncode != 0
    assert "security.W009" in result.stderr
