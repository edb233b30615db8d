"""POST /api/v1/key/revoke/: a client that finds its own key leaked revokes it, with the key alone."""

import pytest
from django.core import mail
from django.utils.dateparse import parse_datetime

from keys.models import AuditEvent, RetiredSecret
from keys.services import key_deactivate, key_revoke, key_rotate
from keys.tests.factories import issue_deployment_key
from keys.tests.helpers import assert_error, bearer, execute, x_api_key

from .helpers import assert_no_full_key_in_any_email, last_event, works

pytestmark = pytest.mark.django_db

URL = "/api/v1/key/revoke/"


@pytest.mark.parametrize("persona", ["deployment_key_a1", "global_selected_key_a"])
def test_a_key_revokes_itself_and_answers_its_introspection_with_revoked_at(client, request, admin_a, persona):
    key, full_key = request.getfixturevalue(persona)
    described = client.get("/api/v1/key/", **bearer(full_key)).json()

    response = client.post(URL, **bearer(full_key))

    assert response.status_code == 200, response.content
    body = response.json()
    assert {name: value for name, value in body.items() if name != "revoked_at"} == described
    key.refresh_from_db()
    assert key.revoked_at is not None and parse_datetime(body["revoked_at"]) == key.revoked_at
    assert key.revocation_reason == "holder"
    assert key.is_active  # revoking does not change is_active
    assert not works(full_key)


def test_the_revocation_is_audited_with_actor_null_and_the_holders_reason(client, deployment_key_a1):
    key, full_key = deployment_key_a1

    client.post(URL, **bearer(full_key), REMOTE_ADDR="203.0.113.9")

    event = last_event(key)
    assert (event.action, event.actor_id, event.actor_username) == ("revoked", None, "")
    assert event.changes["reason"] == [None, "revoked by its holder"]
    assert event.ip_address == "203.0.113.9"


def test_the_organizations_admins_are_emailed_without_the_key(client, admin_a, member_a, admin_b, deployment_key_a1):
    key, full_key = deployment_key_a1

    client.post(URL, **x_api_key(full_key), REMOTE_ADDR="203.0.113.9")

    (message,) = mail.outbox
    assert message.to == [admin_a.email]  # not the member, not another organization's admin
    assert key.key_masked in message.body and "a-one key" in message.body
    assert "revoked by its holder" in message.body and "203.0.113.9" in message.body
    assert_no_full_key_in_any_email()


def test_the_revoked_key_is_refused_on_its_very_next_request(client, deployment_key_a1, deployment_a1):
    _, full_key = deployment_key_a1
    assert execute(client, "org-a", "a-one", full_key).status_code == 200  # cached now

    assert client.post(URL.rstrip("/"), **bearer(full_key)).status_code == 200

    assert_error(execute(client, "org-a", "a-one", full_key), 401, "key_revoked")
    assert_error(client.post(URL, **bearer(full_key)), 401, "key_revoked")


def test_a_secret_replaced_by_a_rotation_only_ends_its_own_grace(client, admin_a, in_grace_key_a):
    key, old_key, new_key = in_grace_key_a

    response = client.post(URL, **bearer(old_key))

    assert response.status_code == 200
    key.refresh_from_db()
    assert key.revoked_at is None
    assert not works(old_key) and works(new_key)
    retired = RetiredSecret.objects.get(key_id=key.pk)
    assert parse_datetime(response.json()["revoked_at"]) == retired.valid_until
    event = last_event(key)
    assert event.action == "changed" and event.changes["reason"] == [None, "revoked by its holder"]
    assert event.changes["previous_key_expires_at"][1] is None
    assert "current secret" in mail.outbox[0].body


@pytest.mark.parametrize("state", ["revoked", "rotated out", "deactivated"])
def test_a_key_that_does_not_work_cannot_revoke_anything(client, deployment_key_a1, state):
    key, full_key = deployment_key_a1
    {"revoked": key_revoke, "rotated out": key_rotate, "deactivated": key_deactivate}[state](key=key, actor=None)
    events = AuditEvent.objects.count()

    assert client.post(URL, **bearer(full_key)).status_code == 401

    assert AuditEvent.objects.count() == events
    assert not mail.outbox


def test_without_a_key_it_is_401(client):
    assert_error(client.post(URL), 401, "not_authenticated")


def test_a_key_over_its_rate_limit_can_still_revoke_itself(client, deployment_a1):
    key, full_key = issue_deployment_key(deployment_a1, name="limited", rate_limit_per_minute=1)
    assert execute(client, "org-a", "a-one", full_key).status_code == 200
    assert_error(execute(client, "org-a", "a-one", full_key), 429, "rate_limited")  # someone else keeps it busy

    assert client.post(URL, **bearer(full_key)).status_code == 200

    key.refresh_from_db()
    assert key.revoked_at is not None
