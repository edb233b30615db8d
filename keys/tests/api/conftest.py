"""API clients for the personas of the root conftest, authenticated the way real clients are (HTTP Basic)."""

import base64
from collections.abc import Callable

import pytest
from rest_framework.test import APIClient

from organizations.tests.factories import TEST_PASSWORD

ORG_A = "/api/v1/orgs/org-a"


def basic(username: str, password: str = TEST_PASSWORD) -> str:
    return "Basic " + base64.b64encode(f"{username}:{password}".encode()).decode()


@pytest.fixture
def client_for() -> Callable:
    def make(user=None) -> APIClient:
        client = APIClient()
        if user is not None:
            client.credentials(HTTP_AUTHORIZATION=basic(user.username))
        return client

    return make


@pytest.fixture
def anonymous_client() -> APIClient:
    return APIClient()


@pytest.fixture
def admin_client(client_for, admin_a) -> APIClient:
    return client_for(admin_a)


@pytest.fixture
def member_client(client_for, member_a) -> APIClient:
    return client_for(member_a)


@pytest.fixture
def other_admin_client(client_for, admin_b) -> APIClient:
    return client_for(admin_b)


@pytest.fixture
def superuser_client(client_for, superuser) -> APIClient:
    return client_for(superuser)
