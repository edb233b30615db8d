import logging

from django.conf import settings
from django.core.cache import cache
from django.db import connection
from django.http import HttpRequest, JsonResponse
from django.views.decorators.http import require_safe

from backend.middleware import service_unavailable

logger = logging.getLogger("keyscope.health")


@require_safe
def healthz(request: HttpRequest) -> JsonResponse:
    """200 when the database (and Redis, where configured) answer, else 503."""
    checks = {"database": "ok"}
    try:
        with connection.cursor() as cursor:
            cursor.execute("SELECT 1")
    except Exception as exc:  # any failure to reach the database is "down"
        logger.error("health check: database unavailable: %s", type(exc).__name__)
        return service_unavailable()
    if settings.REDIS_URL:
        try:
            cache._cache.get_client(write=True).ping()  # type: ignore[attr-defined]
        except Exception as exc:
            logger.error("health check: redis unavailable: %s", type(exc).__name__)
            return service_unavailable()
        checks["redis"] = "ok"
    return JsonResponse({"status": "ok", **checks})
