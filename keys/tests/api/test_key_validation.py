"""Every rule for key input through the management API, one at a time: each a 400 naming its field."""

from datetime import timedelta
from unittest import mock

import pytest
from django.utils import timezone

from keys.models import DeploymentKey, GlobalApiDeploymentKey
from keys.tests.factories import issue_deployment_key, issue_global_key
from keys.tests.helpers import ORG_A

DEPLOYMENT_KEYS = f"{ORG_A}/deployments/a-one/keys/"
GLOBAL_KEYS = f"{ORG_A}/global-keys/"


def create_global(client, **body):
    body.setdefault("allow_all_deployments", True)
    return client.post(GLOBAL_KEYS, body, format="json")


# name ------------------------------------------------------------------------


@pytest.mark.parametrize("url", [DEPLOYMENT_KEYS, GLOBAL_KEYS])
def test_name_is_required(admin_client, deployment_a1, url):
    response = admin_client.post(url, {"allow_all_deployments": True} if url == GLOBAL_KEYS else {}, format="json")
    assert response.status_code == 400
    assert "name" in response.json()


@pytest.mark.parametrize("name", ["", "   ", "x" * 101, None, 12, ["a"]])
def test_a_bad_name_is_rejected(admin_client, deployment_a1, name):
    response = admin_client.post(DEPLOYMENT_KEYS, {"name": name}, format="json")
    assert response.status_code == 400
    assert list(response.json()) == ["name"]
    assert not DeploymentKey.objects.exists()


def test_name_is_trimmed_and_100_characters_fit(admin_client, deployment_a1):
    response = admin_client.post(DEPLOYMENT_KEYS, {"name": "  " + "x" * 100 + "  "}, format="json")
    assert response.status_code == 201
    assert response.json()["name"] == "x" * 100


def test_deployment_key_names_are_unique_per_deployment_regardless_of_case(admin_client, deployment_a1, deployment_a2):
    assert admin_client.post(DEPLOYMENT_KEYS, {"name": "CI"}, format="json").status_code == 201
    response = admin_client.post(DEPLOYMENT_KEYS, {"name": " ci "}, format="json")
    assert response.status_code == 400
    assert list(response.json()) == ["name"]
    # Another deployment may use the name.
    assert admin_client.post(f"{ORG_A}/deployments/a-two/keys/", {"name": "ci"}, format="json").status_code == 201


def test_global_key_names_are_unique_per_organization_regardless_of_case(admin_client, other_admin_client, org_a, org_b):
    assert create_global(admin_client, name="Ops").status_code == 201
    response = create_global(admin_client, name="OPS")
    assert response.status_code == 400
    assert list(response.json()) == ["name"]
    other = other_admin_client.post("/api/v1/orgs/org-b/global-keys/", {"name": "ops", "allow_all_deployments": True}, format="json")
    assert other.status_code == 201


def test_a_revoked_key_keeps_its_name(admin_client, deployment_a1):
    created = admin_client.post(DEPLOYMENT_KEYS, {"name": "old"}, format="json").json()
    admin_client.post(f"{DEPLOYMENT_KEYS}{created['id']}/revoke/")
    response = admin_client.post(DEPLOYMENT_KEYS, {"name": "OLD"}, format="json")
    assert response.status_code == 400
    assert "name" in response.json()
    # Deleting it frees the name.
    assert admin_client.delete(f"{DEPLOYMENT_KEYS}{created['id']}/").status_code == 204
    assert admin_client.post(DEPLOYMENT_KEYS, {"name": "OLD"}, format="json").status_code == 201


def test_renaming_onto_a_taken_name_is_rejected(admin_client, deployment_a1):
    issue_deployment_key(deployment_a1, name="first")
    second, _ = issue_deployment_key(deployment_a1, name="second")
    response = admin_client.patch(f"{DEPLOYMENT_KEYS}{second.pk}/", {"name": "FIRST"}, format="json")
    assert response.status_code == 400
    assert "name" in response.json()
    second.refresh_from_db()
    assert second.name == "second"
    # A key may change the case of its own name.
    assert admin_client.patch(f"{DEPLOYMENT_KEYS}{second.pk}/", {"name": "Second"}, format="json").status_code == 200


