"""Keys through the management API: shapes, show-once, rotation, revocation, deletion, filters."""

import json
import re
import uuid
from datetime import timedelta
from unittest import mock

import pytest
from django.utils import timezone
from rest_framework.test import APIClient

from keys import services
from keys.models import AuditEvent, DeploymentKey, GlobalApiDeploymentKey
from keys.tests.factories import issue_deployment_key, issue_global_key
from keys.tests.helpers import ORG_A, bearer

DEPLOYMENT_KEYS = f"{ORG_A}/deployments/a-one/keys/"
GLOBAL_KEYS = f"{ORG_A}/global-keys/"
EXECUTE = "/api/v1/deployments/org-a/a-one/execute/"
ISO_UTC = re.compile(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(\.\d+)?Z$")
KEY_FIELDS = {
    "id", "name", "description", "key_masked", "status", "is_active", "expires_at", "revoked_at",
    "last_used_at", "created_at", "modified_at", "created_by", "rate_limit_per_minute", "scopes", "allowed_ips",
    "previous_key_expires_at", "format",
}


def execute(_client, full_key):
    return APIClient().post(EXECUTE, {}, format="json", **bearer(full_key))


# Shapes --------------------------------------------------------------------------


def test_a_deployment_key_is_created_with_the_contract_fields(admin_client, deployment_a1):
    response = admin_client.post(DEPLOYMENT_KEYS, {"name": "CI", "description": "for CI"}, format="json")
    assert response.status_code == 201
    body = response.json()
    assert set(body) == KEY_FIELDS | {"deployment", "key"}
    uuid.UUID(body["id"])
    assert body["key"].startswith("ksd_") and len(body["key"]) == 42
    assert body["key_masked"] == "ksd_\u2026" + body["key"][-4:]
    assert (body["status"], body["is_active"], body["deployment"], body["created_by"]) == ("active", True, "a-one", "admin-a")
    assert ISO_UTC.match(body["created_at"]) and ISO_UTC.match(body["modified_at"])
    assert body["revoked_at"] is body["expires_at"] is body["last_used_at"] is body["rate_limit_per_minute"] is None
    key = DeploymentKey.objects.get(pk=body["id"])
    assert key.created_by.username == "admin-a"
    event = AuditEvent.objects.get(key_id=key.pk)
    assert (event.action, event.actor_username, event.ip_address) == ("created", "admin-a", "127.0.0.1")


def test_the_new_key_works_on_the_client_api(admin_client, client, deployment_a1):
    full_key = admin_client.post(DEPLOYMENT_KEYS, {"name": "CI"}, format="json").json()["key"]
    assert execute(client, full_key).status_code == 200


def test_a_global_key_is_created_with_the_contract_fields(admin_client, deployment_a1, deployment_a2):
    response = admin_client.post(GLOBAL_KEYS, {"name": "two", "deployments": ["a-two", "a-one"]}, format="json")
    assert response.status_code == 201
    body = response.json()
    assert set(body) == KEY_FIELDS | {"allow_all_deployments", "deployments", "groups", "key"}
    assert body["key"].startswith("ksg_")
    assert (body["allow_all_deployments"], body["deployments"], body["groups"]) == (False, ["a-one", "a-two"], [])


def test_a_key_made_by_the_system_has_created_by_null(admin_client, deployment_key_a1):
    body = admin_client.get(f"{DEPLOYMENT_KEYS}{deployment_key_a1[0].pk}/").json()
    assert body["created_by"] is None
    assert "key" not in body


@pytest.mark.parametrize(
    ("change", "status"),
    [
        ({}, "active"),
        ({"is_active": False}, "inactive"),
        ({"expires_at": "past"}, "expired"),
        ({"revoked_at": "now"}, "revoked"),
    ],
)
def test_status_reads_revoked_then_expired_then_inactive(admin_client, deployment_key_a1, change, status):
    key, _ = deployment_key_a1
    now = timezone.now()
    values = {
        field: (now - timedelta(hours=1) if value == "past" else now if value == "now" else value)
        for field, value in change.items()
    }
    DeploymentKey.objects.filter(pk=key.pk).update(**values)
    assert admin_client.get(f"{DEPLOYMENT_KEYS}{key.pk}/").json()["status"] == status
    listed = admin_client.get(DEPLOYMENT_KEYS, {"status": status}).json()["results"]
    assert [row["id"] for row in listed] == [str(key.pk)]


# Show once -------------------------------------------------------------------


def test_no_read_ever_shows_a_full_key(
    admin_client, member_client, deployment_a1, deployment_key_a1, global_all_key_a, global_selected_key_a
):
    created = admin_client.post(DEPLOYMENT_KEYS, {"name": "fresh"}, format="json").json()
    rotated = admin_client.post(f"{GLOBAL_KEYS}{global_all_key_a[0].pk}/rotate/", {}, format="json").json()
    secrets = [deployment_key_a1[1], global_all_key_a[1], global_selected_key_a[1], created["key"], rotated["key"]]
    admin_client.patch(f"{DEPLOYMENT_KEYS}{created['id']}/", {"name": "fresher"}, format="json")
    admin_client.post(f"{DEPLOYMENT_KEYS}{created['id']}/revoke/")
    urls = [
        DEPLOYMENT_KEYS,
        f"{DEPLOYMENT_KEYS}{created['id']}/",
        f"{DEPLOYMENT_KEYS}{deployment_key_a1[0].pk}/",
        GLOBAL_KEYS,
        f"{GLOBAL_KEYS}{global_all_key_a[0].pk}/",
        f"{ORG_A}/audit-events/",
        f"{ORG_A}/executions/",
        f"{ORG_A}/deployments/",
    ]
    for client in (admin_client, member_client):
        for url in urls:
            response = client.get(url)
            assert response.status_code == 200
            text = response.content.decode()
            assert not any(secret in text for secret in secrets), url
            assert '"key"' not in text, url
            assert not re.search(r"ks[dg]_[0-9A-Za-z]{38}", text), url
    # Nor do the responses that change a key without issuing one.
    for response in (
        admin_client.patch(f"{GLOBAL_KEYS}{global_all_key_a[0].pk}/", {"description": "x"}, format="json"),
        admin_client.post(f"{GLOBAL_KEYS}{global_all_key_a[0].pk}/revoke/"),
    ):
        assert "key" not in response.json()
        assert not any(secret in response.content.decode() for secret in secrets)
    stored = json.dumps(list(AuditEvent.objects.values("changes", "key_name")), default=str)
    assert not any(secret in stored for secret in secrets)


@pytest.mark.parametrize("collection", [DEPLOYMENT_KEYS, GLOBAL_KEYS])
def test_every_response_that_carries_a_full_key_is_no_store(admin_client, deployment_a1, collection):
    body = {"name": "CI", "allow_all_deployments": True} if collection == GLOBAL_KEYS else {"name": "CI"}
    created = admin_client.post(collection, body, format="json")
    rotated = admin_client.post(f"{collection}{created.json()['id']}/rotate/", {}, format="json")
    for response in (created, rotated):
        assert "key" in response.json()
        assert response["Cache-Control"] == "no-store"
    # What holds no key may be cached as usual.
    assert "Cache-Control" not in admin_client.get(f"{collection}{created.json()['id']}/")


# Rotation ----------------------------------------------------------------------


@pytest.mark.parametrize("body", [None, {}, {"grace_period_seconds": 0}])
def test_rotate_without_grace_replaces_the_key_at_once(admin_client, client, deployment_key_a1, body):
    key, old_key = deployment_key_a1
    url = f"{DEPLOYMENT_KEYS}{key.pk}/rotate/"
    response = admin_client.post(url, body, format="json") if body is not None else admin_client.post(url)
    assert response.status_code == 200
    new = response.json()
    assert new["id"] == str(key.pk) and new["name"] == "a-one key"
    assert new["key"] != old_key and new["key_masked"].endswith(new["key"][-4:])
    assert execute(client, new["key"]).status_code == 200
    old = execute(client, old_key)
    assert (old.status_code, old.json()["code"]) == (401, "key_revoked")
    event = AuditEvent.objects.get(key_id=key.pk, action="rotated")
    assert event.changes["grace_period_seconds"] == [None, 0]


def test_rotate_with_grace_keeps_the_old_key_working_until_then(admin_client, client, global_selected_key_a):
    key, old_key = global_selected_key_a
    response = admin_client.post(f"{GLOBAL_KEYS}{key.pk}/rotate/", {"grace_period_seconds": 60}, format="json")
    assert response.status_code == 200
    new_key = response.json()["key"]
    # Rotation keeps the scope.
    assert response.json()["deployments"] == ["a-one", "a-two"]
    assert execute(client, old_key).status_code == 200
    assert execute(client, new_key).status_code == 200
    later = timezone.now() + timedelta(seconds=61)
    with mock.patch("django.utils.timezone.now", return_value=later):
        old = execute(client, old_key)
        assert (old.status_code, old.json()["code"]) == (401, "key_revoked")
        assert execute(client, new_key).status_code == 200


def test_a_second_rotation_ends_the_first_ones_grace(admin_client, client, deployment_key_a1):
    key, first = deployment_key_a1
    url = f"{DEPLOYMENT_KEYS}{key.pk}/rotate/"
    second = admin_client.post(url, {"grace_period_seconds": 3600}, format="json").json()["key"]
    third = admin_client.post(url, {"grace_period_seconds": 0}, format="json").json()["key"]
    assert execute(client, first).status_code == 401
    assert execute(client, second).status_code == 401
    assert execute(client, third).status_code == 200


# Revocation ---------------------------------------------------------------------


def test_revoke_answers_200_with_the_key_and_again_changes_nothing(admin_client, client, global_all_key_a):
    key, full_key = global_all_key_a
    url = f"{GLOBAL_KEYS}{key.pk}/revoke/"
    first = admin_client.post(url)
    assert first.status_code == 200
    assert first.json()["status"] == "revoked" and first.json()["revoked_at"]
    assert first.json()["is_active"] is True  # revoking does not change is_active
    again = admin_client.post(url, {}, format="json")
    assert again.status_code == 200
    assert again.json()["revoked_at"] == first.json()["revoked_at"]
    assert AuditEvent.objects.filter(key_id=key.pk, action="revoked").count() == 1
    response = execute(client, full_key)
    assert (response.status_code, response.json()["code"]) == (401, "key_revoked")


@pytest.mark.parametrize(
    ("method", "suffix", "body"),
    [("post", "rotate/", {}), ("patch", "", {"is_active": True})],
)
def test_a_revoked_key_cannot_be_rotated_or_activated(admin_client, deployment_key_a1, method, suffix, body):
    key, _ = deployment_key_a1
    admin_client.post(f"{DEPLOYMENT_KEYS}{key.pk}/revoke/")
    digest = DeploymentKey.objects.get(pk=key.pk).digest
    response = getattr(admin_client, method)(f"{DEPLOYMENT_KEYS}{key.pk}/{suffix}", body, format="json")
    assert response.status_code == 409
    assert response.json()["code"] == "key_revoked"
    assert set(response.json()) == {"detail", "code"}
    assert DeploymentKey.objects.get(pk=key.pk).digest == digest


def test_a_revoked_key_may_still_be_renamed(admin_client, deployment_key_a1):
    key, _ = deployment_key_a1
    admin_client.post(f"{DEPLOYMENT_KEYS}{key.pk}/revoke/")
    response = admin_client.patch(f"{DEPLOYMENT_KEYS}{key.pk}/", {"name": "leaked 2024"}, format="json")
    assert response.status_code == 200
    assert response.json()["status"] == "revoked"


# Activation and changes -----------------------------------------------------


def test_deactivating_and_activating_are_their_own_audit_events(admin_client, client, deployment_key_a1):
    key, full_key = deployment_key_a1
    url = f"{DEPLOYMENT_KEYS}{key.pk}/"
    response = admin_client.patch(url, {"is_active": False, "description": "paused"}, format="json")
    assert response.json()["status"] == "inactive"
    assert execute(client, full_key).json()["code"] == "key_inactive"
    admin_client.patch(url, {"is_active": True}, format="json")
    assert execute(client, full_key).status_code == 200
    actions = list(AuditEvent.objects.filter(key_id=key.pk).order_by("created_at").values_list("action", flat=True))
    assert actions == ["created", "deactivated", "changed", "activated"]
    changed = AuditEvent.objects.get(key_id=key.pk, action="changed")
    assert changed.changes == {"description": ["", "paused"]}
    assert changed.actor_username == "admin-a"


def test_deleting_a_key_goes_through_the_service_and_is_audited(admin_client, client, deployment_key_a1):
    key, full_key = deployment_key_a1
    with mock.patch("keys.api.key_delete", wraps=services.key_delete) as spy:
        assert admin_client.delete(f"{DEPLOYMENT_KEYS}{key.pk}/").status_code == 204
    spy.assert_called_once()
    assert not DeploymentKey.objects.filter(pk=key.pk).exists()
    assert AuditEvent.objects.filter(key_id=key.pk, action="deleted", actor_username="admin-a").exists()
    assert admin_client.get(f"{DEPLOYMENT_KEYS}{key.pk}/").status_code == 404
    assert execute(client, full_key).json()["code"] == "invalid_key"


# List filters ----------------------------------------------------------------


def test_key_list_filters(admin_client, org_a, deployment_a1):
    alpha, _ = issue_global_key(org_a, name="Alpha ops", allow_all_deployments=True)
    beta, _ = issue_global_key(org_a, name="beta", allow_all_deployments=True, is_active=False)
    gamma, _ = issue_global_key(org_a, name="gamma OPS", deployments=[deployment_a1])
    GlobalApiDeploymentKey.objects.filter(pk=gamma.pk).update(revoked_at=timezone.now())

    def ids(**params):
        return {row["id"] for row in admin_client.get(GLOBAL_KEYS, params).json()["results"]}

    assert ids() == {str(alpha.pk), str(beta.pk), str(gamma.pk)}
    assert ids(is_active="false") == {str(beta.pk)}
    assert ids(is_active="true") == {str(alpha.pk), str(gamma.pk)}
    assert ids(status="revoked") == {str(gamma.pk)}
    assert ids(status="active") == {str(alpha.pk)}
    assert ids(status="inactive") == {str(beta.pk)}
    assert ids(search="ops") == {str(alpha.pk), str(gamma.pk)}
    assert ids(search="OPS", status="active") == {str(alpha.pk)}


@pytest.mark.parametrize(("param", "value"), [("is_active", "maybe"), ("status", "sleeping")])
def test_a_bad_key_filter_is_a_400_naming_it(admin_client, org_a, param, value):
    response = admin_client.get(GLOBAL_KEYS, {param: value})
    assert response.status_code == 400
    assert list(response.json()) == [param]


def test_deployment_key_list_shows_only_that_deployments_keys(admin_client, deployment_a1, deployment_a2):
    mine, _ = issue_deployment_key(deployment_a1, name="mine")
    issue_deployment_key(deployment_a2, name="theirs")
    rows = admin_client.get(DEPLOYMENT_KEYS).json()["results"]
    assert [row["id"] for row in rows] == [str(mine.pk)]
