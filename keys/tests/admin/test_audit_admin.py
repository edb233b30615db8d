"""Audit events and executions are read-only in the admin, for everyone."""

from __future__ import annotations

import pytest

from deployments.models import Execution
from deployments.tests.factories import ExecutionFactory
from keys.models import AuditEvent
from keys.tests.helpers import admin_url

pytestmark = pytest.mark.django_db


@pytest.fixture(params=["client_a", "client_super"])
def any_admin(request):
    return request.getfixturevalue(request.param)


def test_audit_events_cannot_be_added_changed_or_deleted(any_admin, global_all_key_a):
    event = AuditEvent.objects.get(key_id=global_all_key_a[0].pk)
    before = (event.action, event.key_name, event.changes)

    assert any_admin.get(admin_url("auditevent", "add")).status_code == 403
    view = any_admin.get(admin_url("auditevent", "change", event.pk))
    assert view.status_code == 200
    assert 'name="key_name"' not in view.content.decode() and 'name="_save"' not in view.content.decode()
    assert any_admin.post(admin_url("auditevent", "change", event.pk), {"key_name": "edited"}).status_code == 403
    assert any_admin.get(admin_url("auditevent", "delete", event.pk)).status_code == 403
    assert any_admin.post(admin_url("auditevent", "delete", event.pk), {"post": "yes"}).status_code == 403
    changelist = any_admin.get(admin_url("auditevent", "changelist"))
    assert "delete_selected" not in changelist.content.decode()
    any_admin.post(
        admin_url("auditevent", "changelist"),
        {"action": "delete_selected", "_selected_action": [str(event.pk)], "post": "yes"},
    )

    event.refresh_from_db()
    assert (event.action, event.key_name, event.changes) == before


def test_executions_are_read_only(any_admin, deployment_a1):
    execution = ExecutionFactory(deployment=deployment_a1, key_name="ci")

    assert any_admin.get(admin_url("execution", "add", app="deployments")).status_code == 403
    assert any_admin.get(admin_url("execution", "change", execution.pk, app="deployments")).status_code == 200
    assert any_admin.post(admin_url("execution", "change", execution.pk, app="deployments"), {}).status_code == 403
    assert any_admin.get(admin_url("execution", "delete", execution.pk, app="deployments")).status_code == 403
    assert Execution.objects.filter(pk=execution.pk).exists()


def test_a_member_reads_audit_events(client_member_a, global_all_key_a):
    page = client_member_a.get(admin_url("auditevent", "changelist"))
    assert page.status_code == 200
    assert "all of A" in page.content.decode()
