"""Creating or rotating a key answers with the one-time page, and the key appears nowhere else."""

from __future__ import annotations

import json
import logging

import pytest
from django.contrib.admin.models import LogEntry
from django.contrib.sessions.models import Session
from django.test import Client

from keys import crypto
from keys.models import AuditEvent, DeploymentKey, GlobalApiDeploymentKey
from keys.tests.helpers import DEPLOYMENT, GLOBAL, admin_url, deployment_key_form, execute, full_keys_in, global_key_form

pytestmark = pytest.mark.django_db


def assert_stored_nowhere(client: Client, full_key: str) -> None:
    """Not in a cookie, a session (database or client side), a message, an admin log entry or an audit event."""
    for morsel in client.cookies.values():
        assert full_key not in morsel.value
    for session in Session.objects.all():
        assert full_key not in json.dumps(session.get_decoded())
    assert full_key not in json.dumps(dict(client.session.items()))
    for entry in LogEntry.objects.all():
        assert full_key not in entry.object_repr + entry.change_message
    for event in AuditEvent.objects.all():
        assert full_key not in json.dumps(event.changes) + event.key_name


def test_creating_a_global_key_shows_it_once_in_the_response(client_a, org_a, deployment_a1, deployment_a2, caplog):
    caplog.set_level(logging.DEBUG)
    response = client_a.post(
        admin_url(GLOBAL, "add"), global_key_form(org_a, "ci", [deployment_a1, deployment_a2])
    )

    assert response.status_code == 200
    assert [t.name for t in response.templates][0] == "keys/one_time_key.html"
    [full_key] = full_keys_in(response)
    assert response.content.decode().count(full_key) == 1
    assert "will not be shown again" in response.content.decode()
    assert 'class="button copy-key"' in response.content.decode()
    assert "no-store" in response["Cache-Control"]
    assert full_key not in response.headers.get("Location", "")
    assert not any(full_key in morsel.value for morsel in response.cookies.values())

    key = GlobalApiDeploymentKey.objects.get(name="ci")
    assert crypto.key_kind(full_key) == "global"
    assert key.digest == crypto.digest(full_key)
    assert set(key.deployments.values_list("slug", flat=True)) == {"a-one", "a-two"}
    assert key.created_by.username == "admin-a"
    event = AuditEvent.objects.get(key_id=key.pk)
    assert (event.action, event.actor_username) == ("created", "admin-a")

    next_page = client_a.get(admin_url(GLOBAL, "change", key.pk))
    assert next_page.status_code == 200
    assert full_key not in next_page.content.decode()
    assert key.key_masked in next_page.content.decode()
    assert full_key not in client_a.get(admin_url(GLOBAL, "changelist")).content.decode()
    assert_stored_nowhere(client_a, full_key)
    assert full_key not in caplog.text


def test_the_key_from_the_one_time_page_opens_its_deployments_only(client_a, org_a, deployment_a1, deployment_a2, deployment_a3):
    response = client_a.post(admin_url(GLOBAL, "add"), global_key_form(org_a, "ci", [deployment_a1, deployment_a2]))
    [full_key] = full_keys_in(response)

    api = Client()
    assert execute(api, "org-a", "a-two", full_key).status_code == 200
    assert execute(api, "org-a", "a-three", full_key).json()["code"] == "deployment_not_in_scope"


def test_creating_a_deployment_key_shows_it_once(client_a, deployment_a1):
    response = client_a.post(admin_url(DEPLOYMENT, "add"), deployment_key_form(deployment_a1, "ci"))

    assert response.status_code == 200
    [full_key] = full_keys_in(response)
    assert crypto.key_kind(full_key) == "deployment"
    key = DeploymentKey.objects.get(name="ci")
    assert key.digest == crypto.digest(full_key)
    assert execute(Client(), "org-a", "a-one", full_key).status_code == 200
    assert_stored_nowhere(client_a, full_key)


def test_rotating_a_key_shows_the_new_one_once_and_the_old_one_stops(client_a, global_selected_key_a):
    key, old_key = global_selected_key_a
    confirmation = client_a.get(admin_url(GLOBAL, "rotate", key.pk))
    assert confirmation.status_code == 200
    assert "Old key keeps working" in confirmation.content.decode()
    key.refresh_from_db()
    assert key.digest == crypto.digest(old_key)  # showing the form rotates nothing

    response = client_a.post(admin_url(GLOBAL, "rotate", key.pk), {"post": "yes", "grace_period_seconds": "0"})

    assert response.status_code == 200
    [new_key] = full_keys_in(response)
    assert response.content.decode().count(new_key) == 1
    assert "will not be shown again" in response.content.decode()
    key.refresh_from_db()
    assert key.digest == crypto.digest(new_key)
    api = Client()
    assert execute(api, "org-a", "a-one", new_key).status_code == 200
    assert execute(api, "org-a", "a-one", old_key).json()["code"] == "key_revoked"
    assert AuditEvent.objects.filter(key_id=key.pk, action="rotated", actor_username="admin-a").count() == 1
    assert full_key_absent_later(client_a, key, new_key)
    assert_stored_nowhere(client_a, new_key)


def full_key_absent_later(client: Client, key, full_key: str) -> bool:
    pages = [admin_url(GLOBAL, "change", key.pk), admin_url(GLOBAL, "changelist"), admin_url("auditevent", "changelist")]
    return all(full_key not in client.get(page).content.decode() for page in pages)


def test_rotating_with_a_grace_period_keeps_the_old_key_working(client_a, global_selected_key_a):
    key, old_key = global_selected_key_a
    response = client_a.post(admin_url(GLOBAL, "rotate", key.pk), {"post": "yes", "grace_period_seconds": "3600"})

    [new_key] = full_keys_in(response)
    assert "keeps working until" in response.content.decode()
    api = Client()
    assert execute(api, "org-a", "a-one", old_key).status_code == 200
    assert execute(api, "org-a", "a-one", new_key).status_code == 200


@pytest.mark.parametrize("grace", ["-1", "604801", "soon"])
def test_a_bad_grace_period_is_a_form_error_and_rotates_nothing(client_a, global_selected_key_a, grace):
    key, old_key = global_selected_key_a
    response = client_a.post(admin_url(GLOBAL, "rotate", key.pk), {"post": "yes", "grace_period_seconds": grace})

    assert response.status_code == 200
    assert full_keys_in(response) == []
    assert "errorlist" in response.content.decode()
    key.refresh_from_db()
    assert key.digest == crypto.digest(old_key)


def test_the_rotate_action_lists_every_new_key_once_on_one_page(client_a, global_all_key_a, global_selected_key_a):
    keys = [global_all_key_a[0], global_selected_key_a[0]]
    selection = {"action": "rotate_keys", "_selected_action": [str(key.pk) for key in keys]}

    confirmation = client_a.post(admin_url(GLOBAL, "changelist"), selection)
    assert confirmation.status_code == 200
    assert full_keys_in(confirmation) == []

    response = client_a.post(admin_url(GLOBAL, "changelist"), {**selection, "post": "yes", "grace_period_seconds": "0"})

    assert response.status_code == 200
    new_keys = full_keys_in(response)
    assert len(new_keys) == 2 and len(set(new_keys)) == 2
    for key in keys:
        key.refresh_from_db()
        assert key.digest in {crypto.digest(new_key) for new_key in new_keys}
    for new_key in new_keys:
        assert_stored_nowhere(client_a, new_key)
