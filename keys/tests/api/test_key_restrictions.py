"""`scopes`, `allowed_ips` and `previous_key_expires_at` through the management API, audited."""

from datetime import timedelta
from unittest import mock

import pytest
from django.db import connection
from django.test import Client
from django.test.utils import CaptureQueriesContext
from django.utils import timezone
from django.utils.dateparse import parse_datetime

from keys.models import AuditEvent, DeploymentKey, GlobalApiDeploymentKey
from keys.services import key_rotate
from keys.tests.factories import issue_deployment_key, issue_global_key
from keys.tests.helpers import ORG_A, bearer, execute

DEPLOYMENT_KEYS = f"{ORG_A}/deployments/a-one/keys/"
GLOBAL_KEYS = f"{ORG_A}/global-keys/"
BOTH = ["deployments:execute", "executions:read"]
KINDS = [
    pytest.param(DEPLOYMENT_KEYS, {}, id="deployment-key"),
    pytest.param(GLOBAL_KEYS, {"allow_all_deployments": True}, id="global-key"),
]


def model_for(url: str):
    return DeploymentKey if url == DEPLOYMENT_KEYS else GlobalApiDeploymentKey


@pytest.fixture
def a_key(request, deployment_a1, org_a):
    """One key of the parametrised kind, and its detail URL."""
    url = request.node.callspec.params["url"]
    if url == DEPLOYMENT_KEYS:
        row, _ = issue_deployment_key(deployment_a1, name="existing")
    else:
        row, _ = issue_global_key(org_a, name="existing", allow_all_deployments=True)
    return row, f"{url}{row.pk}/"


# Create, read, list ---------------------------------------------------------------


@pytest.mark.parametrize("url, scope_fields", KINDS)
def test_a_key_made_without_restrictions_may_do_everything_from_anywhere(admin_client, deployment_a1, url, scope_fields):
    body = admin_client.post(url, {"name": "plain", **scope_fields}, format="json").json()

    assert (body["scopes"], body["allowed_ips"], body["previous_key_expires_at"]) == (BOTH, [], None)
    row = model_for(url).objects.get(pk=body["id"])
    assert (row.scopes, row.allowed_ips) == (BOTH, [])


@pytest.mark.parametrize("url, scope_fields", KINDS)
def test_restrictions_are_stored_canonical_and_shown_in_create_detail_and_list(
    admin_client, member_client, deployment_a1, url, scope_fields
):
    created = admin_client.post(
        url,
        {"name": "reader", "scopes": ["executions:read"], "allowed_ips": ["203.0.113.7", "2001:DB8::/32", "10.0.0.0/8"],
         **scope_fields},
        format="json",
    )
    assert created.status_code == 201, created.content
    expected = {"scopes": ["executions:read"], "allowed_ips": ["203.0.113.7/32", "2001:db8::/32", "10.0.0.0/8"]}
    body = created.json()
    assert {field: body[field] for field in expected} == expected

    detail = member_client.get(f"{url}{body['id']}/").json()
    listed = next(item for item in member_client.get(url).json()["results"] if item["id"] == body["id"])
    for shown in (detail, listed):
        assert {field: shown[field] for field in expected} == expected
    row = model_for(url).objects.get(pk=body["id"])
    assert (row.scopes, row.allowed_ips) == (expected["scopes"], expected["allowed_ips"])


@pytest.mark.parametrize("url, scope_fields", KINDS)
def test_the_key_made_through_the_api_is_held_to_its_restrictions(admin_client, deployment_a1, url, scope_fields):
    body = admin_client.post(
        url, {"name": "runner", "scopes": ["deployments:execute"], "allowed_ips": ["203.0.113.0/24"], **scope_fields},
        format="json",
    ).json()

    api = Client()  # no Basic credentials beside the key
    assert execute(api, "org-a", "a-one", body["key"], REMOTE_ADDR="203.0.113.9").status_code == 200
    assert execute(api, "org-a", "a-one", body["key"], REMOTE_ADDR="198.51.100.1").json()["code"] == "ip_not_allowed"
    introspected = api.get("/api/v1/key/", **bearer(body["key"]), REMOTE_ADDR="203.0.113.9").json()
    assert (introspected["scopes"], introspected["allowed_ips"]) == (["deployments:execute"], ["203.0.113.0/24"])


