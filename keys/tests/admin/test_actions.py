"""Changing keys in the admin: every write goes through the key service and is audited."""

from __future__ import annotations

from datetime import timedelta

import pytest
from django.test import Client
from django.utils import timezone

from keys import crypto
from keys.models import AuditEvent, DeploymentKey, GlobalApiDeploymentKey
from keys.services import NAME_TAKEN, key_revoke
from keys.tests.helpers import DEPLOYMENT, GLOBAL, admin_url, deployment_key_form, execute, full_keys_in, global_key_form

pytestmark = pytest.mark.django_db


def actions_of(key) -> list[str]:
    return list(AuditEvent.objects.filter(key_id=key.pk).order_by("created_at").values_list("action", flat=True))


def select(action: str, *keys, **extra) -> dict:
    return {"action": action, "_selected_action": [str(key.pk) for key in keys], **extra}


def test_revoke_asks_for_confirmation_then_revokes(client_a, global_all_key_a, global_selected_key_a):
    keys = [global_all_key_a[0], global_selected_key_a[0]]

    confirmation = client_a.post(admin_url(GLOBAL, "changelist"), select("revoke_keys", *keys))
    assert confirmation.status_code == 200
    assert "Revocation is final" in confirmation.content.decode()
    assert not GlobalApiDeploymentKey.objects.filter(revoked_at__isnull=False).exists()

    done = client_a.post(admin_url(GLOBAL, "changelist"), select("revoke_keys", *keys, post="yes"))
    assert done.status_code == 302
    for key in keys:
        key.refresh_from_db()
        assert key.revoked_at is not None and key.is_active  # revoking does not change is_active
        event = AuditEvent.objects.get(key_id=key.pk, action="revoked")
        assert event.actor_username == "admin-a" and event.ip_address == "127.0.0.1"
    assert execute(Client(), "org-a", "a-one", global_all_key_a[1]).json()["code"] == "key_revoked"


def test_revoking_one_key_from_its_page(client_a, deployment_key_a1):
    key, _ = deployment_key_a1
    assert "Revocation is final" in client_a.get(admin_url(DEPLOYMENT, "revoke", key.pk)).content.decode()

    response = client_a.post(admin_url(DEPLOYMENT, "revoke", key.pk), {"post": "yes"})

    assert response.status_code == 302 and response["Location"] == admin_url(DEPLOYMENT, "change", key.pk)
    key.refresh_from_db()
    assert key.is_revoked
    assert actions_of(key) == ["created", "revoked"]


def test_deactivate_and_activate_actions_are_audited(client_a, global_all_key_a):
    key, full_key = global_all_key_a

    client_a.post(admin_url(GLOBAL, "changelist"), select("deactivate_keys", key))
    key.refresh_from_db()
    assert not key.is_active
    assert execute(Client(), "org-a", "a-one", full_key).json()["code"] == "key_inactive"

    client_a.post(admin_url(GLOBAL, "changelist"), select("activate_keys", key))
    key.refresh_from_db()
    assert key.is_active
    assert actions_of(key) == ["created", "deactivated", "activated"]
    assert AuditEvent.objects.get(key_id=key.pk, action="activated").changes == {"is_active": [False, True]}


def test_revoked_keys_are_read_only(client_a, org_a, global_all_key_a):
    key, _ = global_all_key_a
    key_revoke(key=key, actor=None)

    page = client_a.get(admin_url(GLOBAL, "change", key.pk)).content.decode()
    assert 'name="name"' not in page and 'id="rotate-key"' not in page and 'id="revoke-key"' not in page
    assert client_a.post(admin_url(GLOBAL, "change", key.pk), global_key_form(org_a, "renamed", scope="all")).status_code == 403
    assert client_a.get(admin_url(GLOBAL, "rotate", key.pk)).status_code == 404
    for action in ("activate_keys", "deactivate_keys", "rotate_keys"):
        response = client_a.post(admin_url(GLOBAL, "changelist"), select(action, key, post="yes", grace_period_seconds="0"))
        assert full_keys_in(response) == []
    key.refresh_from_db()
    assert key.name == "all of A" and key.is_active
    assert actions_of(key) == ["created", "revoked"]


