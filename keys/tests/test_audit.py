"""The audit trail: one event per write, the contract's fields, never a secret, append-only."""

import json
from datetime import UTC, timedelta
from datetime import timezone as dt_timezone

import pytest
from django.core.exceptions import ValidationError
from django.db import transaction
from django.utils import timezone

from keys import crypto
from keys.models import AuditEvent, DeploymentKey, GlobalApiDeploymentKey
from keys.services import (
    global_key_issue,
    key_activate,
    key_deactivate,
    key_delete,
    key_revoke,
    key_rotate,
    key_update,
)
from keys.tests.factories import issue_global_key

ACTIONS = {"created", "changed", "rotated", "revoked", "activated", "deactivated", "deleted"}


def events(key) -> list[AuditEvent]:
    return list(AuditEvent.objects.filter(key_id=key.pk).order_by("created_at", "id"))


def assert_no_secret(event: AuditEvent, *full_keys: str) -> None:
    stored = json.dumps(event.changes) + (event.key_name or "")
    for full_key in full_keys:
        assert full_key not in stored
        assert full_key[4:36] not in stored
        assert crypto.digest(full_key) not in stored


def test_the_manager_issues_with_a_created_event_and_no_actor(deployment_key_a1):
    row, full_key = deployment_key_a1
    (event,) = events(row)

    assert event.action == "created"
    assert event.organization.slug == "org-a"
    assert (event.key_kind, event.key_id, event.key_name) == ("deployment", row.pk, "a-one key")
    assert event.actor is None and event.actor_username == ""
    assert event.ip_address is None
    assert event.created_at is not None
    assert event.changes["name"] == [None, "a-one key"]
    assert event.changes["deployments"] == [None, ["a-one"]]
    assert_no_secret(event, full_key)


def test_a_global_key_created_by_a_user_records_its_actor_address_and_scope(org_a, admin_a, deployment_a1, deployment_a2):

    row, full_key = global_key_issue(
        actor=admin_a,
        ip_address="198.51.100.4",
        organization=org_a,
        name="scoped",
        deployments=[deployment_a2, deployment_a1],
    )
    (event,) = events(row)

    assert event.key_kind == "global"
    assert event.actor == admin_a and event.actor_username == "admin-a"
    assert event.ip_address == "198.51.100.4"
    assert event.changes["allow_all_deployments"] == [None, False]
    assert event.changes["deployments"] == [None, ["a-one", "a-two"]]
    assert_no_secret(event, full_key)


def test_a_change_records_field_old_and_new(deployment_key_a1, admin_a):
    row, full_key = deployment_key_a1
    expires_at = timezone.now() + timedelta(days=1)

    key_update(key=row, actor=admin_a, name="renamed", description="why", expires_at=expires_at, ip_address="192.0.2.1")

    event = events(row)[-1]
    assert event.action == "changed"
    assert event.key_name == "renamed"
    assert event.actor_username == "admin-a"
    assert event.ip_address == "192.0.2.1"
    assert event.changes["name"] == ["a-one key", "renamed"]
    assert event.changes["description"] == ["", "why"]
    assert event.changes["expires_at"][0] is None
    assert event.changes["expires_at"][1].startswith(expires_at.date().isoformat())
    assert set(event.changes) == {"name", "description", "expires_at"}
    assert_no_secret(event, full_key)


def test_a_scope_change_is_recorded_as_slugs(global_selected_key_a, deployment_a3, admin_a):
    row, _ = global_selected_key_a
    key_update(key=row, actor=admin_a, deployments=[deployment_a3])
    assert events(row)[-1].changes == {"deployments": [["a-one", "a-two"], ["a-three"]]}


def test_an_update_that_changes_nothing_writes_nothing(deployment_key_a1):
    row, _ = deployment_key_a1
    key_update(key=row, actor=None, name="a-one key")
    assert [event.action for event in events(row)] == ["created"]


def test_is_active_is_its_own_event_beside_the_other_changes(deployment_key_a1, admin_a):
    row, _ = deployment_key_a1
    key_update(key=row, actor=admin_a, is_active=False, name="paused")

    actions = {event.action: event for event in events(row)}
    assert set(actions) == {"created", "deactivated", "changed"}
    assert actions["deactivated"].changes == {"is_active": [True, False]}
    assert actions["changed"].changes == {"name": ["a-one key", "paused"]}


def test_activate_and_deactivate_are_audited(deployment_key_a1, admin_a):
    row, _ = deployment_key_a1
    key_deactivate(key=row, actor=admin_a)
    key_activate(key=row, actor=admin_a)

    assert [event.action for event in events(row)] == ["created", "deactivated", "activated"]
    assert events(row)[-1].changes == {"is_active": [False, True]}


