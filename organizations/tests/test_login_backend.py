"""The authentication backend: credentials no database can hold are a failed login, with no query."""

import pytest
from django.contrib.auth import authenticate
from django.contrib.auth.signals import user_login_failed
from django.test import RequestFactory

from organizations.tests.factories import TEST_PASSWORD

pytestmark = pytest.mark.django_db


@pytest.mark.parametrize(
    "username, password",
    [("admin-a\x00", TEST_PASSWORD), ("\x00", "x"), ("admin-a", TEST_PASSWORD + "\x00")],
    ids=["nul-after-name", "nul-alone", "nul-in-password"],
)
def test_a_nul_in_the_credentials_is_a_failed_login_without_a_query(admin_a, django_assert_num_queries, username, password):
    failures = []
    user_login_failed.connect(receiver := lambda **kwargs: failures.append(kwargs["credentials"]), weak=False)
    request = RequestFactory().get("/", REMOTE_ADDR="203.0.113.5")
    try:
        with django_assert_num_queries(0):
            user = authenticate(request, username=username, password=password)
    finally:
        user_login_failed.disconnect(receiver)

    assert user is None
    assert [credentials["username"] for credentials in failures] == [username]


def test_the_right_password_still_logs_in(admin_a):
    request = RequestFactory().get("/", REMOTE_ADDR="203.0.113.5")

    assert authenticate(request, username="admin-a", password=TEST_PASSWORD) == admin_a
