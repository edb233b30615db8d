"""Deployments in the admin: scoped, keys listed masked, deletion through the service."""

from __future__ import annotations

import pytest

from deployments.models import Deployment, Execution
from deployments.tests.factories import ExecutionFactory
from keys.models import AuditEvent, DeploymentKey
from keys.tests.helpers import admin_url, full_keys_in

pytestmark = pytest.mark.django_db


def test_a_deployments_page_lists_its_keys_masked_and_read_only(client_a, deployment_key_a1):
    key, full_key = deployment_key_a1
    response = client_a.get(admin_url("deployment", "change", key.deployment_id, app="deployments"))

    page = response.content.decode()
    assert response.status_code == 200
    assert key.key_masked in page and full_key not in page and full_keys_in(response) == []
    assert 'name="keys-0-name"' not in page  # the inline is read-only


def test_an_org_admin_creates_a_deployment_in_their_organization_only(client_a, org_a, org_b):
    form = client_a.get(admin_url("deployment", "add", app="deployments")).context["adminform"].form
    assert list(form.fields["organization"].queryset) == [org_a]

    data = {
        "slug": "new", "name": "New", "description": "", "is_active": "on", "runner": "echo", "upstream_url": "",
        "timeout_seconds": "30", "upstream_headers": "", "keys-TOTAL_FORMS": "0", "keys-INITIAL_FORMS": "0",
    }
    refused = client_a.post(admin_url("deployment", "add", app="deployments"), {**data, "organization": org_b.pk})
    assert refused.status_code == 200 and not Deployment.objects.filter(slug="new").exists()
    created = client_a.post(admin_url("deployment", "add", app="deployments"), {**data, "organization": org_a.pk})
    assert created.status_code == 302
    assert Deployment.objects.get(slug="new").organization == org_a


def test_deleting_a_deployment_deletes_its_keys_with_audit_and_its_executions(
    client_a, deployment_key_a1, global_selected_key_a
):
    key, _ = deployment_key_a1
    deployment = key.deployment
    ExecutionFactory(deployment=deployment)
    url = admin_url("deployment", "delete", deployment.pk, app="deployments")

    confirmation = client_a.get(url)
    assert confirmation.status_code == 200
    assert "permission to delete" not in confirmation.content.decode()
    assert client_a.post(url, {"post": "yes"}).status_code == 302

    assert not Deployment.objects.filter(pk=deployment.pk).exists()
    assert not DeploymentKey.objects.filter(pk=key.pk).exists()
    assert not Execution.objects.filter(deployment_id=deployment.pk).exists()
    assert AuditEvent.objects.get(key_id=key.pk, action="deleted").actor_username == "admin-a"
    global_key = global_selected_key_a[0]
    assert list(global_key.deployments.values_list("slug", flat=True)) == ["a-two"]


def test_a_member_cannot_delete_a_deployment(client_member_a, deployment_a1):
    url = admin_url("deployment", "delete", deployment_a1.pk, app="deployments")
    assert client_member_a.post(url, {"post": "yes"}).status_code == 403
    assert Deployment.objects.filter(pk=deployment_a1.pk).exists()