# PATCH ------------------------------------------------------------------------------


@pytest.mark.parametrize("url, scope_fields", KINDS)
def test_patch_changes_the_restrictions_and_audits_them(admin_client, a_key, url, scope_fields):
    row, detail = a_key
    response = admin_client.patch(
        detail, {"scopes": ["executions:read"], "allowed_ips": ["192.0.2.1", "2001:db8::1"]}, format="json"
    )

    assert response.status_code == 200, response.content
    assert response.json()["scopes"] == ["executions:read"]
    assert response.json()["allowed_ips"] == ["192.0.2.1/32", "2001:db8::1/128"]
    event = AuditEvent.objects.get(key_id=row.pk, action="changed")
    assert event.changes == {
        "scopes": [BOTH, ["executions:read"]],
        "allowed_ips": [[], ["192.0.2.1/32", "2001:db8::1/128"]],
    }
    assert event.actor_username == "admin-a"


@pytest.mark.parametrize("url, scope_fields", KINDS)
def test_the_same_restrictions_in_another_spelling_change_nothing(admin_client, a_key, url, scope_fields):
    row, detail = a_key
    admin_client.patch(detail, {"allowed_ips": ["203.0.113.7"]}, format="json")
    before = AuditEvent.objects.count()

    response = admin_client.patch(
        detail, {"scopes": ["executions:read", "deployments:execute"], "allowed_ips": ["203.0.113.7/32"]}, format="json"
    )

    assert response.status_code == 200
    assert AuditEvent.objects.count() == before


@pytest.mark.parametrize("url, scope_fields", KINDS)
def test_clearing_allowed_ips_allows_any_address_again(admin_client, a_key, url, scope_fields):
    row, detail = a_key
    admin_client.patch(detail, {"allowed_ips": ["203.0.113.7"]}, format="json")
    assert admin_client.patch(detail, {"allowed_ips": []}, format="json").json()["allowed_ips"] == []
    assert model_for(url).objects.get(pk=row.pk).allowed_ips == []


def test_creating_audits_the_restrictions(admin_client, deployment_a1):
    body = admin_client.post(
        DEPLOYMENT_KEYS, {"name": "r", "scopes": ["executions:read"], "allowed_ips": ["203.0.113.7"]}, format="json"
    ).json()
    changes = AuditEvent.objects.get(key_id=body["id"], action="created").changes
    assert changes["scopes"] == [None, ["executions:read"]]
    assert changes["allowed_ips"] == [None, ["203.0.113.7/32"]]


# Bad input -----------------------------------------------------------------------------


BAD_SCOPES = [
    pytest.param([], id="empty"),
    pytest.param(["deployments:delete"], id="unknown"),
    pytest.param(["deployments:execute", "admin"], id="one-unknown"),
    pytest.param("deployments:execute", id="a-string"),
    pytest.param({"deployments:execute": True}, id="an-object"),
    pytest.param(None, id="null"),
    pytest.param(7, id="a-number"),
    pytest.param([["executions:read"]], id="nested"),
]
BAD_ALLOWED_IPS = [
    pytest.param("203.0.113.7", id="a-string"),
    pytest.param({"ip": "203.0.113.7"}, id="an-object"),
    pytest.param(None, id="null"),
    pytest.param([203], id="a-number"),
    pytest.param(["203.0.113.300"], id="invalid-address"),
    pytest.param(["10.0.0.5/8"], id="host-bits-set"),
    pytest.param(["10.0.0.0/33"], id="prefix-too-long"),
    pytest.param(["::ffff:203.0.113.7"], id="ipv4-mapped"),
    pytest.param([f"198.51.100.{n}" for n in range(101)], id="101-entries"),
]


@pytest.mark.parametrize("url, scope_fields", KINDS)
@pytest.mark.parametrize("field, value", [*[("scopes", v) for v in BAD_SCOPES], *[("allowed_ips", v) for v in BAD_ALLOWED_IPS]])
def test_bad_restrictions_are_a_400_naming_the_field_on_create(admin_client, deployment_a1, url, scope_fields, field, value):
    response = admin_client.post(url, {"name": "bad", field: value, **scope_fields}, format="json")

    assert response.status_code == 400, response.content
    body = response.json()
    assert list(body) == [field]
    assert all(isinstance(message, str) and message for message in body[field])
    assert not model_for(url).objects.exists()


