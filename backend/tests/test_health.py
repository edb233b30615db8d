"""GET /healthz: 200 when the database (and Redis, where configured) answer, else 503."""

from unittest import mock

import pytest
from django.db import OperationalError
from django.test import override_settings

SERVICE_UNAVAILABLE = {
    "detail": "The service is temporarily unavailable. Try again shortly.",
    "code": "service_unavailable",
}

pytestmark = pytest.mark.django_db


@pytest.fixture
def database_unreachable():
    """Every attempt to reach the database fails as it does with the server down."""
    with mock.patch(
        "django.db.backends.base.base.BaseDatabaseWrapper.ensure_connection",
        side_effect=OperationalError('connection to server at "127.0.0.1", port 1 failed: Connection refused'),
    ):
        yield


@pytest.mark.parametrize("path", ["/healthz", "/healthz/"])
def test_healthz_is_200_when_the_services_answer(client, settings, path):
    response = client.get(path)

    assert response.status_code == 200
    body = response.json()
    assert body["status"] == "ok"
    assert body["database"] == "ok"
    if settings.REDIS_URL:
        assert body["redis"] == "ok"


def test_healthz_answers_head_for_load_balancers(client):
    assert client.head("/healthz").status_code == 200


def test_healthz_is_503_when_the_database_is_unreachable(client, database_unreachable):
    response = client.get("/healthz")

    assert response.status_code == 503
    assert response.json() == SERVICE_UNAVAILABLE
    assert response["Retry-After"]
    assert response["X-Request-Id"]


@override_settings(
    REDIS_URL="redis://127.0.0.1:1/0",
    CACHES={
        "default": {
            "BACKEND": "django.core.cache.backends.redis.RedisCache",
            # Port 1 on loopback: nothing listens there, so the connection is refused.
            "LOCATION": "redis://127.0.0.1:1/0",
            "OPTIONS": {"socket_connect_timeout": 1, "socket_timeout": 1},
        }
    },
)
def test_healthz_is_503_when_the_configured_redis_is_unreachable(client):
    response = client.get("/healthz")

    assert response.status_code == 503
    assert response.json() == SERVICE_UNAVAILABLE


def test_a_page_that_needs_the_database_is_503_not_500_when_it_is_down(client, superuser):
    client.force_login(superuser)

    with mock.patch(
        "django.db.backends.base.base.BaseDatabaseWrapper.ensure_connection",
        side_effect=OperationalError("could not connect to server"),
    ):
        response = client.get("/admin/")

    assert response.status_code == 503
    assert response.json() == SERVICE_UNAVAILABLE
