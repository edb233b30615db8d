"""keys/services.py: every write to a key, its rules, and what it leaves in the database."""

from datetime import timedelta

import pytest
from django.core.exceptions import ValidationError
from django.utils import timezone

from keys import crypto
from keys.models import AuditEvent, DeploymentKey, KeyStatus, RetiredSecret
from keys.services import (
    KeyRevokedError,
    global_key_issue,
    key_activate,
    key_deactivate,
    key_delete,
    key_revoke,
    key_rotate,
    key_update,
)
from keys.tests.factories import issue_deployment_key, issue_global_key
from keys.tests.helpers import assert_error, execute


def test_issue_stores_only_the_digest_and_last_four(deployment_a1):
    row, full_key = issue_deployment_key(deployment_a1, name="  padded name  ")

    row.refresh_from_db()
    assert row.digest == crypto.digest(full_key)
    assert row.last4 == full_key[-4:]
    assert row.key_masked == f"ksd_\u2026{full_key[-4:]}"
    assert row.name == "padded name"
    assert row.is_active is True
    assert row.status == KeyStatus.ACTIVE
    assert crypto.key_kind(full_key) == "deployment"


def test_issue_with_an_actor_records_who_made_the_key(org_a, admin_a, deployment_a1):
    row, full_key = global_key_issue(
        actor=admin_a, organization=org_a, name="by admin", deployments=[deployment_a1]
    )
    assert row.created_by == admin_a
    assert crypto.key_kind(full_key) == "global"
    assert list(row.deployments.values_list("slug", flat=True)) == ["a-one"]


@pytest.mark.parametrize("name", ["", "   ", "x" * 101])
def test_a_blank_or_long_name_is_refused(deployment_a1, name):
    with pytest.raises(ValidationError) as error:
        issue_deployment_key(deployment_a1, name=name)
    assert "name" in error.value.message_dict
    assert not DeploymentKey.objects.exists()


def test_a_deployment_key_name_is_unique_per_deployment_without_regard_to_case(deployment_a1, deployment_a2):
    issue_deployment_key(deployment_a1, name="Primary")
    with pytest.raises(ValidationError) as error:
        issue_deployment_key(deployment_a1, name="primary")
    assert "name" in error.value.message_dict

    issue_deployment_key(deployment_a2, name="PRIMARY")  # another deployment may use it


def test_a_global_key_name_is_unique_per_organization(org_a, org_b):
    issue_global_key(org_a, name="Main", allow_all_deployments=True)
    with pytest.raises(ValidationError):
        issue_global_key(org_a, name="MAIN", allow_all_deployments=True)
    issue_global_key(org_b, name="main", allow_all_deployments=True)


def test_a_revoked_key_keeps_its_name(deployment_a1):
    row, _ = issue_deployment_key(deployment_a1, name="kept")
    key_revoke(key=row, actor=None)
    with pytest.raises(ValidationError):
        issue_deployment_key(deployment_a1, name="kept")


def test_a_past_expiry_is_refused(deployment_a1, deployment_key_a1):
    with pytest.raises(ValidationError) as error:
        issue_deployment_key(deployment_a1, name="late", expires_at=timezone.now() - timedelta(seconds=1))
    assert "expires_at" in error.value.message_dict
    with pytest.raises(ValidationError):
        key_update(key=deployment_key_a1[0], actor=None, expires_at=timezone.now() - timedelta(seconds=1))


def test_update_refuses_fields_that_are_not_editable(deployment_key_a1):
    row, _ = deployment_key_a1
    for field, value in [("digest", "0" * 64), ("revoked_at", timezone.now()), ("allow_all_deployments", True)]:
        with pytest.raises(ValidationError):
            key_update(key=row, actor=None, **{field: value})
    row.refresh_from_db()
    assert row.revoked_at is None


def test_a_key_that_ends_up_allowing_all_keeps_no_list(global_selected_key_a):
    row, _ = global_selected_key_a
    row = key_update(key=row, actor=None, allow_all_deployments=True)
    assert row.allow_all_deployments is True
    assert not row.deployments.exists()


def test_allow_all_with_a_list_is_refused_by_update(global_all_key_a, deployment_a1):
    row, _ = global_all_key_a
    with pytest.raises(ValidationError):
        key_update(key=row, actor=None, deployments=[deployment_a1])
    assert not row.deployments.exists()


def test_update_may_change_the_scope(client, global_selected_key_a, deployment_a3):
    row, full_key = global_selected_key_a
    key_update(key=row, actor=None, deployments=[deployment_a3])

    assert execute(client, "org-a", "a-three", full_key).status_code == 200
    assert_error(execute(client, "org-a", "a-one", full_key), 403, "deployment_not_in_scope")


