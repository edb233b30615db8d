"""Promises the review found unpinned: keys never logged, Basic never throttling key clients,
an empty deployment picker staying empty, audit times in UTC, warm introspection free."""

import io
import logging
import uuid
from datetime import timedelta
from datetime import timezone as dt_timezone

import pytest
from django.test import override_settings
from django.utils import timezone

from backend.logging import redact
from deployments.tests.factories import DeploymentFactory
from keys import crypto
from keys.models import AuditEvent, DeploymentKey, GlobalApiDeploymentKey
from keys.tests.conftest import bearer
from organizations.models import Membership
from organizations.tests.factories import MembershipFactory, OrganizationFactory, UserFactory


@pytest.fixture
def stdout_log():
    """What the configured stdout handler writes, filters included."""
    handler = next(h for h in logging.getLogger("django").handlers if h.get_name() == "stdout")
    buffer = io.StringIO()
    previous = handler.setStream(buffer)
    yield buffer
    handler.setStream(previous)


@pytest.mark.parametrize("where", ["path", "query"])
def test_a_key_put_in_a_url_is_never_logged(client, global_all_key_a, stdout_log, where):
    _, full_key = global_all_key_a
    if where == "path":
        response = client.get(f"/api/v1/key/{full_key}/")
        assert response.status_code == 404
    else:
        response = client.get(f"/api/v1/key/?key={full_key}")
        assert response.status_code == 401  # a key in the URL is ignored
    client.post(f"/api/v1/deployments/org-a/{full_key}/execute/", content_type="application/json")
    output = stdout_log.getvalue()
    assert full_key not in output
    assert full_key[4:36] not in output


# An imported key is a UUID (CONTRACT §9): no log line holds one either.


@pytest.mark.parametrize("spelling", [str.lower, str.upper])
def test_a_uuid_put_in_a_url_is_never_logged(client, db, stdout_log, spelling):
    key = spelling(str(uuid.uuid4()))
    assert client.get(f"/api/v1/key/{key}/").status_code == 404
    client.post(f"/api/v1/deployments/org-a/{key}/execute/", content_type="application/json")
    output = stdout_log.getvalue()
    assert "Not Found" in output  # Django did log the paths
    assert key not in output and key.lower() not in output.lower()
    assert "[redacted uuid]" in output


def test_keyscopes_own_lines_keep_the_key_ids_they_name(stdout_log):
    key_id = str(uuid.uuid4())
    logging.getLogger("keyscope.test").warning("key %s refused", key_id)
    logging.getLogger("django.request").warning("Not Found: /x/%s/", key_id)
    lines = stdout_log.getvalue().splitlines()
    assert key_id in lines[0]
    assert key_id not in lines[1] and "[redacted uuid]" in lines[1]


def test_redaction_leaves_other_hex_and_ids_alone():
    bare = uuid.uuid4().hex
    assert redact(f"execution {bare} took 3 ms") == f"execution {bare} took 3 ms"
    assert redact(f"key={uuid.uuid4()}&x=1") == "key=[redacted uuid]&x=1"


def test_basic_credentials_beside_a_valid_api_key_are_not_a_throttled_login(client, global_all_key_a, deployment_a1):
    _, full_key = global_all_key_a
    with override_settings(KEYSCOPE_LOGIN_FAILURES_PER_ADDRESS_PER_MINUTE=1, KEYSCOPE_LOGIN_FAILURES_PER_MINUTE=1):
        for _ in range(3):
            client.get("/api/v1/orgs/org-a/deployments/", HTTP_AUTHORIZATION="Basic bm9ib2R5Om5vcGU=")
        throttled = client.get("/api/v1/orgs/org-a/deployments/", HTTP_AUTHORIZATION="Basic bm9ib2R5Om5vcGU=")
        assert throttled.status_code == 429
        response = client.post(
            "/api/v1/deployments/org-a/a-one/execute/",
            content_type="application/json",
            HTTP_AUTHORIZATION="Basic bm9ib2R5Om5vcGU=",
            HTTP_X_API_KEY=full_key,
        )
    assert response.status_code == 200


def test_an_org_admin_without_deployments_is_offered_none_of_another_organizations(client, deployment_b1):
    empty_org = OrganizationFactory(slug="org-empty")
    user = UserFactory(username="empty-admin", is_staff=True)
    MembershipFactory(organization=empty_org, user=user, role=Membership.Role.ADMIN)
    client.force_login(user)
    response = client.get("/admin/keys/globalapideploymentkey/add/")
    assert response.status_code == 200
    assert list(response.context["adminform"].form.fields["deployments"].queryset) == []
    assert "b-one" not in response.content.decode()


def test_audit_times_are_written_in_utc(org_a):
    in_two_hours_elsewhere = (timezone.now() + timedelta(days=1)).astimezone(dt_timezone(timedelta(hours=2)))
    key, _ = GlobalApiDeploymentKey.objects.issue(
        organization=org_a, name="tz", allow_all_deployments=True, expires_at=in_two_hours_elsewhere
    )
    recorded = AuditEvent.objects.get(key_id=key.id, action="created").changes["expires_at"][1]
    assert recorded.endswith("Z")
    assert recorded[:19] == in_two_hours_elsewhere.astimezone(dt_timezone.utc).isoformat()[:19]


def test_warm_introspection_makes_no_query(client, global_selected_key_a, django_assert_num_queries):
    _, full_key = global_selected_key_a
    first = client.get("/api/v1/key/", **bearer(full_key))
    assert first.json()["deployments"] == ["a-one", "a-two"]
    with django_assert_num_queries(0):
        second = client.get("/api/v1/key/", **bearer(full_key))
    assert second.json()["deployments"] == ["a-one", "a-two"]


def test_introspection_follows_a_scope_change_at_once(client, global_selected_key_a, deployment_a3):
    from keys.services import key_update

    key, full_key = global_selected_key_a
    client.get("/api/v1/key/", **bearer(full_key))
    key_update(key=key, actor=None, deployments=[deployment_a3])
    assert client.get("/api/v1/key/", **bearer(full_key)).json()["deployments"] == ["a-three"]


@pytest.mark.parametrize("model", [DeploymentKey, GlobalApiDeploymentKey])
def test_objects_create_with_only_the_contract_fields_works_twice(org_a, model):
    deployment = DeploymentFactory(organization=org_a)
    fields = {"deployment": deployment} if model is DeploymentKey else {"organization": org_a}
    first = model.objects.create(name="one", **fields)
    second = model.objects.create(name="two", **fields)
    assert first.digest != second.digest
    # A row made this way has no secret: no well-formed key maps to its placeholder digest.
    assert crypto.key_kind(first.digest) is None
    assert len(first.digest) <= 64


def test_failed_authentications_are_counted_over_the_last_minute_not_since_the_window_began(settings):
    from keys import ratelimit

    settings.KEYSCOPE_FAILED_AUTH_PER_MINUTE = 60
    window_end = (int(1_800_000_000 // 60) + 1) * 60
    for _ in range(60):  # all in the last second of a window
        throttled, _ = ratelimit.record_failed_auth("198.51.100.7", now=window_end - 0.5)
        assert not throttled
    # One second later a new window has begun, but those 60 were within the last minute.
    throttled, _ = ratelimit.record_failed_auth("198.51.100.7", now=window_end + 0.5)
    assert throttled
