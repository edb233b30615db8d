"""The key service's side of leaks: a revocation keeps its reason, and a grace can be ended early."""

import pytest

from keys.models import AuditEvent, RetiredSecret, RevocationReason
from keys.services import key_end_grace, key_revoke, key_rotate

from .helpers import last_event, works

pytestmark = pytest.mark.django_db


def test_a_revocation_with_a_reason_keeps_it_on_the_key_and_in_the_audit_event(deployment_key_a1):
    key, _ = deployment_key_a1

    revoked = key_revoke(key=key, actor=None, reason=RevocationReason.REPORTED_AS_LEAKED)

    assert revoked.revocation_reason == "leaked"
    assert last_event(key).changes["reason"] == [None, "reported as leaked"]


def test_a_revocation_without_a_reason_records_none(deployment_key_a1, admin_a):
    key, _ = deployment_key_a1

    key_revoke(key=key, actor=admin_a)

    key.refresh_from_db()
    assert key.revocation_reason == ""
    assert "reason" not in last_event(key).changes


def test_revoking_again_with_another_reason_changes_nothing(deployment_key_a1):
    key, _ = deployment_key_a1
    key_revoke(key=key, actor=None, reason=RevocationReason.REVOKED_BY_HOLDER)
    events = AuditEvent.objects.count()

    again = key_revoke(key=key, actor=None, reason=RevocationReason.REPORTED_AS_LEAKED)

    assert again.revocation_reason == "holder" and AuditEvent.objects.count() == events


def test_ending_a_grace_stops_the_old_secret_and_keeps_the_new(in_grace_key_a):
    key, old_key, new_key = in_grace_key_a

    ended_at = key_end_grace(key=key, actor=None, reason=RevocationReason.REPORTED_AS_LEAKED)

    assert ended_at is not None
    assert RetiredSecret.objects.get(key_id=key.pk).valid_until == ended_at
    assert not works(old_key) and works(new_key)
    event = last_event(key)
    assert event.action == "changed"
    assert event.changes["previous_key_expires_at"][1] is None
    assert event.changes["reason"] == [None, "reported as leaked"]


def test_ending_a_grace_that_is_not_running_writes_nothing(global_all_key_a):
    key, _ = global_all_key_a
    key, _ = key_rotate(key=key, actor=None, grace_period_seconds=0)
    events = AuditEvent.objects.count()

    assert key_end_grace(key=key, actor=None) is None

    assert AuditEvent.objects.count() == events
