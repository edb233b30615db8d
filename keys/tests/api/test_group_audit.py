"""Deployment groups in the audit trail (CONTRACT §7): created, changed and deleted, with their deployment lists."""

import pytest

from deployments.services import group_create, group_update
from keys.models import AuditEvent
from keys.tests.helpers import ORG_A

AUDIT_EVENTS = f"{ORG_A}/audit-events/"
GROUPS = f"{ORG_A}/groups/"


def group_events(admin_client, slug: str) -> list[dict]:
    response = admin_client.get(AUDIT_EVENTS, {"group": slug})
    assert response.status_code == 200
    return response.json()["results"]


def test_every_write_to_a_group_is_an_event_with_the_group_and_no_key(admin_client, deployment_a1, deployment_a2):
    admin_client.post(GROUPS, {"slug": "production", "name": "Production", "deployments": ["a-one"]}, format="json")
    admin_client.patch(f"{GROUPS}production/", {"name": "Prod", "deployments": ["a-two", "a-one"]}, format="json")
    admin_client.patch(f"{GROUPS}production/", {"description": ""}, format="json")  # changes nothing
    admin_client.delete(f"{GROUPS}production/")

    rows = group_events(admin_client, "production")

    assert [row["action"] for row in rows] == ["deleted", "changed", "created"]
    for row in rows:
        assert (row["group"], row["key_kind"], row["key_id"], row["key_name"]) == ("production", None, None, None)
        assert (row["organization"], row["actor"], row["ip_address"]) == ("org-a", "admin-a", "127.0.0.1")
    deleted, changed, created = (row["changes"] for row in rows)
    assert created == {"name": [None, "Production"], "description": [None, ""], "deployments": [None, ["a-one"]]}
    assert changed == {"name": ["Production", "Prod"], "deployments": [["a-one"], ["a-one", "a-two"]]}
    assert deleted == {"name": ["Prod", None], "deployments": [["a-one", "a-two"], None]}


def test_key_events_have_no_group(admin_client, grouped_key_a, global_all_key_a):
    rows = admin_client.get(AUDIT_EVENTS, {"action": "created"}).json()["results"]

    key_rows = [row for row in rows if row["key_id"] is not None]
    assert {row["key_name"] for row in key_rows} == {"production key", "all of A"}
    assert all(row["group"] is None for row in key_rows)
    grouped = next(row for row in key_rows if row["key_name"] == "production key")
    assert (grouped["changes"]["groups"], grouped["changes"]["deployments"]) == ([None, ["production"]], [None, []])


def test_the_group_filter_finds_one_groups_events_in_this_organization_only(admin_client, group_a, group_b, grouped_key_a):
    rows = group_events(admin_client, "production")

    assert [(row["organization"], row["action"]) for row in rows] == [("org-a", "created")]
    assert group_events(admin_client, "no-such-group") == []


def test_a_bad_group_filter_is_a_400_naming_it(admin_client, org_a):
    response = admin_client.get(AUDIT_EVENTS, {"group": "x" * 101})
    assert response.status_code == 400
    assert list(response.json()) == ["group"]


def test_a_groups_events_outlive_it(admin_client, group_a):
    admin_client.delete(f"{GROUPS}production/")

    assert [row["action"] for row in group_events(admin_client, "production")] == ["deleted", "created"]


def test_the_system_is_the_actor_of_a_write_without_a_user(org_a, deployment_a1):
    group = group_create(organization=org_a, slug="nightly", name="Nightly", actor=None)
    group_update(group=group, actor=None, deployments=[deployment_a1])

    events = AuditEvent.objects.filter(group="nightly").order_by("created_at")
    assert [(event.action, event.actor_id, event.actor_username) for event in events] == [
        ("created", None, ""), ("changed", None, "")
    ]
    assert str(events.last()) == "group nightly changed by system"


def test_a_failed_group_write_leaves_no_event(admin_client, deployment_b1):
    response = admin_client.post(GROUPS, {"slug": "bad", "name": "Bad", "deployments": ["b-one"]}, format="json")

    assert response.status_code == 400
    assert not AuditEvent.objects.filter(group="bad").exists()


@pytest.mark.parametrize("method", ["patch", "put", "delete"])
def test_group_events_cannot_be_written_through_the_api(admin_client, group_a, method):
    event = AuditEvent.objects.get(group="production")
    response = getattr(admin_client, method)(f"{AUDIT_EVENTS}{event.pk}/", {"group": "x"}, format="json")

    assert response.status_code in (404, 405)
    assert AuditEvent.objects.get(pk=event.pk).group == "production"
