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
