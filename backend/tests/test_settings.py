"""Settings come from the environment, with safe local defaults."""

import os

import pytest
from django.conf import settings
from django.db import connection

from backend.tests.subprocesses import (
    PRODUCTION_HTTPS,
    clean_env,
    manage,
    production_secret_key,
    read_settings,
    run,
)

HTTPS_SETTINGS = [
    "SECURE_SSL_REDIRECT",
    "SESSION_COOKIE_SECURE",
    "CSRF_COOKIE_SECURE",
    "SECURE_HSTS_SECONDS",
    "SECURE_HSTS_INCLUDE_SUBDOMAINS",
    "SECURE_HSTS_PRELOAD",
    "SECURE_PROXY_SSL_HEADER",
]

IMPORT_SETTINGS = (
    "import os; os.environ.setdefault('DJANGO_SETTINGS_MODULE', 'backend.settings'); "
    "from django.conf import settings; print(len(settings.SECRET_KEY))"
)


def test_missing_secret_key_in_production_mode_is_a_clear_error():
    # An explicit empty value also wins over a developer's git-ignored .env.
    result = run(["-c", IMPORT_SETTINGS], env=clean_env(DEBUG="false", SECRET_KEY=""))

    assert result.returncode != 0
    assert "django.core.exceptions.ImproperlyConfigured: SECRET_KEY is not set" in result.stderr
    assert "DEBUG=true" in result.stderr


def test_missing_secret_key_is_an_error_when_debug_is_unset():
    env = clean_env(SECRET_KEY="")

    result = run(["-c", IMPORT_SETTINGS], env=env)

    assert result.returncode != 0
    assert "SECRET_KEY is not set" in result.stderr


@pytest.mark.parametrize("command", [["keys", "--help"], ["seed_demo", "--reset"], ["migrate"], ["runserver"]], ids=" ".join)
def test_a_missing_secret_key_is_one_clear_line_on_the_command_line(command):
    result = manage(*command, env=clean_env(SECRET_KEY=""))

    assert result.returncode == 1
    assert "Traceback" not in result.stderr
    [line] = result.stderr.splitlines()
    assert line.startswith("manage.py: SECRET_KEY is not set.") and ".env" in line


def test_settings_read_the_env_file_and_an_exported_variable_wins(tmp_path):
    env_file = tmp_path / "env"
    env_file.write_text("SECRET_KEY=from-the-file\nLOG_LEVEL=DEBUG\n")
    values = read_settings(["SECRET_KEY", "LOG_LEVEL"], env=clean_env(KEYSCOPE_ENV_FILE=str(env_file), LOG_LEVEL="WARNING"))
    assert values == {"SECRET_KEY": "from-the-file", "LOG_LEVEL": "WARNING"}


def test_debug_mode_runs_without_a_secret_key():
    values = read_settings(["DEBUG", "SECRET_KEY"], env=clean_env(DEBUG="true", SECRET_KEY=""))

    assert values["DEBUG"] is True
    assert values["SECRET_KEY"]


def test_secret_key_is_read_from_the_environment():
    key = production_secret_key()

    values = read_settings(["DEBUG", "SECRET_KEY"], env=clean_env(SECRET_KEY=key))

    assert values == {"DEBUG": False, "SECRET_KEY": key}


def test_defaults_are_local_and_safe():
    values = read_settings(
        [
            "DEBUG",
            "ALLOWED_HOSTS",
            "DATABASES",
            "CACHES",
            "REDIS_URL",
            "LOGGING",
            "LOG_LEVEL",
            "KEYSCOPE_DEFAULT_RATE_LIMIT_PER_MINUTE",
            "KEYSCOPE_FAILED_AUTH_PER_MINUTE",
            *HTTPS_SETTINGS,
        ],
        env=clean_env(SECRET_KEY=production_secret_key()),
    )

    assert values["DEBUG"] is False
    assert values["ALLOWED_HOSTS"] == ["127.0.0.1", "localhost", "[::1]", "testserver"]
    database = values["DATABASES"]["default"]
    assert database["ENGINE"] == "django.db.backends.sqlite3"
    assert database["NAME"] == str(settings.BASE_DIR / "var" / "keyscope.sqlite3")
    assert database["CONN_MAX_AGE"] == 600
    assert database["CONN_HEALTH_CHECKS"] is True
    assert values["CACHES"]["default"]["BACKEND"] == "django.core.cache.backends.locmem.LocMemCache"
    assert values["REDIS_URL"] == ""
    assert values["LOG_LEVEL"] == "INFO"
    assert values["LOGGING"]["root"] == {"handlers": ["stdout"], "level": "INFO"}
    assert values["KEYSCOPE_DEFAULT_RATE_LIMIT_PER_MINUTE"] == 600
    assert values["KEYSCOPE_FAILED_AUTH_PER_MINUTE"] == 60


