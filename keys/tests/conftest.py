"""Key personas: a key of each kind for org A, and org B's own deployment and key.

Each key fixture returns `(row, full_key)`; full keys are made at run time.
"""

import pytest

from deployments.tests.factories import DeploymentFactory
from keys.tests.factories import issue_deployment_key, issue_global_key


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


def bearer(full_key: str) -> dict[str, str]:
    return {"HTTP_AUTHORIZATION": f"Bearer {full_key}"}


def x_api_key(full_key: str) -> dict[str, str]:
    return {"HTTP_X_API_KEY": full_key}


def execute_url(org_slug: str, deployment_slug: str, trailing_slash: bool = True) -> str:
    return f"/api/v1/deployments/{org_slug}/{deployment_slug}/execute" + ("/" if trailing_slash else "")


def execution_url(org_slug: str, deployment_slug: str, execution_id: str) -> str:
    return f"/api/v1/deployments/{org_slug}/{deployment_slug}/executions/{execution_id}/"


def execute(client, org_slug: str, deployment_slug: str, full_key: str | None = None, body=None, **extra):
    """POST a JSON body to a deployment's execute endpoint, with the key as a Bearer token."""
    headers = bearer(full_key) if full_key is not None else {}
    headers.update(extra)
    return client.post(
        execute_url(org_slug, deployment_slug), data=body if body is not None else {}, content_type="application/json", **headers
    )


def assert_error(response, status: int, code: str) -> None:
    """The contract's error shape: exactly {"detail", "code"}; every 401 challenges for Bearer."""
    assert response.status_code == status, response.content
    body = response.json()
    assert set(body) == {"detail", "code"}, body
    assert body["code"] == code
    assert isinstance(body["detail"], str) and body["detail"]
    if status == 401:
        assert response["WWW-Authenticate"] == "Bearer"
