"""Deployments through the management API."""

import pytest
from rest_framework.test import APIClient

from deployments.models import Deployment, Execution
from deployments.tests.factories import ExecutionFactory
from keys.models import AuditEvent, DeploymentKey, GlobalApiDeploymentKey
from keys.tests.helpers import ORG_A, bearer

DEPLOYMENTS = f"{ORG_A}/deployments/"


def test_create_and_read_a_deployment(admin_client, org_a):
    response = admin_client.post(
        DEPLOYMENTS, {"slug": "search", "name": " Search ", "description": "Finds things"}, format="json"
    )
    assert response.status_code == 201
    body = response.json()
    assert set(body) == {
        "slug", "name", "description", "is_active", "runner", "upstream_url", "timeout_seconds",
        "upstream_header_names", "created_at", "modified_at",
    }
    assert (body["runner"], body["upstream_url"], body["timeout_seconds"], body["upstream_header_names"]) == ("echo", "", 30, [])
    assert (body["slug"], body["name"], body["is_active"]) == ("search", "Search", True)
    assert Deployment.objects.get(organization=org_a, slug="search").name == "Search"
    assert admin_client.get(f"{DEPLOYMENTS}search/").json() == body


@pytest.mark.parametrize("slug", ["", "has space", "x" * 101, 5, None, "ümlaut/x"])
def test_a_bad_slug_is_rejected(admin_client, org_a, slug):
    response = admin_client.post(DEPLOYMENTS, {"slug": slug, "name": "x"}, format="json")
    assert response.status_code == 400
    assert list(response.json()) == ["slug"]


def test_slugs_are_unique_per_organization(admin_client, other_admin_client, deployment_a1):
    response = admin_client.post(DEPLOYMENTS, {"slug": "a-one", "name": "again"}, format="json")
    assert response.status_code == 400
    assert list(response.json()) == ["slug"]
    other = other_admin_client.post("/api/v1/orgs/org-b/deployments/", {"slug": "a-one", "name": "x"}, format="json")
    assert other.status_code == 201


@pytest.mark.django_db(transaction=True)
def test_a_slug_race_that_reaches_the_database_is_a_400(admin_client, deployment_a1):
    from unittest import mock

    with mock.patch("deployments.services._slug_taken", return_value=False):
        response = admin_client.post(DEPLOYMENTS, {"slug": "a-one", "name": "again"}, format="json")
    assert response.status_code == 400
    assert list(response.json()) == ["slug"]


@pytest.mark.parametrize("name", ["", "  ", "x" * 201, None, 3])
def test_a_bad_deployment_name_is_rejected(admin_client, org_a, name):
    response = admin_client.post(DEPLOYMENTS, {"slug": "ok", "name": name}, format="json")
    assert response.status_code == 400
    assert list(response.json()) == ["name"]


def test_patch_changes_name_description_and_is_active(admin_client, deployment_a1):
    response = admin_client.patch(
        f"{DEPLOYMENTS}a-one/", {"name": "Renamed", "description": "d", "is_active": False}, format="json"
    )
    assert response.status_code == 200
    deployment_a1.refresh_from_db()
    assert (deployment_a1.name, deployment_a1.description, deployment_a1.is_active) == ("Renamed", "d", False)


@pytest.mark.parametrize("body", [{"slug": "moved"}, {"slug": "a-one"}, {"upstream_header_names": ["X"]}, {"created_at": "x"}])
def test_the_slug_is_fixed_and_other_fields_are_not_writable(admin_client, deployment_a1, body):
    response = admin_client.patch(f"{DEPLOYMENTS}a-one/", body, format="json")
    assert response.status_code == 400
    assert list(response.json()) == list(body)
    assert Deployment.objects.filter(slug="a-one").exists()


def test_an_inactive_deployment_refuses_clients(admin_client, deployment_key_a1):
    admin_client.patch(f"{DEPLOYMENTS}a-one/", {"is_active": False}, format="json")
    response = APIClient().post("/api/v1/deployments/org-a/a-one/execute/", {}, format="json", **bearer(deployment_key_a1[1]))
    assert response.json()["code"] == "deployment_inactive"


def test_deleting_a_deployment_deletes_its_keys_with_audit_and_its_executions(
    admin_client, deployment_a1, deployment_a2, deployment_key_a1, global_selected_key_a, global_all_key_a
):
    key, full_key = deployment_key_a1
    ExecutionFactory(deployment=deployment_a1)
    kept = ExecutionFactory(deployment=deployment_a2)
    response = admin_client.delete(f"{DEPLOYMENTS}a-one/")
    assert response.status_code == 204
    assert not Deployment.objects.filter(pk=deployment_a1.pk).exists()
    assert not DeploymentKey.objects.filter(pk=key.pk).exists()
    deleted = AuditEvent.objects.get(key_id=key.pk, action="deleted")
    assert (deleted.actor_username, deleted.key_name) == ("admin-a", "a-one key")
    assert list(Execution.objects.values_list("pk", flat=True)) == [kept.pk]
    # It disappears from global keys' scopes, as an audited change; allow-all keys are untouched.
    selected = global_selected_key_a[0]
    assert list(selected.deployments.values_list("slug", flat=True)) == ["a-two"]
    change = AuditEvent.objects.get(key_id=selected.pk, action="changed")
    assert change.changes == {"deployments": [["a-one", "a-two"], ["a-two"]]}
    assert not AuditEvent.objects.filter(key_id=global_all_key_a[0].pk, action="changed").exists()
    assert GlobalApiDeploymentKey.objects.filter(pk=global_all_key_a[0].pk).exists()
    # The audit trail outlives the deployment and is still listed.
    listed = admin_client.get(f"{ORG_A}/audit-events/", {"key_id": str(key.pk)}).json()["results"]
    assert [event["action"] for event in listed][0] == "deleted"
    assert admin_client.get(f"{DEPLOYMENTS}a-one/").status_code == 404


def test_deleting_the_last_deployment_of_a_global_key_leaves_it_opening_nothing(admin_client, org_a, deployment_a1):
    from keys.tests.factories import issue_global_key

    key, full_key = issue_global_key(org_a, name="only a-one", deployments=[deployment_a1])
    assert admin_client.delete(f"{DEPLOYMENTS}a-one/").status_code == 204
    body = admin_client.get(f"{ORG_A}/global-keys/{key.pk}/").json()
    assert (body["allow_all_deployments"], body["deployments"]) == (False, [])


def test_deployments_list_newest_first(admin_client, deployment_a1, deployment_a2, deployment_a3):
    slugs = [row["slug"] for row in admin_client.get(DEPLOYMENTS).json()["results"]]
    assert slugs == ["a-three", "a-two", "a-one"]