def test_sqlite_default_takes_concurrent_writers():
    values = read_settings(["DATABASES"], env=clean_env(SECRET_KEY=production_secret_key()))

    options = values["DATABASES"]["default"]["OPTIONS"]
    assert options["transaction_mode"] == "IMMEDIATE"
    assert options["timeout"] >= 5
    assert "journal_mode=WAL" in options["init_command"]


def test_https_settings_stay_off_in_production_mode_unless_set():
    values = read_settings(HTTPS_SETTINGS, env=clean_env(DEBUG="false", SECRET_KEY=production_secret_key()))

    assert values == {
        "SECURE_SSL_REDIRECT": False,
        "SESSION_COOKIE_SECURE": False,
        "CSRF_COOKIE_SECURE": False,
        "SECURE_HSTS_SECONDS": 0,
        "SECURE_HSTS_INCLUDE_SUBDOMAINS": False,
        "SECURE_HSTS_PRELOAD": False,
        "SECURE_PROXY_SSL_HEADER": None,
    }


def test_each_https_setting_has_its_own_variable():
    values = read_settings(
        HTTPS_SETTINGS, env=clean_env(DEBUG="false", SECRET_KEY=production_secret_key(), **PRODUCTION_HTTPS)
    )

    assert values == {
        "SECURE_SSL_REDIRECT": True,
        "SESSION_COOKIE_SECURE": True,
        "CSRF_COOKIE_SECURE": True,
        "SECURE_HSTS_SECONDS": 31536000,
        "SECURE_HSTS_INCLUDE_SUBDOMAINS": True,
        "SECURE_HSTS_PRELOAD": True,
        "SECURE_PROXY_SSL_HEADER": ["HTTP_X_FORWARDED_PROTO", "https"],
    }


@pytest.mark.parametrize("name", [name for name in HTTPS_SETTINGS if name != "SECURE_HSTS_SECONDS"])
def test_one_https_variable_turns_on_only_its_own_setting(name):
    values = read_settings(
        HTTPS_SETTINGS, env=clean_env(DEBUG="false", SECRET_KEY=production_secret_key(), **{name: "true"})
    )

    assert [setting for setting, value in values.items() if value] == [name]


def test_production_variables_are_parsed():
    env = clean_env(
        DEBUG="false",
        SECRET_KEY=production_secret_key(),
        ALLOWED_HOSTS="keyscope.example.com,api.example.com",
        DATABASE_URL="postgres://keyscope:s3cret@db.internal:5433/keyscope",
        REDIS_URL="redis://cache.internal:6380/2",
        CONN_MAX_AGE="0",
        CONN_HEALTH_CHECKS="false",
        LOG_LEVEL="debug",
        KEYSCOPE_DEFAULT_RATE_LIMIT_PER_MINUTE="120",
    )

    values = read_settings(
        ["ALLOWED_HOSTS", "DATABASES", "CACHES", "LOG_LEVEL", "KEYSCOPE_DEFAULT_RATE_LIMIT_PER_MINUTE"], env=env
    )

    assert values["ALLOWED_HOSTS"] == ["keyscope.example.com", "api.example.com"]
    database = values["DATABASES"]["default"]
    assert database["ENGINE"] == "lib.db.postgresql"  # Django's, with the health check of lib/db/postgresql/base.py
    assert (database["NAME"], database["USER"], database["HOST"], database["PORT"]) == (
        "keyscope",
        "keyscope",
        "db.internal",
        5433,
    )
    assert database["CONN_MAX_AGE"] == 0
    assert database["CONN_HEALTH_CHECKS"] is False
    assert "transaction_mode" not in database["OPTIONS"]
    cache = values["CACHES"]["default"]
    assert cache["BACKEND"] == "django.core.cache.backends.redis.RedisCache"
    assert cache["LOCATION"] == "redis://cache.internal:6380/2"
    assert values["LOG_LEVEL"] == "DEBUG"
    assert values["KEYSCOPE_DEFAULT_RATE_LIMIT_PER_MINUTE"] == 120


@pytest.mark.django_db
def test_the_suite_runs_on_the_database_that_DATABASE_URL_names():
    # `make test` starts PostgreSQL; the model constraints must hold there.
    url = os.environ.get("DATABASE_URL", "")
    expected = "postgresql" if url.startswith(("postgres://", "postgresql://")) else "sqlite"
    if os.environ.get("CI") == "true":
        # CI's first pass must reach PostgreSQL; make test's second pass is SQLite on purpose.
        expected = "sqlite" if os.environ.get("KEYSCOPE_TEST_PASS") == "sqlite" else "postgresql"

    assert connection.vendor == expected
