"""Deployment, key and API-client personas, registered for every app's tests by the root conftest.py.

A key of each kind for org A, and org B's own deployment and key. Each key
fixture returns `(row, full_key)`; full keys are made at run time.
"""

from collections.abc import Callable

import pytest
from cryptography.fernet import Fernet
from django.test import override_settings
from rest_framework.test import APIClient
from rest_framework.views import APIView

from deployments.services import group_create
from deployments.tests.factories import DeploymentFactory
from keys.services import key_rotate
from keys.tests.factories import issue_deployment_key, issue_global_key
from keys.tests.helpers import basic
from keys.tests.leaks.github import GitHubSigner, write_keys_file


@pytest.fixture
def deployment_a1(org_a):
    return DeploymentFactory(organization=org_a, slug="a-one", name="A one")


@pytest.fixture
def deployment_a2(org_a):
    return DeploymentFactory(organization=org_a, slug="a-two", name="A two")


@pytest.fixture
def deployment_a3(org_a):
    return DeploymentFactory(organization=org_a, slug="a-three", name="A three")


@pytest.fixture
def deployment_b1(org_b):
    return DeploymentFactory(organization=org_b, slug="b-one", name="B one")


@pytest.fixture
def group_a(org_a, deployment_a1):
    """org A's deployment group "production", holding a-one."""
    return group_create(organization=org_a, slug="production", name="Production", deployments=[deployment_a1], actor=None)


@pytest.fixture
def group_b(org_b, deployment_b1):
    """org B's own group "production", holding b-one."""
    return group_create(organization=org_b, slug="production", name="B production", deployments=[deployment_b1], actor=None)


@pytest.fixture
def grouped_key_a(org_a, group_a, deployment_a2, deployment_a3):
    """A global key of org A bound to the group "production" (a-one) and nothing else; a-two and a-three exist."""
    return issue_global_key(org_a, name="production key", groups=[group_a])


@pytest.fixture
def deployment_key_a1(deployment_a1):
    """A deployment key for a-one."""
    return issue_deployment_key(deployment_a1, name="a-one key")


@pytest.fixture
def global_all_key_a(org_a):
    """A global key that opens every deployment of org A."""
    return issue_global_key(org_a, name="all of A", allow_all_deployments=True)


@pytest.fixture
def global_selected_key_a(org_a, deployment_a1, deployment_a2, deployment_a3):
    """A global key that opens a-one and a-two (not a-three)."""
    return issue_global_key(org_a, name="a-one and a-two", deployments=[deployment_a1, deployment_a2])


@pytest.fixture
def global_all_key_b(org_b, deployment_b1):
    return issue_global_key(org_b, name="all of B", allow_all_deployments=True)


@pytest.fixture
def in_grace_key_a(org_a):
    """A global key rotated with an hour of grace: `(row, old_full_key, new_full_key)`."""
    row, old_key = issue_global_key(org_a, name="rotating", allow_all_deployments=True)
    row, new_key = key_rotate(key=row, actor=None, grace_period_seconds=3600)
    return row, old_key, new_key


@pytest.fixture
def github(tmp_path, settings) -> GitHubSigner:
    """GitHub's current secret scanning signing key, in the file KEYSCOPE_GITHUB_SECRET_SCANNING_KEYS names."""
    signer = GitHubSigner.generate("90a421169f0a406205f1563a953312f0be898d3c7b6c06b681aa86a874555f4a")
    settings.KEYSCOPE_GITHUB_SECRET_SCANNING_KEYS = str(write_keys_file(tmp_path / "github-keys.json", signer))
    return signer


@pytest.fixture
def encryption_keys():
    """A fresh KEYSCOPE_ENCRYPTION_KEYS for tests that store upstream credentials."""
    keys = [Fernet.generate_key().decode()]
    with override_settings(KEYSCOPE_ENCRYPTION_KEYS=keys):
        yield keys


# API clients for the personas of the root conftest, authenticated the way real clients are (HTTP Basic).


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


@pytest.fixture
def drf_requests(monkeypatch) -> list[object]:
    """Every DRF Request the views build, to tell the early answer from DRF's."""
    made: list[object] = []
    initialize = APIView.initialize_request

    def counting(self, request, *args, **kwargs):
        made.append(request)
        return initialize(self, request, *args, **kwargs)

    monkeypatch.setattr(APIView, "initialize_request", counting)
    return made