def test_changing_a_key_goes_through_the_service(client_a, org_a, global_selected_key_a, deployment_a3):
    key, _ = global_selected_key_a
    response = client_a.post(
        admin_url(GLOBAL, "change", key.pk), global_key_form(org_a, "renamed", [deployment_a3], is_active="")
    )

    assert response.status_code == 302
    key.refresh_from_db()
    assert key.name == "renamed" and not key.is_active
    assert list(key.deployments.values_list("slug", flat=True)) == ["a-three"]
    assert actions_of(key) == ["created", "deactivated", "changed"]
    changed = AuditEvent.objects.get(key_id=key.pk, action="changed")
    assert changed.changes["name"] == ["a-one and a-two", "renamed"]
    assert changed.changes["deployments"] == [["a-one", "a-two"], ["a-three"]]
    assert changed.actor_username == "admin-a"


def test_switching_a_key_to_all_deployments_empties_its_list(client_a, org_a, global_selected_key_a):
    key, full_key = global_selected_key_a
    client_a.post(admin_url(GLOBAL, "change", key.pk), global_key_form(org_a, key.name, [], scope="all"))

    key.refresh_from_db()
    assert key.allow_all_deployments and not key.deployments.exists()
    assert execute(Client(), "org-a", "a-three", full_key).status_code == 200


@pytest.mark.parametrize(
    ("scope", "picked", "message"),
    [
        ("all", True, 'With "All deployments" as its scope a key lists none'),
        ("selected", False, "Choose at least one deployment"),
    ],
)
def test_scope_rules_are_form_errors(client_a, org_a, deployment_a1, scope, picked, message):
    deployments = [deployment_a1] if picked else []
    response = client_a.post(admin_url(GLOBAL, "add"), global_key_form(org_a, "ci", deployments, scope=scope))

    assert response.status_code == 200
    errors = " ".join(response.context["adminform"].form.errors["deployments"])
    # In the form's words: it has a "Scope" radio, not the API's allow_all_deployments.
    assert message in errors and "allow_all_deployments" not in errors
    assert not GlobalApiDeploymentKey.objects.exists()


def test_a_taken_name_is_a_form_error_in_the_services_words(client_a, org_a, global_all_key_a, deployment_a1):
    response = client_a.post(admin_url(GLOBAL, "add"), global_key_form(org_a, "ALL OF a", [deployment_a1]))

    assert response.status_code == 200
    assert response.context["adminform"].form.errors["name"] == [NAME_TAKEN["global"]]
    assert full_keys_in(response) == []
    assert GlobalApiDeploymentKey.objects.count() == 1
    assert AuditEvent.objects.count() == 1


def test_an_expiry_in_the_past_is_a_form_error(client_a, deployment_a1):
    past = timezone.localtime() - timedelta(days=1)
    response = client_a.post(
        admin_url(DEPLOYMENT, "add"),
        deployment_key_form(
            deployment_a1, "ci", expires_at_0=past.strftime("%Y-%m-%d"), expires_at_1=past.strftime("%H:%M:%S")
        ),
    )

    assert response.status_code == 200
    assert "expires_at" in response.context["adminform"].form.errors
    assert not DeploymentKey.objects.exists()


def test_deleting_a_key_is_audited(client_a, deployment_key_a1):
    key, _ = deployment_key_a1
    response = client_a.post(admin_url(DEPLOYMENT, "delete", key.pk), {"post": "yes"})

    assert response.status_code == 302
    assert not DeploymentKey.objects.filter(pk=key.pk).exists()
    assert AuditEvent.objects.get(key_id=key.pk, action="deleted").actor_username == "admin-a"


def test_the_delete_action_is_audited_per_key(client_a, global_all_key_a, global_selected_key_a):
    keys = [global_all_key_a[0], global_selected_key_a[0]]
    client_a.post(admin_url(GLOBAL, "changelist"), select("delete_selected", *keys, post="yes"))

    assert not GlobalApiDeploymentKey.objects.exists()
    assert AuditEvent.objects.filter(action="deleted").count() == 2


