"""Executions and audit events lists, their filters, and pagination."""

import uuid
from datetime import timedelta

import pytest
from django.utils import timezone

from deployments.models import Execution
from deployments.tests.factories import ExecutionFactory
from keys.models import AuditEvent
from keys.tests.factories import issue_global_key
from keys.tests.helpers import ORG_A

EXECUTIONS = f"{ORG_A}/executions/"
AUDIT_EVENTS = f"{ORG_A}/audit-events/"


def ids(response):
    assert response.status_code == 200, response.content
    return [row["id"] for row in response.json()["results"]]


# Executions ---------------------------------------------------------------------


@pytest.fixture
def executions(deployment_a1, deployment_a2, deployment_b1, deployment_key_a1):
    key_id = deployment_key_a1[0].pk
    old = ExecutionFactory(deployment=deployment_a1, key_kind="deployment", key_id=key_id, key_name="a-one key")
    Execution.objects.filter(pk=old.pk).update(created_at=timezone.now() - timedelta(days=2))
    failed = ExecutionFactory(
        deployment=deployment_a2, status="FAILED", http_status=504, error_code="upstream_timeout", key_kind="global"
    )
    recent = ExecutionFactory(deployment=deployment_a1, key_kind="deployment", key_id=key_id, elapsed_ms=7)
    foreign = ExecutionFactory(deployment=deployment_b1)
    return {"old": old, "failed": failed, "recent": recent, "foreign": foreign, "key_id": key_id}


def test_executions_list_only_the_organizations_newest_first(admin_client, executions):
    assert ids(admin_client.get(EXECUTIONS)) == [str(executions[name].pk) for name in ("recent", "failed", "old")]


def test_an_execution_has_its_fields(admin_client, executions):
    row = admin_client.get(EXECUTIONS).json()["results"][0]
    assert {"id", "deployment", "status", "http_status", "elapsed_ms", "key_kind", "key_id", "key_name",
            "created_at", "result", "request"} <= set(row)
    assert (row["deployment"], row["status"], row["elapsed_ms"], row["key_id"]) == (
        "a-one", "COMPLETED", 7, str(executions["key_id"])
    )
    assert row["created_at"].endswith("Z")


def test_executions_filters(admin_client, executions):
    e = {name: str(value.pk) for name, value in executions.items() if name != "key_id"}
    assert ids(admin_client.get(EXECUTIONS, {"deployment": "a-one"})) == [e["recent"], e["old"]]
    assert ids(admin_client.get(EXECUTIONS, {"deployment": "b-one"})) == []
    assert ids(admin_client.get(EXECUTIONS, {"key_id": str(executions["key_id"])})) == [e["recent"], e["old"]]
    assert ids(admin_client.get(EXECUTIONS, {"status": "FAILED"})) == [e["failed"]]
    assert ids(admin_client.get(EXECUTIONS, {"status": "completed"})) == [e["recent"], e["old"]]
    since = (timezone.now() - timedelta(days=1)).isoformat()
    assert ids(admin_client.get(EXECUTIONS, {"since": since})) == [e["recent"], e["failed"]]
    assert ids(admin_client.get(EXECUTIONS, {"since": since, "deployment": "a-one"})) == [e["recent"]]


@pytest.mark.parametrize(("param", "value"), [("key_id", "nope"), ("status", "RUNNING"), ("since", "yesterday")])
def test_a_bad_execution_filter_is_a_400_naming_it(admin_client, org_a, param, value):
    response = admin_client.get(EXECUTIONS, {param: value})
    assert response.status_code == 400
    assert list(response.json()) == [param]


def test_member_reads_executions(member_client, executions):
    assert len(ids(member_client.get(EXECUTIONS))) == 3


# Audit events ----------------------------------------------------------------------


def test_every_kind_of_write_shows_up_in_the_audit_events(admin_client, deployment_a1):
    keys_url = f"{ORG_A}/deployments/a-one/keys/"
    key = admin_client.post(keys_url, {"name": "k"}, format="json").json()
    url = f"{keys_url}{key['id']}/"
    admin_client.patch(url, {"name": "k2"}, format="json")
    admin_client.patch(url, {"is_active": False}, format="json")
    admin_client.patch(url, {"is_active": True}, format="json")
    admin_client.post(f"{url}rotate/", {"grace_period_seconds": 10}, format="json")
    admin_client.post(f"{url}revoke/")
    admin_client.delete(url)
    rows = admin_client.get(AUDIT_EVENTS, {"key_id": key["id"]}).json()["results"]
    assert [row["action"] for row in rows] == [
        "deleted", "revoked", "rotated", "activated", "deactivated", "changed", "created"
    ]
    row = rows[-1]
    assert set(row) == {"id", "organization", "key_kind", "key_id", "key_name", "group", "action", "actor",
                        "created_at", "ip_address", "changes"}
    assert (row["organization"], row["key_kind"], row["actor"], row["ip_address"]) == (
        "org-a", "deployment", "admin-a", "127.0.0.1"
    )
    uuid.UUID(row["id"])
    assert rows[-2]["changes"] == {"name": ["k", "k2"]}