@pytest.mark.django_db(transaction=True)
@pytest.mark.parametrize("kind", ["deployment", "global"])
def test_a_name_race_that_reaches_the_database_is_a_400(admin_client, deployment_a1, kind):
    """The service's pre-check is patched out, so only the unique constraint can catch the duplicate."""
    if kind == "deployment":
        issue_deployment_key(deployment_a1, name="racer")
        url, body = DEPLOYMENT_KEYS, {"name": "RACER"}
    else:
        issue_global_key(deployment_a1.organization, name="racer", allow_all_deployments=True)
        url, body = GLOBAL_KEYS, {"name": "RACER", "allow_all_deployments": True}
    with mock.patch("keys.services._name_taken", return_value=False):
        response = admin_client.post(url, body, format="json")
    assert response.status_code == 400
    assert "name" in response.json()
    model = DeploymentKey if kind == "deployment" else GlobalApiDeploymentKey
    assert model.objects.count() == 1


# scope -----------------------------------------------------------------------


def test_a_global_key_needs_allow_all_or_a_deployment(admin_client, org_a):
    response = admin_client.post(GLOBAL_KEYS, {"name": "nothing"}, format="json")
    assert response.status_code == 400
    assert "deployments" in response.json()
    response = admin_client.post(GLOBAL_KEYS, {"name": "nothing", "deployments": []}, format="json")
    assert response.status_code == 400
    assert not GlobalApiDeploymentKey.objects.exists()


def test_allow_all_defaults_to_false(admin_client, deployment_a1):
    response = admin_client.post(GLOBAL_KEYS, {"name": "one", "deployments": ["a-one"]}, format="json")
    assert response.status_code == 201
    assert response.json()["allow_all_deployments"] is False
    assert response.json()["deployments"] == ["a-one"]


def test_allow_all_with_a_list_is_rejected(admin_client, deployment_a1):
    response = create_global(admin_client, name="both", deployments=["a-one"])
    assert response.status_code == 400
    assert "deployments" in response.json()
    assert not GlobalApiDeploymentKey.objects.exists()


def test_an_unknown_slug_and_another_organizations_slug_get_the_same_message(admin_client, deployment_a1, deployment_b1):
    unknown = admin_client.post(GLOBAL_KEYS, {"name": "x", "deployments": ["zzz-1"]}, format="json")
    foreign = admin_client.post(GLOBAL_KEYS, {"name": "x", "deployments": ["b-one"]}, format="json")
    assert unknown.status_code == foreign.status_code == 400
    assert unknown.json()["deployments"][0].replace("zzz-1", "b-one") == foreign.json()["deployments"][0]
    assert not GlobalApiDeploymentKey.objects.exists()


def test_deployments_are_stored_and_shown_sorted(admin_client, deployment_a1, deployment_a2, deployment_a3):
    response = admin_client.post(
        GLOBAL_KEYS, {"name": "three", "deployments": ["a-two", "a-one", "a-three", "a-one"]}, format="json"
    )
    assert response.status_code == 201
    assert response.json()["deployments"] == ["a-one", "a-three", "a-two"]


@pytest.mark.parametrize("deployments", ["a-one", [1], {"a": 1}, None])
def test_deployments_must_be_a_list_of_slugs(admin_client, deployment_a1, deployments):
    response = admin_client.post(GLOBAL_KEYS, {"name": "x", "deployments": deployments}, format="json")
    assert response.status_code == 400
    assert "deployments" in response.json()