@pytest.mark.parametrize("url, scope_fields", KINDS)
@pytest.mark.parametrize("field, value", [*[("scopes", v) for v in BAD_SCOPES], *[("allowed_ips", v) for v in BAD_ALLOWED_IPS]])
def test_bad_restrictions_are_a_400_naming_the_field_on_patch(admin_client, a_key, url, scope_fields, field, value):
    row, detail = a_key
    response = admin_client.patch(detail, {field: value}, format="json")

    assert response.status_code == 400, response.content
    assert list(response.json()) == [field]
    row.refresh_from_db()
    assert (row.scopes, row.allowed_ips) == (BOTH, [])


def test_the_message_names_the_bad_entry_and_the_known_scopes(admin_client, deployment_a1):
    body = admin_client.post(
        DEPLOYMENT_KEYS, {"name": "bad", "scopes": ["deployments:delete"], "allowed_ips": ["nope"]}, format="json"
    ).json()
    assert body == {
        "scopes": ["“deployments:delete” is not a scope; the scopes are: deployments:execute, executions:read."],
        "allowed_ips": ["“nope” is not an IPv4 or IPv6 address or network."],
    }
    body = admin_client.post(DEPLOYMENT_KEYS, {"name": "bad", "allowed_ips": ["10.0.0.5/8"]}, format="json").json()
    assert body == {
        "allowed_ips": ["“10.0.0.5/8” has host bits set: write the address alone, or the network 10.0.0.0/8."]
    }


# previous_key_expires_at --------------------------------------------------------------


@pytest.mark.parametrize("url, scope_fields", KINDS)
def test_previous_key_expires_at_says_until_when_the_replaced_secret_works(admin_client, a_key, url, scope_fields):
    row, detail = a_key
    assert admin_client.get(detail).json()["previous_key_expires_at"] is None

    rotated = admin_client.post(f"{detail}rotate/", {"grace_period_seconds": 3600}, format="json").json()
    until = parse_datetime(rotated["previous_key_expires_at"])
    assert timedelta(seconds=3590) < until - timezone.now() <= timedelta(seconds=3600)
    assert parse_datetime(admin_client.get(detail).json()["previous_key_expires_at"]) == until
    listed = next(item for item in admin_client.get(url).json()["results"] if item["id"] == str(row.pk))
    assert parse_datetime(listed["previous_key_expires_at"]) == until

    with mock.patch("django.utils.timezone.now", return_value=until + timedelta(seconds=1)):
        assert admin_client.get(detail).json()["previous_key_expires_at"] is None


@pytest.mark.parametrize("url, scope_fields", KINDS)
def test_previous_key_expires_at_is_null_after_a_rotation_without_grace_or_a_revocation(
    admin_client, a_key, url, scope_fields
):
    row, detail = a_key
    assert admin_client.post(f"{detail}rotate/", {}, format="json").json()["previous_key_expires_at"] is None

    admin_client.post(f"{detail}rotate/", {"grace_period_seconds": 600}, format="json")
    assert admin_client.post(f"{detail}revoke/").json()["previous_key_expires_at"] is None


def test_a_later_rotation_ends_the_earlier_grace_and_shows_its_own(admin_client, deployment_a1):
    row, _ = issue_deployment_key(deployment_a1, name="twice")
    key_rotate(key=row, actor=None, grace_period_seconds=7200)
    key_rotate(key=row, actor=None, grace_period_seconds=60)

    shown = parse_datetime(admin_client.get(f"{DEPLOYMENT_KEYS}{row.pk}/").json()["previous_key_expires_at"])
    assert shown - timezone.now() <= timedelta(seconds=60)


def test_the_list_reads_previous_key_expires_at_without_a_query_per_key(admin_client, deployment_a1):
    def rotated_keys(count: int) -> None:
        for _ in range(count):
            row, _ = issue_deployment_key(deployment_a1, name=f"k{DeploymentKey.objects.count()}")
            key_rotate(key=row, actor=None, grace_period_seconds=600)

    def list_queries() -> int:
        with CaptureQueriesContext(connection) as captured:
            body = admin_client.get(DEPLOYMENT_KEYS).json()
        assert all(item["previous_key_expires_at"] for item in body["results"])
        return len(captured)

    rotated_keys(1)
    one = list_queries()
    rotated_keys(4)
    assert list_queries() == one