def test_rotation_keeps_id_name_scope_expiry_and_limit(global_selected_key_a):
    row, old_key = global_selected_key_a
    expires_at = timezone.now() + timedelta(days=5)
    row = key_update(key=row, actor=None, expires_at=expires_at, rate_limit_per_minute=7, description="d")

    rotated, new_key = key_rotate(key=row, actor=None)

    rotated.refresh_from_db()
    assert new_key != old_key
    assert crypto.key_kind(new_key) == "global"
    assert (rotated.pk, rotated.name, rotated.description) == (row.pk, row.name, "d")
    assert rotated.expires_at == expires_at
    assert rotated.rate_limit_per_minute == 7
    assert sorted(rotated.deployments.values_list("slug", flat=True)) == ["a-one", "a-two"]
    assert rotated.digest == crypto.digest(new_key)
    assert rotated.last4 == new_key[-4:]
    assert RetiredSecret.objects.filter(digest=crypto.digest(old_key), key_id=row.pk).exists()


@pytest.mark.parametrize("grace", [-1, 604801, 1.5, "60", True, None])
def test_a_grace_period_outside_0_to_604800_seconds_is_refused(deployment_key_a1, grace):
    row, full_key = deployment_key_a1
    with pytest.raises(ValidationError) as error:
        key_rotate(key=row, actor=None, grace_period_seconds=grace)
    assert "grace_period_seconds" in error.value.message_dict
    row.refresh_from_db()
    assert row.digest == crypto.digest(full_key)


@pytest.mark.parametrize("grace", [0, 604800])
def test_the_grace_bounds_are_accepted(deployment_key_a1, grace):
    row, _ = deployment_key_a1
    key_rotate(key=row, actor=None, grace_period_seconds=grace)


def test_a_rotation_ends_any_earlier_grace(client, deployment_key_a1):
    row, first = deployment_key_a1
    row, second = key_rotate(key=row, actor=None, grace_period_seconds=3600)
    assert execute(client, "org-a", "a-one", first).status_code == 200

    row, third = key_rotate(key=row, actor=None, grace_period_seconds=3600)

    assert_error(execute(client, "org-a", "a-one", first), 401, "key_revoked")
    assert execute(client, "org-a", "a-one", second).status_code == 200  # the second rotation's own grace
    assert execute(client, "org-a", "a-one", third).status_code == 200


def test_revocation_is_final(deployment_key_a1):
    row, _ = deployment_key_a1
    key_revoke(key=row, actor=None)

    with pytest.raises(KeyRevokedError) as error:
        key_rotate(key=row, actor=None)
    assert error.value.status_code == 409
    assert error.value.get_codes() == "key_revoked"
    with pytest.raises(KeyRevokedError):
        key_activate(key=row, actor=None)
    with pytest.raises(KeyRevokedError):
        key_update(key=row, actor=None, is_active=True)
    row.refresh_from_db()
    assert row.status == KeyStatus.REVOKED


def test_revoking_again_changes_nothing(deployment_key_a1):
    row, _ = deployment_key_a1
    first = key_revoke(key=row, actor=None)
    events = AuditEvent.objects.count()

    second = key_revoke(key=row, actor=None)

    assert second.revoked_at == first.revoked_at
    assert AuditEvent.objects.count() == events


def test_revoking_does_not_change_is_active(deployment_key_a1):
    row, _ = deployment_key_a1
    assert key_revoke(key=row, actor=None).is_active is True
    key_deactivate(key=row, actor=None)
    row = key_revoke(key=DeploymentKey.objects.get(pk=row.pk), actor=None)
    assert row.is_active is False


def test_activate_and_deactivate_toggle_is_active(deployment_key_a1):
    row, _ = deployment_key_a1
    assert key_deactivate(key=row, actor=None).is_active is False
    assert DeploymentKey.objects.get(pk=row.pk).status == KeyStatus.INACTIVE
    assert key_activate(key=row, actor=None).is_active is True


def test_delete_removes_the_key_and_its_retired_secrets(client, deployment_key_a1):
    row, old_key = deployment_key_a1
    row, new_key = key_rotate(key=row, actor=None, grace_period_seconds=3600)

    key_delete(key=row, actor=None)

    assert not DeploymentKey.objects.filter(pk=row.pk).exists()
    assert not RetiredSecret.objects.filter(key_id=row.pk).exists()
    assert_error(execute(client, "org-a", "a-one", old_key), 401, "invalid_key")
    assert_error(execute(client, "org-a", "a-one", new_key), 401, "invalid_key")


def test_deleting_a_deployment_removes_it_from_global_keys(global_selected_key_a, deployment_a1):
    row, _ = global_selected_key_a
    deployment_a1.delete()
    assert list(row.deployments.values_list("slug", flat=True)) == ["a-two"]


def test_the_status_reflects_expiry(deployment_a1):
    row, _ = issue_deployment_key(deployment_a1, name="short", expires_at=timezone.now() + timedelta(minutes=1))
    assert row.status_at(timezone.now()) == KeyStatus.ACTIVE
    assert row.status_at(timezone.now() + timedelta(minutes=2)) == KeyStatus.EXPIRED
