"""What plain ORM code may rely on of the key models, beside the tenant guard (test_models_tenant_guard.py)."""

import pytest

from deployments.tests.factories import DeploymentFactory
from keys import crypto
from keys.models import DeploymentKey, GlobalApiDeploymentKey


@pytest.mark.parametrize("model", [DeploymentKey, GlobalApiDeploymentKey])
def test_objects_create_with_only_the_contract_fields_works_twice(org_a, model):
    deployment = DeploymentFactory(organization=org_a)
    fields = {"deployment": deployment} if model is DeploymentKey else {"organization": org_a}
    first = model.objects.create(name="one", **fields)
    second = model.objects.create(name="two", **fields)
    assert first.digest != second.digest
    # A row made this way has no secret: no well-formed key maps to its placeholder digest.
    assert crypto.key_kind(first.digest) is None
    assert len(first.digest) <= 64
