"""Parallel wrong logins against one username: at most the limit get their password checked.

Each thread has its own database connection and goes through the whole request
(Basic header, the admin's login form); the counters are Redis's when REDIS_URL is
set, as several workers share them. A slow password check widens the window in
which a throttle that checks before it counts lets extra guesses through.
"""

from __future__ import annotations

import base64
import time

import pytest
from django.contrib.auth import get_user_model
from django.db import connection
from django.test import Client

from backend.tests.clock import FrozenClock
from backend.tests.threads import in_threads
from keys.tests.helpers import ORG_A
from lib import counters

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.slow]

GUESSES = 40
LIMIT = 10
PASSWORD_CHECK_SECONDS = 0.05


@pytest.fixture(autouse=True)
def _slow_password_checks(monkeypatch, settings):
    if connection.vendor != "postgresql":
        pytest.skip("concurrent requests need a database that serves several connections: PostgreSQL only")
    settings.KEYSCOPE_LOGIN_FAILURES_PER_MINUTE = LIMIT
    settings.KEYSCOPE_LOGIN_FAILURES_PER_ADDRESS_PER_MINUTE = 1000
    checked: list[str] = []
    check_password = get_user_model().check_password

    def slow_check(user, raw_password):
        checked.append(user.username)
        time.sleep(PASSWORD_CHECK_SECONDS)
        return check_password(user, raw_password)

    monkeypatch.setattr(get_user_model(), "check_password", slow_check)
    monkeypatch.setattr(counters, "time", FrozenClock())
    return checked


def test_parallel_basic_guesses_get_at_most_the_limit_checked(admin_a, _slow_password_checks):
    wrong = "Basic " + base64.b64encode(b"admin-a:wrong").decode()

    def guess(index: int) -> int:
        return Client().get(
            f"{ORG_A}/deployments/", HTTP_AUTHORIZATION=wrong, REMOTE_ADDR=f"203.0.113.{index}"
        ).status_code

    statuses = in_threads(GUESSES, guess)

    assert sorted(set(statuses)) == [401, 429]
    assert statuses.count(401) <= LIMIT
    assert len(_slow_password_checks) <= LIMIT


def test_parallel_login_form_guesses_get_at_most_the_limit_checked(admin_a, _slow_password_checks):
    def guess(index: int) -> int:
        return Client().post(
            "/admin/login/", {"username": "admin-a", "password": "wrong"}, REMOTE_ADDR=f"203.0.113.{index}"
        ).status_code

    statuses = in_threads(GUESSES, guess)

    assert sorted(set(statuses)) == [200, 429]
    assert statuses.count(200) <= LIMIT
    assert len(_slow_password_checks) <= LIMIT