def test_a_keys_page_links_to_its_audit_events(client_a, global_all_key_a, global_selected_key_a):
    key, _ = global_all_key_a
    page = client_a.get(admin_url(GLOBAL, "change", key.pk)).content.decode()
    audit_url = admin_url("auditevent", "changelist") + f"?key_id={key.pk}"
    assert f'href="{audit_url}"' in page

    events = client_a.get(audit_url)
    assert [event.key_id for event in events.context["cl"].result_list] == [key.pk]


def test_lists_show_masked_key_scope_status_expiry_and_last_use(client_a, global_all_key_a, global_selected_key_a):
    response = client_a.get(admin_url(GLOBAL, "changelist"))
    page = response.content.decode()

    for key, _ in (global_all_key_a, global_selected_key_a):
        assert key.key_masked in page
    assert "All deployments" in page and '<td class="field-scope">A one, A two</td>' in page
    for column in ("Name", "Organization", "Key", "Scope", "Status", "Expires", "Last used"):
        assert column.upper() in page.upper()


def test_the_deployment_key_list_shows_the_deployment_as_its_scope_once(
    client_a, deployment_key_a1
):
    key, _ = deployment_key_a1
    response = client_a.get(admin_url(DEPLOYMENT, "changelist"))
    page = response.content.decode()

    assert key.key_masked in page
    # The deployment column is the scope, a link to the deployment; no "1 deployment" beside it.
    assert "1 deployment<" not in page and "field-scope" not in page
    deployment_url = admin_url("deployment", "change", key.deployment.pk, app="deployments")
    assert f'<td class="field-deployment_slug"><a href="{deployment_url}">a-one</a></td>' in page
    for column in ("Name", "Organization", "Deployment", "Key", "Status", "Expires", "Last used"):
        assert column.upper() in page.upper()
    # Sorting by the deployment column still works.
    sorted_page = client_a.get(admin_url(DEPLOYMENT, "changelist"), {"o": "3"})
    assert sorted_page.status_code == 200
    assert [k.pk for k in sorted_page.context["cl"].result_list] == [key.pk]


@pytest.mark.parametrize(
    ("status", "expected"), [("active", {"fresh"}), ("inactive", {"off"}), ("expired", {"old"}), ("revoked", {"gone"})]
)
def test_the_status_filter(client_a, org_a, status, expected):
    from keys.tests.factories import issue_global_key

    now = timezone.now()
    issue_global_key(org_a, name="fresh", allow_all_deployments=True)
    issue_global_key(org_a, name="off", allow_all_deployments=True, is_active=False)
    old, _ = issue_global_key(org_a, name="old", allow_all_deployments=True, expires_at=now + timedelta(hours=1))
    GlobalApiDeploymentKey.objects.filter(pk=old.pk).update(expires_at=now - timedelta(hours=1))
    gone, _ = issue_global_key(org_a, name="gone", allow_all_deployments=True)
    key_revoke(key=gone, actor=None)

    response = client_a.get(admin_url(GLOBAL, "changelist") + f"?status={status}")
    assert {key.name for key in response.context["cl"].result_list} == expected


def test_search_by_name_and_by_last_four(client_a, global_all_key_a, global_selected_key_a):
    key, full_key = global_selected_key_a
    changelist = admin_url(GLOBAL, "changelist")

    by_name = client_a.get(changelist, {"q": "a-one and"}).context["cl"].result_list
    by_last4 = client_a.get(changelist, {"q": crypto.last4(full_key)}).context["cl"].result_list
    by_masked = client_a.get(changelist, {"q": key.key_masked}).context["cl"].result_list
    assert [k.pk for k in by_name] == [k.pk for k in by_last4] == [k.pk for k in by_masked] == [key.pk]


def test_the_scope_filter(client_a, global_all_key_a, global_selected_key_a):
    changelist = admin_url(GLOBAL, "changelist")
    assert [k.name for k in client_a.get(changelist, {"scope": "all"}).context["cl"].result_list] == ["all of A"]
    assert [k.name for k in client_a.get(changelist, {"scope": "selected"}).context["cl"].result_list] == [
        "a-one and a-two"
    ]
