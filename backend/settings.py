"""keyscope settings: one file, one `environ.Env()`, everything from the environment.

Defaults are safe and local: SQLite under var/, local-memory cache, HTTPS
settings off. Production sets DATABASE_URL, REDIS_URL, SECRET_KEY,
ALLOWED_HOSTS and the HTTPS variables (see README.md).
"""

import contextlib
import sys
from pathlib import Path

import environ
from django.core.exceptions import ImproperlyConfigured

BASE_DIR = Path(__file__).resolve().parent.parent
VAR_DIR = BASE_DIR / "var"

# A bare `pytest` (or `manage.py test`, which runs it) must work without any
# variable set. `manage.py test` loads settings before pytest.
TESTING = "pytest" in sys.modules or sys.argv[1:2] == ["test"]

env = environ.Env()
# Variables the environment lacks come from .env (git-ignored; `make run` writes its secrets there),
# or from the file KEYSCOPE_ENV_FILE names; none when it is empty. Tests never read a developer's .env.
ENV_FILE = env.str("KEYSCOPE_ENV_FILE", default="" if TESTING else str(BASE_DIR / ".env"))
if ENV_FILE and Path(ENV_FILE).is_file():
    environ.Env.read_env(ENV_FILE)

DEBUG = env.bool("DEBUG", default=False)

SECRET_KEY = env.str("SECRET_KEY", default="")
if not SECRET_KEY:
    if not (DEBUG or TESTING):
        raise ImproperlyConfigured(
            "SECRET_KEY is not set. Set the SECRET_KEY environment variable (or a line in .env, "
            "which `make run` writes) to a long random string, for example the output of "
            "`python -c 'import secrets; print(secrets.token_urlsafe(50))'`, "
            "or set DEBUG=true for local development."
        )
    SECRET_KEY = "django-insecure-local-development-only-not-for-production-use"

ALLOWED_HOSTS = env.list("ALLOWED_HOSTS", default=["127.0.0.1", "localhost", "[::1]", "testserver"])
CSRF_TRUSTED_ORIGINS = env.list("CSRF_TRUSTED_ORIGINS", default=[])

INSTALLED_APPS = [
    "django.contrib.admin",
    "django.contrib.auth",
    "django.contrib.contenttypes",
    "django.contrib.sessions",
    "django.contrib.messages",
    "whitenoise.runserver_nostatic",
    "django.contrib.staticfiles",
    "rest_framework",
    "drf_spectacular",
    "drf_spectacular_sidecar",
    "organizations",
    "deployments",
    "keys",
]

MIDDLEWARE = [
    "backend.middleware.RequestIdMiddleware",
    "backend.middleware.ServiceUnavailableMiddleware",
    "backend.middleware.RejectNulPathMiddleware",
    "django.middleware.security.SecurityMiddleware",
    "whitenoise.middleware.WhiteNoiseMiddleware",
    "organizations.login_throttle.LoginThrottleMiddleware",
    "django.contrib.sessions.middleware.SessionMiddleware",
    "django.middleware.common.CommonMiddleware",
    "django.middleware.csrf.CsrfViewMiddleware",
    "django.contrib.auth.middleware.AuthenticationMiddleware",
    "django.contrib.messages.middleware.MessageMiddleware",
    "django.middleware.clickjacking.XFrameOptionsMiddleware",
]

ROOT_URLCONF = "backend.urls"
WSGI_APPLICATION = "backend.wsgi.application"

TEMPLATES = [
    {
        "BACKEND": "django.template.backends.django.DjangoTemplates",
        "DIRS": [BASE_DIR / "templates"],
        "APP_DIRS": True,
        "OPTIONS": {
            "context_processors": [
                "django.template.context_processors.request",
                "django.contrib.auth.context_processors.auth",
                "django.contrib.messages.context_processors.messages",
            ],
        },
    },
]

