"""`/api/v1/orgs/<org>/`: the organization and its key policy, each change audited."""

from datetime import timedelta

import pytest
from django.utils import timezone
from django.utils.dateparse import parse_datetime

from keys.models import AuditEvent, DeploymentKey
from keys.tests.factories import issue_deployment_key
from keys.tests.helpers import ORG_A
from organizations.models import Organization

ORGANIZATION = f"{ORG_A}/"
DEPLOYMENT_KEYS = f"{ORG_A}/deployments/a-one/keys/"
GLOBAL_KEYS = f"{ORG_A}/global-keys/"
POLICY = {"default_rate_limit_per_minute": None, "max_key_lifetime_days": None, "deactivate_unused_keys_after_days": None}


@pytest.mark.parametrize("path", [ORGANIZATION, ORG_A])
def test_a_member_reads_the_organization_and_its_policy(member_client, org_a, path):
    response = member_client.get(path)

    assert response.status_code == 200
    assert response.json() == {"slug": "org-a", "name": "Organization A", **POLICY}


def test_a_non_member_gets_404_and_an_anonymous_client_401(other_admin_client, anonymous_client, org_a):
    assert other_admin_client.get(ORGANIZATION).json()["code"] == "not_found"
    assert other_admin_client.patch(ORGANIZATION, {"max_key_lifetime_days": 1}, format="json").status_code == 404
    response = anonymous_client.get(ORGANIZATION)
    assert response.status_code == 401
    assert response["WWW-Authenticate"].startswith("Basic")
    assert anonymous_client.get("/api/v1/orgs/no-such-org/").status_code == 401


def test_a_member_may_not_change_the_policy(member_client, org_a):
    response = member_client.patch(ORGANIZATION, {"max_key_lifetime_days": 30}, format="json")

    assert response.status_code == 403
    assert Organization.objects.get(pk=org_a.pk).max_key_lifetime_days is None
    assert not AuditEvent.objects.exists()


@pytest.mark.parametrize("client_fixture", ["admin_client", "superuser_client"])
def test_an_admin_changes_the_policy_and_each_change_is_audited(request, client_fixture, org_a):
    client = request.getfixturevalue(client_fixture)
    response = client.patch(
        ORGANIZATION,
        {"default_rate_limit_per_minute": 120, "max_key_lifetime_days": 90, "deactivate_unused_keys_after_days": 30},
        format="json",
    )

    assert response.status_code == 200, response.content
    assert response.json() == {
        "slug": "org-a",
        "name": "Organization A",
        "default_rate_limit_per_minute": 120,
        "max_key_lifetime_days": 90,
        "deactivate_unused_keys_after_days": 30,
    }
    org_a.refresh_from_db()
    assert (org_a.default_rate_limit_per_minute, org_a.max_key_lifetime_days, org_a.deactivate_unused_keys_after_days) == (
        120, 90, 30,
    )  # fmt: skip
    event = AuditEvent.objects.get()
    assert (event.organization_id, event.action, event.key_kind, event.key_id, event.key_name) == (
        org_a.pk, "changed", None, None, None,
    )  # fmt: skip
    assert event.changes == {
        "default_rate_limit_per_minute": [None, 120],
        "max_key_lifetime_days": [None, 90],
        "deactivate_unused_keys_after_days": [None, 30],
    }
    assert event.actor_username == {"admin_client": "admin-a", "superuser_client": "superuser"}[client_fixture]


def test_the_policy_event_is_in_the_audit_list_with_the_key_fields_null(admin_client, org_a):
    admin_client.patch(ORGANIZATION, {"max_key_lifetime_days": 7}, format="json")
    admin_client.patch(ORGANIZATION, {"max_key_lifetime_days": None}, format="json")

    events = admin_client.get(f"{ORG_A}/audit-events/?action=changed").json()["results"]
    assert [event["changes"] for event in events] == [
        {"max_key_lifetime_days": [7, None]},
        {"max_key_lifetime_days": [None, 7]},
    ]
    assert all((e["key_kind"], e["key_id"], e["key_name"], e["actor"]) == (None, None, None, "admin-a") for e in events)


def test_an_unchanged_value_writes_no_event(admin_client, org_a):
    admin_client.patch(ORGANIZATION, {"max_key_lifetime_days": 7}, format="json")
    assert admin_client.patch(ORGANIZATION, {"max_key_lifetime_days": 7}, format="json").status_code == 200
    assert admin_client.patch(ORGANIZATION, {}, format="json").status_code == 200
    assert AuditEvent.objects.count() == 1


@pytest.mark.parametrize(
    "field, value",
    [
        ("max_key_lifetime_days", 0),
        ("max_key_lifetime_days", 3651),
        ("max_key_lifetime_days", -1),
        ("max_key_lifetime_days", "30"),
        ("max_key_lifetime_days", 30.5),
        ("max_key_lifetime_days", True),
        ("max_key_lifetime_days", [30]),
        ("deactivate_unused_keys_after_days", 0),
        ("deactivate_unused_keys_after_days", 3651),
        ("deactivate_unused_keys_after_days", "never"),
        ("default_rate_limit_per_minute", -1),
        ("default_rate_limit_per_minute", 2**31),
        ("default_rate_limit_per_minute", "600"),
        ("slug", "renamed"),
        ("name", "Renamed"),
        ("created_at", "2020-01-01T00:00:00Z"),
        ("no_such_field", 1),
    ],
)
def test_a_bad_or_fixed_field_is_a_400_naming_it(admin_client, org_a, field, value):
    response = admin_client.patch(ORGANIZATION, {field: value}, format="json")

    assert response.status_code == 400, response.content
    assert list(response.json()) == [field]
    assert Organization.objects.get(pk=org_a.pk).slug == "org-a"
    assert not AuditEvent.objects.exists()