def test_patching_to_allow_all_empties_the_list(admin_client, global_selected_key_a):
    key, _ = global_selected_key_a
    response = admin_client.patch(f"{GLOBAL_KEYS}{key.pk}/", {"allow_all_deployments": True}, format="json")
    assert response.status_code == 200
    assert response.json()["allow_all_deployments"] is True
    assert response.json()["deployments"] == []
    assert key.deployments.count() == 0


def test_patching_a_list_onto_an_allow_all_key_is_rejected(admin_client, global_all_key_a, deployment_a1):
    key, _ = global_all_key_a
    response = admin_client.patch(f"{GLOBAL_KEYS}{key.pk}/", {"deployments": ["a-one"]}, format="json")
    assert response.status_code == 400
    assert "deployments" in response.json()
    response = admin_client.patch(
        f"{GLOBAL_KEYS}{key.pk}/", {"allow_all_deployments": False, "deployments": ["a-one"]}, format="json"
    )
    assert response.status_code == 200
    assert response.json()["deployments"] == ["a-one"]


@pytest.mark.parametrize("body", [{"allow_all_deployments": False}, {"deployments": []}])
def test_patching_a_global_key_to_an_empty_scope_is_rejected(admin_client, global_all_key_a, global_selected_key_a, body):
    key = global_all_key_a[0] if "allow_all_deployments" in body else global_selected_key_a[0]
    response = admin_client.patch(f"{GLOBAL_KEYS}{key.pk}/", body, format="json")
    assert response.status_code == 400
    assert "deployments" in response.json()


def test_patching_the_name_of_a_key_whose_deployments_were_deleted_still_works(admin_client, global_selected_key_a):
    key, _ = global_selected_key_a
    key.deployments.clear()
    response = admin_client.patch(f"{GLOBAL_KEYS}{key.pk}/", {"name": "orphan"}, format="json")
    assert response.status_code == 200


def test_a_deployment_key_has_no_scope_fields(admin_client, deployment_key_a1):
    key, _ = deployment_key_a1
    response = admin_client.patch(f"{DEPLOYMENT_KEYS}{key.pk}/", {"allow_all_deployments": True}, format="json")
    assert response.status_code == 400
    assert "allow_all_deployments" in response.json()


# expires_at, rate limit -----------------------------------------------------


@pytest.mark.parametrize("expires_at", ["2001-01-01T00:00:00Z", "now"])
def test_expires_at_must_be_in_the_future(admin_client, deployment_a1, expires_at):
    value = timezone.now().isoformat() if expires_at == "now" else expires_at
    response = admin_client.post(DEPLOYMENT_KEYS, {"name": "x", "expires_at": value}, format="json")
    assert response.status_code == 400
    assert list(response.json()) == ["expires_at"]


@pytest.mark.parametrize("expires_at", ["tomorrow", 12, True])
def test_expires_at_must_be_a_time(admin_client, deployment_a1, expires_at):
    response = admin_client.post(DEPLOYMENT_KEYS, {"name": "x", "expires_at": expires_at}, format="json")
    assert response.status_code == 400
    assert list(response.json()) == ["expires_at"]


def test_expires_at_in_the_future_is_kept_in_utc_and_null_clears_it(admin_client, deployment_a1):
    response = admin_client.post(DEPLOYMENT_KEYS, {"name": "x", "expires_at": "2099-06-01T14:00:00+02:00"}, format="json")
    assert response.status_code == 201
    body = response.json()
    assert body["expires_at"] == "2099-06-01T12:00:00Z"
    response = admin_client.patch(f"{DEPLOYMENT_KEYS}{body['id']}/", {"expires_at": None}, format="json")
    assert response.status_code == 200
    assert response.json()["expires_at"] is None


def test_patching_expires_at_into_the_past_is_rejected(admin_client, deployment_key_a1):
    key, _ = deployment_key_a1
    past = (timezone.now() - timedelta(minutes=1)).isoformat()
    response = admin_client.patch(f"{DEPLOYMENT_KEYS}{key.pk}/", {"expires_at": past}, format="json")
    assert response.status_code == 400
    assert list(response.json()) == ["expires_at"]