# Database --------------------------------------------------------------------
DEFAULT_SQLITE_PATH = VAR_DIR / "keyscope.sqlite3"
DATABASES = {"default": env.db("DATABASE_URL", default=f"sqlite:///{DEFAULT_SQLITE_PATH}")}
# Persistent connections matter more than anything else for throughput on
# PostgreSQL; health checks make a dropped connection recover on its own.
DATABASES["default"]["CONN_MAX_AGE"] = env.int("CONN_MAX_AGE", default=600)
DATABASES["default"]["CONN_HEALTH_CHECKS"] = env.bool("CONN_HEALTH_CHECKS", default=True)
if DATABASES["default"]["ENGINE"] == "django.db.backends.sqlite3":
    if DATABASES["default"]["NAME"] == str(DEFAULT_SQLITE_PATH):
        VAR_DIR.mkdir(mode=0o700, exist_ok=True)  # the database, readable by this user only
    # Without IMMEDIATE transactions and a busy timeout, two concurrent
    # writers fail at once with "database is locked".
    DATABASES["default"].setdefault("OPTIONS", {}).update(
        {
            "transaction_mode": "IMMEDIATE",
            "timeout": 20,
            "init_command": "PRAGMA journal_mode=WAL; PRAGMA synchronous=NORMAL;",
        }
    )
else:
    DATABASES["default"].setdefault("OPTIONS", {}).setdefault("connect_timeout", 5)

# The cold key lookup runs as a prepared statement on PostgreSQL (keys/lookup.py): planning
# its joins costs several times what running them does. Django turns psycopg's preparing off
# (prepare_threshold None); a threshold no query reaches turns it on for what asks for it, the
# lookup alone, and leaves every other query as Django runs it. KEYSCOPE_PREPARED_KEY_LOOKUP=false
# for a pooler in transaction mode that cannot carry prepared statements.
KEYSCOPE_PREPARED_KEY_LOOKUP = env.bool("KEYSCOPE_PREPARED_KEY_LOOKUP", default=True)
if DATABASES["default"]["ENGINE"] == "django.db.backends.postgresql" and KEYSCOPE_PREPARED_KEY_LOOKUP:
    DATABASES["default"]["OPTIONS"].setdefault("prepare_threshold", 2**31 - 1)
# On PostgreSQL, Django's backend with the health check paid only by a connection idle for longer
# than this (lib/db/postgresql/base.py); 0 checks before every request's first query, as Django does.
KEYSCOPE_DB_HEALTH_CHECK_IDLE_SECONDS = env.float("KEYSCOPE_DB_HEALTH_CHECK_IDLE_SECONDS", default=1.0)
if DATABASES["default"]["ENGINE"] == "django.db.backends.postgresql":
    DATABASES["default"]["ENGINE"] = "lib.db.postgresql"

DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"

# Cache -----------------------------------------------------------------------
REDIS_URL = env.str("REDIS_URL", default="")
if REDIS_URL:
    CACHES = {
        "default": {
            "BACKEND": "django.core.cache.backends.redis.RedisCache",
            "LOCATION": REDIS_URL,
            "KEY_PREFIX": env.str("KEYSCOPE_CACHE_PREFIX", default="keyscope"),
            "OPTIONS": {"socket_connect_timeout": 1, "socket_timeout": 1},
        }
    }
else:
    CACHES = {"default": {"BACKEND": "django.core.cache.backends.locmem.LocMemCache"}}

# Auth ------------------------------------------------------------------------
# The login throttle sits where passwords are checked (organizations/login_throttle.py).
AUTHENTICATION_BACKENDS = ["organizations.login_throttle.ThrottledModelBackend"]
AUTH_PASSWORD_VALIDATORS = [
    {"NAME": "django.contrib.auth.password_validation.UserAttributeSimilarityValidator"},
    {"NAME": "django.contrib.auth.password_validation.MinimumLengthValidator"},
    {"NAME": "django.contrib.auth.password_validation.CommonPasswordValidator"},
    {"NAME": "django.contrib.auth.password_validation.NumericPasswordValidator"},
]
if TESTING:
    # Hashing test passwords with PBKDF2 would dominate the suite's run time.
    PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]

LANGUAGE_CODE = "en-us"
TIME_ZONE = "UTC"
# Our own English formats (backend/formats/en): every time the admin shows names its zone.
FORMAT_MODULE_PATH = ["backend.formats"]
USE_I18N = True
USE_TZ = True