def test_audit_event_filters(admin_client, org_a, deployment_a1, global_all_key_b):
    first, _ = issue_global_key(org_a, name="first", allow_all_deployments=True)
    between = timezone.now()  # audit events cannot be edited, so the filter's edge is taken between two writes
    second, _ = issue_global_key(org_a, name="second", allow_all_deployments=True)
    admin_client.post(f"{ORG_A}/global-keys/{first.pk}/revoke/")

    def actions(**params):
        return [(row["key_name"], row["action"]) for row in admin_client.get(AUDIT_EVENTS, params).json()["results"]]

    assert actions() == [("first", "revoked"), ("second", "created"), ("first", "created")]  # org B's are not here
    assert actions(key_id=str(first.pk)) == [("first", "revoked"), ("first", "created")]
    assert actions(action="created") == [("second", "created"), ("first", "created")]
    assert actions(since=between.isoformat()) == [("first", "revoked"), ("second", "created")]
    system = admin_client.get(AUDIT_EVENTS, {"action": "created"}).json()["results"][0]
    assert system["actor"] is None


@pytest.mark.parametrize(("param", "value"), [("key_id", "123"), ("action", "exploded"), ("since", "2020-13-45")])
def test_a_bad_audit_filter_is_a_400_naming_it(admin_client, org_a, param, value):
    response = admin_client.get(AUDIT_EVENTS, {param: value})
    assert response.status_code == 400
    assert list(response.json()) == [param]


@pytest.mark.parametrize("method", ["post", "put", "patch", "delete"])
def test_audit_events_cannot_be_written_through_the_api(admin_client, global_all_key_a, method):
    event = AuditEvent.objects.first()
    assert getattr(admin_client, method)(AUDIT_EVENTS, {}, format="json").status_code == 405
    assert getattr(admin_client, method)(f"{AUDIT_EVENTS}{event.pk}/", {}, format="json").status_code == 404
    assert AuditEvent.objects.filter(pk=event.pk).exists()


# Pagination ------------------------------------------------------------------------


@pytest.fixture
def many_executions(deployment_a1):
    return ExecutionFactory.create_batch(230, deployment=deployment_a1)


def test_lists_have_50_a_page_by_default(admin_client, many_executions):
    body = admin_client.get(EXECUTIONS).json()
    assert set(body) == {"count", "next", "previous", "results"}
    assert (body["count"], len(body["results"]), body["previous"]) == (230, 50, None)
    assert "page=2" in body["next"]
    assert body["next"].startswith("http://testserver/api/v1/orgs/org-a/executions")


def test_page_size_is_clamped_to_200(admin_client, many_executions):
    body = admin_client.get(EXECUTIONS, {"page_size": 1000}).json()
    assert len(body["results"]) == 200
    assert len(admin_client.get(EXECUTIONS, {"page_size": 1000, "page": 2}).json()["results"]) == 30
    assert len(admin_client.get(EXECUTIONS, {"page_size": 7}).json()["results"]) == 7


@pytest.mark.parametrize("page_size", ["0", "-3", "abc"])
def test_a_meaningless_page_size_falls_back_to_the_default(admin_client, many_executions, page_size):
    assert len(admin_client.get(EXECUTIONS, {"page_size": page_size}).json()["results"]) == 50


@pytest.mark.parametrize("page", ["6", "0", "-1", "abc", "999999999999"])
def test_a_page_out_of_range_is_404_in_the_error_shape(admin_client, many_executions, page):
    response = admin_client.get(EXECUTIONS, {"page": page})
    assert response.status_code == 404
    assert set(response.json()) == {"detail", "code"}
    assert response.json()["code"] == "not_found"


def test_pages_walk_newest_first_without_overlap(admin_client, many_executions):
    seen = []
    url = f"{EXECUTIONS}?page_size=100"
    while url:
        body = admin_client.get(url).json()
        seen += body["results"]
        url = body["next"]
    assert len({row["id"] for row in seen}) == 230
    times = [row["created_at"] for row in seen]
    assert times == sorted(times, reverse=True)


def test_key_lists_are_paginated_too(admin_client, org_a):
    for number in range(55):
        issue_global_key(org_a, name=f"key {number:02d}", allow_all_deployments=True)
    body = admin_client.get(f"{ORG_A}/global-keys/").json()
    assert (body["count"], len(body["results"])) == (55, 50)
    assert body["results"][0]["name"] == "key 54"
    assert len(admin_client.get(f"{ORG_A}/global-keys/", {"page": 2}).json()["results"]) == 5