@pytest.mark.parametrize("limit", [-1, "10", 1.5, True, 2**31])
def test_rate_limit_must_be_a_non_negative_integer(admin_client, deployment_a1, limit):
    response = admin_client.post(DEPLOYMENT_KEYS, {"name": "x", "rate_limit_per_minute": limit}, format="json")
    assert response.status_code == 400
    assert list(response.json()) == ["rate_limit_per_minute"]


@pytest.mark.parametrize("limit", [0, 100, None])
def test_rate_limit_accepts_zero_a_number_or_null(admin_client, deployment_a1, limit):
    response = admin_client.post(DEPLOYMENT_KEYS, {"name": "x", "rate_limit_per_minute": limit}, format="json")
    assert response.status_code == 201
    assert response.json()["rate_limit_per_minute"] == limit


@pytest.mark.parametrize(("field", "value"), [("is_active", "yes"), ("is_active", 1), ("description", 5)])
def test_wrong_types_are_rejected(admin_client, deployment_a1, field, value):
    response = admin_client.post(DEPLOYMENT_KEYS, {"name": "x", field: value}, format="json")
    assert response.status_code == 400
    assert list(response.json()) == [field]


# grace ---------------------------------------------------------------------


@pytest.mark.parametrize("grace", [-1, 604801, "60", 1.5, None, True])
def test_grace_must_be_an_integer_from_0_to_604800(admin_client, deployment_key_a1, grace):
    key, _ = deployment_key_a1
    digest = key.digest
    response = admin_client.post(f"{DEPLOYMENT_KEYS}{key.pk}/rotate/", {"grace_period_seconds": grace}, format="json")
    assert response.status_code == 400
    assert list(response.json()) == ["grace_period_seconds"]
    key.refresh_from_db()
    assert key.digest == digest


@pytest.mark.parametrize("grace", [0, 604800])
def test_grace_bounds_are_accepted(admin_client, deployment_key_a1, grace):
    key, _ = deployment_key_a1
    response = admin_client.post(f"{DEPLOYMENT_KEYS}{key.pk}/rotate/", {"grace_period_seconds": grace}, format="json")
    assert response.status_code == 200


# PATCH only what it may --------------------------------------------------------


@pytest.mark.parametrize(
    "field",
    ["id", "key", "key_masked", "digest", "status", "revoked_at", "last_used_at", "created_by", "created_at", "deployment"],
)
def test_patch_rejects_fields_it_may_not_change(admin_client, deployment_key_a1, field):
    key, _ = deployment_key_a1
    before = DeploymentKey.objects.filter(pk=key.pk).values().get()
    response = admin_client.patch(f"{DEPLOYMENT_KEYS}{key.pk}/", {field: "x"}, format="json")
    assert response.status_code == 400
    assert field in response.json()
    assert DeploymentKey.objects.filter(pk=key.pk).values().get() == before


def test_create_rejects_unknown_fields(admin_client, deployment_a1):
    response = admin_client.post(DEPLOYMENT_KEYS, {"name": "x", "key": "chosen-by-me"}, format="json")
    assert response.status_code == 400
    assert "key" in response.json()
    assert not DeploymentKey.objects.exists()


def test_patch_changes_only_the_named_fields(admin_client, deployment_key_a1):
    key, _ = deployment_key_a1
    response = admin_client.patch(
        f"{DEPLOYMENT_KEYS}{key.pk}/",
        {"description": "new words", "rate_limit_per_minute": 5},
        format="json",
    )
    assert response.status_code == 200
    body = response.json()
    assert (body["name"], body["description"], body["rate_limit_per_minute"]) == ("a-one key", "new words", 5)
    key.refresh_from_db()
    assert (key.description, key.rate_limit_per_minute) == ("new words", 5)