# Static files ----------------------------------------------------------------
STATIC_URL = "static/"
STATIC_ROOT = env.path("STATIC_ROOT", default=VAR_DIR / "static")
# Until `collectstatic` writes its manifest (a fresh checkout, tests), pages name the apps' own
# files and WhiteNoise serves them from the apps; after it, the compressed, hashed files of STATIC_ROOT.
STATIC_COLLECTED = (Path(STATIC_ROOT) / "staticfiles.json").is_file()
if not STATIC_COLLECTED:
    with contextlib.suppress(OSError):  # WhiteNoise warns about a missing STATIC_ROOT
        Path(STATIC_ROOT).mkdir(parents=True, exist_ok=True)
STORAGES = {
    "default": {"BACKEND": "django.core.files.storage.FileSystemStorage"},
    "staticfiles": {
        "BACKEND": (
            "django.contrib.staticfiles.storage.StaticFilesStorage"
            if TESTING
            else "backend.static_storage.StaticFilesStorage"
        )
    },
}
WHITENOISE_USE_FINDERS = DEBUG or TESTING or not STATIC_COLLECTED
# Tests make a request handler per test client: looking files up per request spares each one a
# scan of every static file (about 70 ms).
WHITENOISE_AUTOREFRESH = DEBUG or TESTING

# HTTPS: each setting has its own variable and is off unless set ---------------
SECURE_SSL_REDIRECT = env.bool("SECURE_SSL_REDIRECT", default=False)
SESSION_COOKIE_SECURE = env.bool("SESSION_COOKIE_SECURE", default=False)
CSRF_COOKIE_SECURE = env.bool("CSRF_COOKIE_SECURE", default=False)
SECURE_HSTS_SECONDS = env.int("SECURE_HSTS_SECONDS", default=0)
SECURE_HSTS_INCLUDE_SUBDOMAINS = env.bool("SECURE_HSTS_INCLUDE_SUBDOMAINS", default=False)
SECURE_HSTS_PRELOAD = env.bool("SECURE_HSTS_PRELOAD", default=False)
if env.bool("SECURE_PROXY_SSL_HEADER", default=False):
    SECURE_PROXY_SSL_HEADER = ("HTTP_X_FORWARDED_PROTO", "https")
SECURE_CONTENT_TYPE_NOSNIFF = True
X_FRAME_OPTIONS = "DENY"

# Django REST framework -------------------------------------------------------
REST_FRAMEWORK = {
    "DEFAULT_AUTHENTICATION_CLASSES": [
        # Basic first: it answers an anonymous request with 401 and a
        # WWW-Authenticate challenge instead of session auth's 403.
        "organizations.authentication.BasicAuthentication",
        "rest_framework.authentication.SessionAuthentication",
    ],
    "DEFAULT_PERMISSION_CLASSES": ["rest_framework.permissions.IsAuthenticated"],
    "DEFAULT_PARSER_CLASSES": ["lib.parsers.JSONParser"],
    "DEFAULT_RENDERER_CLASSES": ["rest_framework.renderers.JSONRenderer"],
    "DEFAULT_CONTENT_NEGOTIATION_CLASS": "lib.negotiation.FallbackContentNegotiation",
    "EXCEPTION_HANDLER": "backend.exceptions.exception_handler",
    "DEFAULT_SCHEMA_CLASS": "drf_spectacular.openapi.AutoSchema",
    "UNAUTHENTICATED_USER": "django.contrib.auth.models.AnonymousUser",
}

SPECTACULAR_SETTINGS = {
    "TITLE": "keyscope API",
    "DESCRIPTION": "Keys that guard an organization's API deployments.",
    "VERSION": "1.0.0",
    "SERVE_INCLUDE_SCHEMA": False,
    "SWAGGER_UI_DIST": "SIDECAR",
    "SWAGGER_UI_FAVICON_HREF": "SIDECAR",
    "REDOC_DIST": "SIDECAR",
}

# Logging: one line per event on stdout, each naming its request --------------
LOG_LEVEL = env.str("LOG_LEVEL", default="INFO").upper()
# dictConfig, then backend.logging.RedactKeysFilter on every handler, Django's own included.
LOGGING_CONFIG = "backend.logging.configure"
LOGGING = {
    "version": 1,
    "disable_existing_loggers": False,
    "filters": {
        "request_id": {"()": "backend.logging.RequestIdFilter"},
    },
    "formatters": {
        "line": {
            "format": "%(asctime)s %(levelname)s %(name)s request_id=%(request_id)s %(message)s",
        }
    },
    "handlers": {
        "stdout": {
            "class": "logging.StreamHandler",
            "stream": "ext://sys.stdout",
            "formatter": "line",
            "filters": ["request_id"],
        }
    },
    "root": {"handlers": ["stdout"], "level": LOG_LEVEL},
    "loggers": {
        "django": {"handlers": ["stdout"], "level": LOG_LEVEL, "propagate": False},
    },
}