@pytest.mark.parametrize("field", ["slug", "name"])
def test_slug_and_name_are_read_only_here(admin_client, org_a, field):
    response = admin_client.patch(ORGANIZATION, {field: "x", "max_key_lifetime_days": 5}, format="json")
    assert response.json() == {field: ["This field cannot be changed."]}


@pytest.mark.parametrize("days", [1, 3650])
def test_the_bounds_are_accepted(admin_client, org_a, days):
    response = admin_client.patch(ORGANIZATION, {"max_key_lifetime_days": days, "deactivate_unused_keys_after_days": days},
                                  format="json")
    assert response.status_code == 200
    assert response.json()["max_key_lifetime_days"] == days


@pytest.mark.parametrize("method", ["put", "post", "delete"])
def test_other_methods_are_405(admin_client, org_a, method):
    assert getattr(admin_client, method)(ORGANIZATION, {}, format="json").status_code == 405


def test_the_default_rate_limit_applies_to_keys_without_their_own(admin_client, client, deployment_a1):
    from keys.tests.helpers import execute

    _, full_key = issue_deployment_key(deployment_a1, name="follows the org")
    admin_client.patch(ORGANIZATION, {"default_rate_limit_per_minute": 1}, format="json")

    assert execute(client, "org-a", "a-one", full_key).status_code == 200
    assert execute(client, "org-a", "a-one", full_key).json()["code"] == "rate_limited"


# max_key_lifetime_days, through the API ----------------------------------------------------


@pytest.fixture
def ninety_days(org_a):
    Organization.objects.filter(pk=org_a.pk).update(max_key_lifetime_days=90)


@pytest.mark.parametrize("url, extra", [(DEPLOYMENT_KEYS, {}), (GLOBAL_KEYS, {"allow_all_deployments": True})])
def test_a_new_key_without_an_expiry_expires_at_the_end_of_the_lifetime(admin_client, deployment_a1, ninety_days, url, extra):
    before = timezone.now()
    body = admin_client.post(url, {"name": "bounded", **extra}, format="json").json()

    expires_at = parse_datetime(body["expires_at"])
    assert before + timedelta(days=90) <= expires_at <= timezone.now() + timedelta(days=90)


@pytest.mark.parametrize("url, extra", [(DEPLOYMENT_KEYS, {}), (GLOBAL_KEYS, {"allow_all_deployments": True})])
def test_an_expiry_within_the_lifetime_is_kept_and_a_later_one_or_none_is_a_400(
    admin_client, deployment_a1, ninety_days, url, extra
):
    inside = (timezone.now() + timedelta(days=30)).isoformat()
    outside = (timezone.now() + timedelta(days=91)).isoformat()

    kept = admin_client.post(url, {"name": "inside", "expires_at": inside, **extra}, format="json")
    assert kept.status_code == 201
    assert parse_datetime(kept.json()["expires_at"]) == parse_datetime(inside)
    response = admin_client.post(url, {"name": "outside", "expires_at": outside, **extra}, format="json")
    assert response.status_code == 400, response.content
    assert list(response.json()) == ["expires_at"]
    assert "90 days" in response.json()["expires_at"][0]
    # On create, null asks for no expiry of its own, like leaving it out: the lifetime's end.
    defaulted = admin_client.post(url, {"name": "null", "expires_at": None, **extra}, format="json")
    assert defaulted.status_code == 201
    assert parse_datetime(defaulted.json()["expires_at"]) > timezone.now() + timedelta(days=89)


def test_a_patch_that_moves_the_expiry_past_the_lifetime_or_clears_it_is_a_400(admin_client, deployment_a1, ninety_days):
    created = admin_client.post(DEPLOYMENT_KEYS, {"name": "bounded"}, format="json").json()
    detail = f"{DEPLOYMENT_KEYS}{created['id']}/"

    for expires_at in ((timezone.now() + timedelta(days=91)).isoformat(), None):
        response = admin_client.patch(detail, {"expires_at": expires_at}, format="json")
        assert response.status_code == 400
        assert list(response.json()) == ["expires_at"]
    sooner = (timezone.now() + timedelta(days=10)).replace(microsecond=0)
    assert parse_datetime(admin_client.patch(detail, {"expires_at": sooner.isoformat()}, format="json").json()["expires_at"]) == sooner
    # A PATCH that leaves the expiry alone is not judged on it.
    assert admin_client.patch(detail, {"name": "renamed"}, format="json").status_code == 200


def test_existing_keys_are_untouched_when_the_policy_is_set(admin_client, deployment_a1):
    row, _ = issue_deployment_key(deployment_a1, name="forever")
    admin_client.patch(ORGANIZATION, {"max_key_lifetime_days": 30}, format="json")

    assert DeploymentKey.objects.get(pk=row.pk).expires_at is None
    assert admin_client.patch(f"{DEPLOYMENT_KEYS}{row.pk}/", {"description": "still forever"}, format="json").status_code == 200
    assert DeploymentKey.objects.get(pk=row.pk).expires_at is None