def test_a_rotation_is_audited_with_the_masked_keys_only(deployment_key_a1, admin_a):
    row, old_key = deployment_key_a1
    row, new_key = key_rotate(key=row, actor=admin_a, grace_period_seconds=60)

    event = events(row)[-1]
    assert event.action == "rotated"
    assert event.actor_username == "admin-a"
    assert event.changes["key_masked"] == [f"ksd_\u2026{old_key[-4:]}", f"ksd_\u2026{new_key[-4:]}"]
    assert event.changes["grace_period_seconds"] == [None, 60]
    assert_no_secret(event, old_key, new_key)


def test_a_revocation_is_audited(deployment_key_a1, admin_a):
    row, full_key = deployment_key_a1
    key_revoke(key=row, actor=admin_a)

    event = events(row)[-1]
    assert event.action == "revoked"
    assert event.changes["revoked_at"][0] is None
    assert_no_secret(event, full_key)


def test_a_deletion_is_audited_and_the_events_outlive_the_key_and_deployment(deployment_key_a1, deployment_a1, admin_a):
    row, _ = deployment_key_a1
    key_id = row.pk
    key_delete(key=row, actor=admin_a)
    deployment_a1.delete()

    assert not DeploymentKey.objects.filter(pk=key_id).exists()
    assert [event.action for event in AuditEvent.objects.filter(key_id=key_id).order_by("created_at")] == [
        "created",
        "deleted",
    ]


def test_every_action_name_is_the_contracts(deployment_key_a1, admin_a):
    row, _ = deployment_key_a1
    key_update(key=row, actor=admin_a, name="x")
    key_deactivate(key=row, actor=admin_a)
    key_activate(key=row, actor=admin_a)
    row, _ = key_rotate(key=row, actor=admin_a)
    key_revoke(key=row, actor=admin_a)
    key_delete(key=DeploymentKey.objects.get(pk=row.pk), actor=admin_a)

    assert {event.action for event in AuditEvent.objects.all()} == ACTIONS


def test_no_event_of_a_whole_lifecycle_holds_a_secret(org_a, deployment_a1, admin_a):
    row, first = issue_global_key(org_a, name="life", deployments=[deployment_a1])
    row, second = key_rotate(key=row, actor=admin_a, grace_period_seconds=10)
    key_update(key=row, actor=admin_a, allow_all_deployments=True, is_active=False)
    key_revoke(key=row, actor=admin_a)

    for event in AuditEvent.objects.all():
        assert_no_secret(event, first, second)


# --- append-only --------------------------------------------------------------------


@pytest.fixture
def event(deployment_key_a1) -> AuditEvent:
    return events(deployment_key_a1[0])[0]


def test_an_event_cannot_be_saved_again(event):
    event.key_name = "rewritten"
    with pytest.raises(ValidationError):
        event.save()
    event.refresh_from_db()
    assert event.key_name == "a-one key"


def test_an_event_cannot_be_deleted(event):
    with pytest.raises(ValidationError):
        event.delete()
    assert AuditEvent.objects.filter(pk=event.pk).exists()


def test_events_cannot_be_updated_in_bulk(event):
    with pytest.raises(ValidationError):
        AuditEvent.objects.filter(pk=event.pk).update(key_name="rewritten")
    with pytest.raises(ValidationError), transaction.atomic():
        AuditEvent.objects.bulk_update([event], ["key_name"])
    assert AuditEvent.objects.get(pk=event.pk).key_name == "a-one key"


def test_events_cannot_be_deleted_in_bulk(event):
    with pytest.raises(ValidationError):
        AuditEvent.objects.all().delete()
    with pytest.raises(ValidationError):
        AuditEvent.objects.filter(pk=event.pk).delete()
    assert AuditEvent.objects.filter(pk=event.pk).exists()


def test_the_guard_does_not_block_deleting_an_organization(event, org_a):
    """Events belong to their tenant: the cascade does not go through the queryset's delete()."""
    org_a.delete()
    assert not AuditEvent.objects.exists()


def test_audit_times_are_written_in_utc(org_a):
    in_two_hours_elsewhere = (timezone.now() + timedelta(days=1)).astimezone(dt_timezone(timedelta(hours=2)))
    key, _ = GlobalApiDeploymentKey.objects.issue(
        organization=org_a, name="tz", allow_all_deployments=True, expires_at=in_two_hours_elsewhere
    )
    recorded = AuditEvent.objects.get(key_id=key.id, action="created").changes["expires_at"][1]
    assert recorded.endswith("Z")
    assert recorded[:19] == in_two_hours_elsewhere.astimezone(UTC).isoformat()[:19]
