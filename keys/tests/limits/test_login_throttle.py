"""Password guessing on /admin/login/ and HTTP Basic is throttled per username and per address."""

import base64

import pytest
from django.conf import settings
from django.test import override_settings

from organizations.tests.factories import TEST_PASSWORD

pytestmark = pytest.mark.django_db

MANAGEMENT_API = "/api/v1/orgs/org-a/deployments/"  # any management endpoint: Basic is checked first


def admin_login(client, username: str, password: str, address: str = "127.0.0.1"):
    return client.post("/admin/login/", {"username": username, "password": password}, REMOTE_ADDR=address)


def basic(client, username: str, password: str, address: str = "127.0.0.1"):
    credentials = base64.b64encode(f"{username}:{password}".encode()).decode()
    return client.get(MANAGEMENT_API, HTTP_AUTHORIZATION=f"Basic {credentials}", REMOTE_ADDR=address)


def test_admin_login_after_the_limit_is_429_even_with_the_right_password(client, admin_a):
    per_user = settings.KEYSCOPE_LOGIN_FAILURES_PER_MINUTE
    failures = [admin_login(client, "admin-a", "wrong") for _ in range(per_user)]

    right = admin_login(client, "admin-a", TEST_PASSWORD)

    assert {r.status_code for r in failures} == {200}  # the form again, with its error
    assert right.status_code == 429
    assert right["Retry-After"] == "59"
    assert "_auth_user_id" not in client.session


def test_admin_login_below_the_limit_still_logs_in(client, admin_a):
    for _ in range(settings.KEYSCOPE_LOGIN_FAILURES_PER_MINUTE - 1):
        admin_login(client, "admin-a", "wrong")

    response = admin_login(client, "admin-a", TEST_PASSWORD)

    assert response.status_code == 302
    assert client.session["_auth_user_id"] == str(admin_a.pk)


def test_basic_after_the_limit_is_429_even_with_the_right_password(client, admin_a):
    assert basic(client, "admin-a", TEST_PASSWORD).status_code == 200
    failures = [basic(client, "admin-a", "wrong") for _ in range(settings.KEYSCOPE_LOGIN_FAILURES_PER_MINUTE)]

    right = basic(client, "admin-a", TEST_PASSWORD)

    assert {r.status_code for r in failures} == {401}
    assert right.status_code == 429
    assert right.json() == {"detail": right.json()["detail"], "code": "rate_limited"}
    assert right["Retry-After"] == "59"


def test_the_username_is_throttled_from_every_address(client, admin_a, member_a):
    for n in range(settings.KEYSCOPE_LOGIN_FAILURES_PER_MINUTE):
        basic(client, "admin-a", "wrong", address=f"203.0.113.{n}")

    assert basic(client, "admin-a", TEST_PASSWORD, address="198.51.100.99").status_code == 429
    assert admin_login(client, "ADMIN-A", TEST_PASSWORD, address="198.51.100.98").status_code == 429
    # Another user is not locked out by someone guessing admin-a's password.
    assert basic(client, "member-a", TEST_PASSWORD, address="198.51.100.99").status_code == 200


def test_the_address_is_throttled_for_every_username(client, admin_a, member_a):
    per_address = settings.KEYSCOPE_LOGIN_FAILURES_PER_ADDRESS_PER_MINUTE
    assert per_address > settings.KEYSCOPE_LOGIN_FAILURES_PER_MINUTE
    for n in range(per_address):
        # Few tries per name: the per-username limit is never reached.
        basic(client, f"guess-{n}", "wrong", address="203.0.113.5")

    assert basic(client, "member-a", TEST_PASSWORD, address="203.0.113.5").status_code == 429
    assert admin_login(client, "admin-a", TEST_PASSWORD, address="203.0.113.5").status_code == 429
    # Another address, same users: fine.
    assert basic(client, "member-a", TEST_PASSWORD, address="203.0.113.6").status_code == 200


@override_settings(KEYSCOPE_LOGIN_FAILURES_PER_MINUTE=2)
def test_admin_and_basic_failures_add_up(client, admin_a):
    admin_login(client, "admin-a", "wrong")
    basic(client, "admin-a", "wrong")

    assert basic(client, "admin-a", TEST_PASSWORD).status_code == 429


@override_settings(KEYSCOPE_LOGIN_FAILURES_PER_MINUTE=2)
def test_the_throttle_lifts_in_the_next_window(client, admin_a, clock):
    basic(client, "admin-a", "wrong")
    basic(client, "admin-a", "wrong")
    assert basic(client, "admin-a", TEST_PASSWORD).status_code == 429

    clock.advance(60)

    assert basic(client, "admin-a", TEST_PASSWORD).status_code == 200


def test_the_admin_login_page_itself_is_not_throttled(client, admin_a):
    for _ in range(settings.KEYSCOPE_LOGIN_FAILURES_PER_MINUTE):
        admin_login(client, "admin-a", "wrong")

    assert client.get("/admin/login/").status_code == 200


@override_settings(KEYSCOPE_LOGIN_FAILURES_PER_MINUTE=2, KEYSCOPE_TRUSTED_PROXIES=["10.0.0.0/8"])
def test_behind_a_trusted_proxy_the_forwarded_address_is_throttled(client, admin_a):
    with override_settings(KEYSCOPE_LOGIN_FAILURES_PER_ADDRESS_PER_MINUTE=2):
        for name in ("x", "y"):
            client.post(
                "/admin/login/", {"username": name, "password": "wrong"},
                REMOTE_ADDR="10.0.0.1", HTTP_X_FORWARDED_FOR="203.0.113.5",
            )
        throttled = client.post(
            "/admin/login/", {"username": "admin-a", "password": TEST_PASSWORD},
            REMOTE_ADDR="10.0.0.1", HTTP_X_FORWARDED_FOR="203.0.113.5",
        )
        other_client = client.post(
            "/admin/login/", {"username": "admin-a", "password": TEST_PASSWORD},
            REMOTE_ADDR="10.0.0.1", HTTP_X_FORWARDED_FOR="203.0.113.6",
        )

    assert throttled.status_code == 429
    assert other_client.status_code == 302


@override_settings(KEYSCOPE_LOGIN_FAILURES_PER_MINUTE=1)
def test_the_login_page_says_why_it_refuses(client, admin_a):
    admin_login(client, "admin-a", "wrong")

    refused = admin_login(client, "admin-a", TEST_PASSWORD)

    assert refused.status_code == 429
    assert "Too many failed logins. Try again in 59 seconds." in refused.content.decode()
    assert 'name="username"' in refused.content.decode()  # the login form again, not a bare error


def test_basic_credentials_beside_a_valid_api_key_are_not_a_throttled_login(client, global_all_key_a, deployment_a1):
    _, full_key = global_all_key_a
    with override_settings(KEYSCOPE_LOGIN_FAILURES_PER_ADDRESS_PER_MINUTE=1, KEYSCOPE_LOGIN_FAILURES_PER_MINUTE=1):
        for _ in range(3):
            client.get("/api/v1/orgs/org-a/deployments/", HTTP_AUTHORIZATION="Basic bm9ib2R5Om5vcGU=")
        throttled = client.get("/api/v1/orgs/org-a/deployments/", HTTP_AUTHORIZATION="Basic bm9ib2R5Om5vcGU=")
        assert throttled.status_code == 429
        response = client.post(
            "/api/v1/deployments/org-a/a-one/execute/",
            content_type="application/json",
            HTTP_AUTHORIZATION="Basic bm9ib2R5Om5vcGU=",
            HTTP_X_API_KEY=full_key,
        )
    assert response.status_code == 200
