"""GET /api/v1/key/: what the calling key is."""

from datetime import timedelta

import pytest
from django.utils import timezone
from django.utils.dateparse import parse_datetime

from keys.services import key_update
from keys.tests.helpers import assert_error, bearer

FIELDS = {
    "id", "name", "kind", "organization", "key_masked", "allow_all_deployments", "deployments", "groups", "scopes",
    "allowed_ips", "format", "expires_at",
}  # fmt: skip


@pytest.mark.parametrize("path", ["/api/v1/key/", "/api/v1/key"])
def test_a_deployment_key_describes_itself(client, deployment_key_a1, path):
    row, full_key = deployment_key_a1
    response = client.get(path, **bearer(full_key))

    assert response.status_code == 200
    assert response.json() == {
        "id": str(row.pk),
        "name": "a-one key",
        "kind": "deployment",
        "organization": "org-a",
        "key_masked": f"ksd_\u2026{full_key[-4:]}",
        "allow_all_deployments": False,
        "deployments": ["a-one"],
        "groups": [],
        "scopes": ["deployments:execute", "executions:read"],
        "allowed_ips": [],
        "format": "keyscope",
        "expires_at": None,
    }


def test_an_allow_all_key_lists_no_deployments(client, global_all_key_a, deployment_a1):
    row, full_key = global_all_key_a
    body = client.get("/api/v1/key/", **bearer(full_key)).json()

    assert set(body) == FIELDS
    assert body["kind"] == "global"
    assert body["id"] == str(row.pk)
    assert body["key_masked"] == f"ksg_\u2026{full_key[-4:]}"
    assert body["allow_all_deployments"] is True
    assert body["deployments"] == []
    assert body["groups"] == []


def test_a_selected_key_lists_its_deployments_sorted(client, global_selected_key_a):
    _, full_key = global_selected_key_a
    body = client.get("/api/v1/key/", **bearer(full_key)).json()

    assert body["allow_all_deployments"] is False
    assert body["deployments"] == ["a-one", "a-two"]
    assert body["groups"] == []
    assert body["organization"] == "org-a"


def test_expires_at_is_iso_8601(client, deployment_key_a1):
    row, full_key = deployment_key_a1
    expires_at = (timezone.now() + timedelta(days=3)).replace(microsecond=0)
    key_update(key=row, actor=None, expires_at=expires_at)

    body = client.get("/api/v1/key/", **bearer(full_key)).json()
    assert parse_datetime(body["expires_at"]) == expires_at


def test_introspection_never_returns_the_key(client, deployment_key_a1):
    _, full_key = deployment_key_a1
    response = client.get("/api/v1/key/", **bearer(full_key))
    assert full_key not in response.content.decode()
    assert full_key[4:36] not in response.content.decode()


def test_introspection_needs_a_valid_key(client, deployment_key_a1):
    _, full_key = deployment_key_a1
    assert_error(client.get("/api/v1/key/"), 401, "not_authenticated")
    assert_error(client.get("/api/v1/key/", **bearer(full_key[:-1])), 401, "invalid_key")


def test_warm_introspection_makes_no_query(client, global_selected_key_a, django_assert_num_queries):
    _, full_key = global_selected_key_a
    first = client.get("/api/v1/key/", **bearer(full_key))
    assert first.json()["deployments"] == ["a-one", "a-two"]
    with django_assert_num_queries(0):
        second = client.get("/api/v1/key/", **bearer(full_key))
    assert second.json()["deployments"] == ["a-one", "a-two"]


def test_introspection_follows_a_scope_change_at_once(client, global_selected_key_a, deployment_a3):
    from keys.services import key_update

    key, full_key = global_selected_key_a
    client.get("/api/v1/key/", **bearer(full_key))
    key_update(key=key, actor=None, deployments=[deployment_a3])
    assert client.get("/api/v1/key/", **bearer(full_key)).json()["deployments"] == ["a-three"]
