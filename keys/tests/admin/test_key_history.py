"""A key's History is its audit trail, and the admin's records link to one another."""

from __future__ import annotations

import pytest
from django.test import Client

from keys.models import AuditEvent
from keys.services import key_delete, key_revoke, key_rotate
from keys.tests.helpers import DEPLOYMENT, GLOBAL, admin_url, execute

pytestmark = pytest.mark.django_db


def test_a_keys_history_lists_its_audit_events(client_a, global_selected_key_a, admin_a):
    key, _ = global_selected_key_a
    key_rotate(key=key, actor=admin_a, grace_period_seconds=60)

    response = client_a.get(admin_url(GLOBAL, "history", key.pk))

    assert response.status_code == 200
    page = response.content.decode()
    assert "doesn’t have a change history" not in page
    assert [event.action for event in response.context["events"]] == ["rotated", "created"]
    assert "admin-a" in page and "grace_period_seconds" in page
    assert f"?key_id={key.pk}" in page  # and the whole list in Audit events


def test_another_organizations_key_has_no_history_for_you(client_a, global_all_key_b):
    key, _ = global_all_key_b
    assert client_a.get(admin_url(GLOBAL, "history", key.pk)).status_code == 302  # as a key that does not exist


def test_an_executions_row_links_to_its_key_and_its_deployment(client_a, deployment_key_a1):
    key, full_key = deployment_key_a1
    execute(Client(), "org-a", "a-one", full_key)

    page = client_a.get(admin_url("execution", "changelist", app="deployments")).content.decode()

    assert f'<a href="{admin_url(DEPLOYMENT, "change", key.pk)}">a-one key</a>' in page
    assert f'<a href="{admin_url("deployment", "change", key.deployment.pk, app="deployments")}">a-one</a>' in page


def test_an_audit_event_links_to_its_key_and_once_deleted_to_its_events(client_a, global_all_key_a, admin_a):
    key, _ = global_all_key_a
    url = admin_url("auditevent", "changelist")
    assert f'<a href="{admin_url(GLOBAL, "change", key.pk)}">' in client_a.get(url).content.decode()
    event = AuditEvent.objects.get(key_id=key.pk)
    assert f'<a href="{admin_url(GLOBAL, "change", key.pk)}">' in client_a.get(admin_url("auditevent", "change", event.pk)).content.decode()

    key_id = key.pk
    key_delete(key=key, actor=admin_a)
    page = client_a.get(url).content.decode()
    assert admin_url(GLOBAL, "change", key_id) not in page
    assert f"?key_id={key_id}" in page and "(deleted)" in page


def test_the_key_page_links_to_its_executions(client_a, deployment_key_a1):
    key, _ = deployment_key_a1
    page = client_a.get(admin_url(DEPLOYMENT, "change", key.pk)).content.decode()

    assert admin_url("execution", "changelist", app="deployments") + f"?key_id={key.pk}" in page


def test_a_revoked_keys_page_shows_no_enabled_tick_beside_its_status(client_a, deployment_key_a1):
    key, _ = deployment_key_a1
    key_revoke(key=key, actor=None)

    response = client_a.get(admin_url(DEPLOYMENT, "change", key.pk))

    page = response.content.decode()
    assert 'class="key-status key-status-revoked"' in page
    assert "field-is_active" not in page and "icon-yes.svg" not in page