# keyscope --------------------------------------------------------------------
KEYSCOPE_DEFAULT_RATE_LIMIT_PER_MINUTE = env.int("KEYSCOPE_DEFAULT_RATE_LIMIT_PER_MINUTE", default=600)
KEYSCOPE_FAILED_AUTH_PER_MINUTE = env.int("KEYSCOPE_FAILED_AUTH_PER_MINUTE", default=60)
# Failed authentications a worker counts in memory before adding them to the shared count, in percent of
# that limit (keys/ratelimit.py, README "Limits"): the throttle's error, 5 per worker at 60 a minute.
KEYSCOPE_FAILED_AUTH_BATCH_PERCENT = env.int("KEYSCOPE_FAILED_AUTH_BATCH_PERCENT", default=10)
# Lookups of keys not verified yet that a throttled address may still cost, per minute (README "Limits").
KEYSCOPE_THROTTLED_LOOKUPS_PER_MINUTE = env.int("KEYSCOPE_THROTTLED_LOOKUPS_PER_MINUTE", default=60)
# A UUID may be a key imported from Unstract; false refuses every UUID without a query.
KEYSCOPE_ACCEPT_UUID_KEYS = env.bool("KEYSCOPE_ACCEPT_UUID_KEYS", default=True)
KEYSCOPE_TRUSTED_PROXIES = env.list("KEYSCOPE_TRUSTED_PROXIES", default=[])
KEYSCOPE_RATELIMIT_FAIL_OPEN = env.bool("KEYSCOPE_RATELIMIT_FAIL_OPEN", default=True)
# A worker reserves this share of a key's limit per round trip to Redis (see keys/ratelimit.py).
KEYSCOPE_RATELIMIT_LEASE_PERCENT = env.int("KEYSCOPE_RATELIMIT_LEASE_PERCENT", default=1)
KEYSCOPE_RATELIMIT_LEASE_MAX = env.int("KEYSCOPE_RATELIMIT_LEASE_MAX", default=100)
KEYSCOPE_MAX_BODY_BYTES = env.int("KEYSCOPE_MAX_BODY_BYTES", default=1024 * 1024)
KEYSCOPE_DEMO_PASSWORD = env.str("KEYSCOPE_DEMO_PASSWORD", default="")
KEYSCOPE_DEMO_PORT = env.int("PORT", default=8000)

TEST_RUNNER = "backend.test_runner.PytestRunner"

# Leaked keys: reports, GitHub's secret scanning alerts, the emails that tell admins ---
KEYSCOPE_CREDENTIAL_REPORTS_PER_MINUTE = env.int("KEYSCOPE_CREDENTIAL_REPORTS_PER_MINUTE", default=10)
# GitHub's {"public_keys": [...]} file (https://api.github.com/meta/public_keys/secret_scanning), read at
# each alert, so a refreshed file counts without a restart. Empty: every alert is refused.
KEYSCOPE_GITHUB_SECRET_SCANNING_KEYS = env.str("KEYSCOPE_GITHUB_SECRET_SCANNING_KEYS", default="")
# Where admins reach keyscope, for the links in its emails (not taken from a request's Host header).
KEYSCOPE_PUBLIC_URL = env.str("KEYSCOPE_PUBLIC_URL", default=f"http://127.0.0.1:{KEYSCOPE_DEMO_PORT}").rstrip("/")
# EMAIL_BACKEND, EMAIL_HOST, ... from one URL: consolemail:// prints emails on stdout,
# smtp://user:password@host:587 (or smtp+tls://, smtp+ssl://) sends them.
globals().update(env.email_url("EMAIL_URL", default="consolemail://"))
EMAIL_TIMEOUT = env.int("EMAIL_TIMEOUT", default=10)
DEFAULT_FROM_EMAIL = env.str("DEFAULT_FROM_EMAIL", default="keyscope <keyscope@localhost>")
SERVER_EMAIL = DEFAULT_FROM_EMAIL

