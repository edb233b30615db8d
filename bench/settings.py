"""The product's settings, plus what only the benchmark needs: its trivial endpoints and the peer package.

The product never loads this module, so it never exposes /bench/ or installs
rest_framework_api_key. BENCH_DATABASE_NAME points the run at its own database.
"""

from backend.settings import *  # noqa: F403
from backend.settings import DATABASES, INSTALLED_APPS, MIDDLEWARE, env

try:
    import rest_framework_api_key  # noqa: F401

    BENCH_PEER_INSTALLED = True
    INSTALLED_APPS = [*INSTALLED_APPS, "rest_framework_api_key"]
except ImportError:
    BENCH_PEER_INSTALLED = False

ROOT_URLCONF = "bench.urls"
DATABASES["default"]["NAME"] = env.str("BENCH_DATABASE_NAME", default=DATABASES["default"]["NAME"])
MIDDLEWARE = ["bench.views.WorkerHeaderMiddleware", *MIDDLEWARE]
