"""The PostgreSQL health check is paid by a connection that sat idle, not before every request's first query."""

import pytest
from django.db import connection
from django.test import override_settings

pytestmark = pytest.mark.django_db


@pytest.fixture
def checks(monkeypatch) -> list[None]:
    if connection.vendor != "postgresql":
        pytest.skip("the idle-only health check is PostgreSQL's (SQLite has no round trip to save)")
    calls: list[None] = []
    real = connection.is_usable

    def counting() -> bool:
        calls.append(None)
        return real()

    monkeypatch.setattr(connection, "is_usable", counting)
    return calls


def next_request_first_query() -> None:
    """What a new request does before its first query, then the query."""
    connection.health_check_done = False  # type: ignore[attr-defined]  # as a request's start leaves it
    with connection.cursor() as cursor:
        cursor.execute("SELECT 1 + 1")


def test_a_connection_that_just_answered_is_not_checked_again(checks):
    with connection.cursor() as cursor:
        cursor.execute("SELECT 2")

    next_request_first_query()

    assert checks == []


def test_a_connection_idle_for_longer_than_the_threshold_is_checked(checks):
    with connection.cursor() as cursor:
        cursor.execute("SELECT 2")
    connection.answered_at -= 3600

    next_request_first_query()

    assert len(checks) == 1


@override_settings(KEYSCOPE_DB_HEALTH_CHECK_IDLE_SECONDS=0)
def test_with_no_threshold_every_request_checks_as_django_does(checks):
    with connection.cursor() as cursor:
        cursor.execute("SELECT 2")

    next_request_first_query()

    assert len(checks) == 1