# Verification cache, rate limits, login throttling (see README "Several workers")
# Answers live until a write invalidates them (keys/verification_cache.py); this caps their age (0: no cache).
# The stamp and the flush messages bound a write's delay, not this: an hour lets a key that calls every few
# minutes stay warm (at 300 s, a bench of 10,000 keys drawn Zipf-wise still made 0.31 lookups a request).
KEYSCOPE_VERIFICATION_CACHE_SECONDS = env.float("KEYSCOPE_VERIFICATION_CACHE_SECONDS", default=3600.0)
# How often a worker reads the database's verification stamp: the bound on a write that no message announced.
KEYSCOPE_VERIFICATION_STAMP_CHECK_SECONDS = env.float("KEYSCOPE_VERIFICATION_STAMP_CHECK_SECONDS", default=0.5)
KEYSCOPE_VERIFICATION_CACHE_MAX_NEGATIVE = env.int("KEYSCOPE_VERIFICATION_CACHE_MAX_NEGATIVE", default=10_000)
# Each worker holds the first 8 bytes of every digest a key lookup could find (keys/digest_filter.py): about 8 bytes
# a key, 8 MB for a million, built by a thread of its own as the worker starts and after every reconnection, so a
# well-formed key no one issued is refused with no query. False: such keys are looked up (and cached as unknown).
KEYSCOPE_DIGEST_FILTER = env.bool("KEYSCOPE_DIGEST_FILTER", default=True)
# That thread; off in tests, which build the filter by hand (digest_filter.catch_up()) on their own connection.
KEYSCOPE_DIGEST_FILTER_THREAD = env.bool("KEYSCOPE_DIGEST_FILTER_THREAD", default=not TESTING)
# A thread per process writes buffered usage once a second (keys/usage.py); tests flush by hand.
KEYSCOPE_USAGE_FLUSH_THREAD = env.bool("KEYSCOPE_USAGE_FLUSH_THREAD", default=not TESTING)
KEYSCOPE_VERIFICATION_CACHE_MAX_ENTRIES = env.int("KEYSCOPE_VERIFICATION_CACHE_MAX_ENTRIES", default=250_000)
KEYSCOPE_REDIS_TIMEOUT_SECONDS = env.float("KEYSCOPE_REDIS_TIMEOUT_SECONDS", default=0.25)
KEYSCOPE_LOGIN_FAILURES_PER_MINUTE = env.int("KEYSCOPE_LOGIN_FAILURES_PER_MINUTE", default=10)
KEYSCOPE_LOGIN_FAILURES_PER_ADDRESS_PER_MINUTE = env.int("KEYSCOPE_LOGIN_FAILURES_PER_ADDRESS_PER_MINUTE", default=30)

# keyscope: HTTP upstreams -----------------------------------------
# Fernet keys for upstream credentials: the first encrypts, all decrypt. Put a
# new key first, run `manage.py reencrypt_upstream_credentials`, then drop the
# old one. Unset is fine until a deployment stores credentials.
KEYSCOPE_ENCRYPTION_KEYS = env.list("KEYSCOPE_ENCRYPTION_KEYS", default=[])
# Internal addresses (loopback, private, link-local...) that upstreams may use
# anyway: host names, IPs or CIDRs, each optionally with `:port`.
KEYSCOPE_UPSTREAM_ALLOWED_HOSTS = env.list("KEYSCOPE_UPSTREAM_ALLOWED_HOSTS", default=[])
KEYSCOPE_MAX_UPSTREAM_RESPONSE_BYTES = env.int("KEYSCOPE_MAX_UPSTREAM_RESPONSE_BYTES", default=10 * 1024 * 1024)
KEYSCOPE_EXECUTION_RETENTION_DAYS = env.int("KEYSCOPE_EXECUTION_RETENTION_DAYS", default=30)
KEYSCOPE_DEMO_UPSTREAM_URL = env.str("KEYSCOPE_DEMO_UPSTREAM_URL", default="http://127.0.0.1:8001/")
# The execute view answers 413 above KEYSCOPE_MAX_BODY_BYTES; Django's own
# limit must not answer first with a 400.
DATA_UPLOAD_MAX_MEMORY_SIZE = max(KEYSCOPE_MAX_BODY_BYTES, 2_621_440)
