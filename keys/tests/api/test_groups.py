"""Deployment groups through the management API, and groups on global keys (CONTRACT §5)."""

import pytest

from deployments.models import DeploymentGroup
from deployments.services import group_create
from keys.models import AuditEvent, GlobalApiDeploymentKey
from keys.tests.factories import issue_global_key
from keys.tests.helpers import ORG_A

GROUPS = f"{ORG_A}/groups/"
GLOBAL_KEYS = f"{ORG_A}/global-keys/"
GROUP_FIELDS = {"slug", "name", "description", "deployments", "created_at", "modified_at"}


# The group endpoints -----------------------------------------------------------------


def test_create_and_read_a_group(admin_client, org_a, deployment_a1, deployment_a2):
    response = admin_client.post(
        GROUPS, {"slug": "production", "name": " Production ", "deployments": ["a-two", "a-one", "a-two"]}, format="json"
    )

    assert response.status_code == 201, response.content
    body = response.json()
    assert set(body) == GROUP_FIELDS
    assert (body["slug"], body["name"], body["description"], body["deployments"]) == (
        "production", "Production", "", ["a-one", "a-two"]
    )
    group = DeploymentGroup.objects.get(organization=org_a, slug="production")
    assert sorted(group.deployments.values_list("slug", flat=True)) == ["a-one", "a-two"]
    assert admin_client.get(f"{GROUPS}production/").json() == body
    assert admin_client.get(f"{GROUPS}production").json() == body


def test_groups_are_listed_paginated_newest_first(admin_client, org_a, other_admin_client, group_b):
    for number in range(55):
        group_create(organization=org_a, slug=f"group-{number:02d}", name=f"Group {number}", actor=None)

    body = admin_client.get(GROUPS).json()

    assert set(body) == {"count", "next", "previous", "results"}
    assert (body["count"], len(body["results"])) == (55, 50)
    assert body["results"][0]["slug"] == "group-54"
    assert len(admin_client.get(GROUPS, {"page": 2}).json()["results"]) == 5
    assert [row["name"] for row in other_admin_client.get("/api/v1/orgs/org-b/groups/").json()["results"]] == [
        "B production"
    ]


def test_the_list_costs_a_fixed_number_of_queries(admin_client, org_a, deployment_a1, deployment_a2, django_assert_max_num_queries):
    for number in range(20):
        group_create(organization=org_a, slug=f"g{number}", name="G", deployments=[deployment_a1, deployment_a2], actor=None)

    with django_assert_max_num_queries(8):
        assert len(admin_client.get(GROUPS).json()["results"]) == 20


def test_patch_replaces_the_members_and_the_slug_is_fixed(admin_client, group_a, deployment_a2, deployment_a3):
    response = admin_client.patch(
        f"{GROUPS}production/", {"name": "Prod", "deployments": ["a-three", "a-two"]}, format="json"
    )
    assert response.status_code == 200
    assert (response.json()["name"], response.json()["deployments"]) == ("Prod", ["a-three", "a-two"])

    fixed = admin_client.patch(f"{GROUPS}production/", {"slug": "renamed"}, format="json")
    assert fixed.status_code == 400
    assert list(fixed.json()) == ["slug"] and "fixed" in fixed.json()["slug"][0]
    assert DeploymentGroup.objects.filter(slug="production").exists()


def test_a_patch_without_deployments_keeps_them(admin_client, group_a):
    response = admin_client.patch(f"{GROUPS}production/", {"description": "Live traffic"}, format="json")

    assert response.status_code == 200
    assert (response.json()["description"], response.json()["deployments"]) == ("Live traffic", ["a-one"])


def test_delete_removes_the_group_but_not_its_deployments(admin_client, group_a, deployment_a1):
    assert admin_client.delete(f"{GROUPS}production/").status_code == 204

    assert not DeploymentGroup.objects.filter(pk=group_a.pk).exists()
    assert admin_client.get(f"{GROUPS}production/").status_code == 404
    assert admin_client.get(f"{ORG_A}/deployments/a-one/").status_code == 200


@pytest.mark.parametrize("slug", ["", "has space", "x" * 101, 5, None, "ümlaut/x"])
def test_a_bad_slug_is_rejected(admin_client, org_a, slug):
    response = admin_client.post(GROUPS, {"slug": slug, "name": "x"}, format="json")
    assert response.status_code == 400
    assert list(response.json()) == ["slug"]
    assert not DeploymentGroup.objects.exists()


def test_slugs_are_unique_per_organization(admin_client, other_admin_client, group_a):
    response = admin_client.post(GROUPS, {"slug": "production", "name": "again"}, format="json")
    assert response.status_code == 400
    assert list(response.json()) == ["slug"]
    other = other_admin_client.post("/api/v1/orgs/org-b/groups/", {"slug": "production", "name": "x"}, format="json")
    assert other.status_code == 201


@pytest.mark.django_db(transaction=True)
def test_a_slug_race_that_reaches_the_database_is_a_400(admin_client, group_a):
    from unittest import mock

    with mock.patch("deployments.services._slug_taken", return_value=False):
        response = admin_client.post(GROUPS, {"slug": "production", "name": "again"}, format="json")
    assert response.status_code == 400
    assert list(response.json()) == ["slug"]


@pytest.mark.parametrize("name", ["", "  ", "x" * 201, None, 3])
def test_a_bad_group_name_is_rejected(admin_client, org_a, name):
    response = admin_client.post(GROUPS, {"slug": "ok", "name": name}, format="json")
    assert response.status_code == 400
    assert list(response.json()) == ["name"]


@pytest.mark.parametrize("body", [{"slug": "ok"}, {"slug": "ok", "name": "x", "deployments": "a-one"}])
def test_create_needs_a_name_and_a_list(admin_client, deployment_a1, body):
    response = admin_client.post(GROUPS, body, format="json")
    assert response.status_code == 400
    assert set(response.json()) <= {"name", "deployments"}


def test_an_unknown_deployment_and_another_organizations_read_alike(admin_client, org_a, deployment_a1, deployment_b1):
    unknown = admin_client.post(GROUPS, {"slug": "g", "name": "G", "deployments": ["zzz-1"]}, format="json")
    foreign = admin_client.post(GROUPS, {"slug": "g", "name": "G", "deployments": ["b-one"]}, format="json")

    assert unknown.status_code == foreign.status_code == 400
    assert unknown.json()["deployments"][0].replace("zzz-1", "b-one") == foreign.json()["deployments"][0]
    assert not DeploymentGroup.objects.exists()


@pytest.mark.parametrize("field", ["unknown", "created_at", "organization"])
def test_unknown_fields_are_a_400_naming_them(admin_client, group_a, field):
    created = admin_client.post(GROUPS, {"slug": "g", "name": "G", field: "x"}, format="json")
    patched = admin_client.patch(f"{GROUPS}production/", {field: "x"}, format="json")

    assert created.status_code == patched.status_code == 400
    assert list(created.json()) == list(patched.json()) == [field]


def test_another_organizations_group_is_404_through_my_url(admin_client, group_b):
    assert admin_client.get(f"{GROUPS}production/").status_code == 404
    assert admin_client.patch(f"{GROUPS}production/", {"name": "x"}, format="json").status_code == 404
    assert admin_client.delete(f"{GROUPS}production/").status_code == 404
    assert DeploymentGroup.objects.get(pk=group_b.pk).name == "B production"


@pytest.mark.parametrize(
    ("method", "body"),
    [("post", {"slug": "new", "name": "New"}), ("patch", {"name": "x"}), ("delete", None)],
)
def test_a_member_changes_nothing(member_client, group_a, method, body):
    url = GROUPS if method == "post" else f"{GROUPS}production/"
    response = getattr(member_client, method)(url, body, format="json")

    assert response.status_code == 403
    assert list(DeploymentGroup.objects.values_list("slug", "name")) == [("production", "Production")]


# Groups on global keys --------------------------------------------------------------------


def test_a_global_key_bound_to_groups_shows_them_beside_its_own_list(admin_client, org_a, group_a, deployment_a2):
    group_create(organization=org_a, slug="staging", name="Staging", actor=None)

    response = admin_client.post(
        GLOBAL_KEYS, {"name": "grouped", "groups": ["staging", "production"], "deployments": ["a-two"]}, format="json"
    )

    assert response.status_code == 201, response.content
    body = response.json()
    assert (body["groups"], body["deployments"], body["allow_all_deployments"]) == (
        ["production", "staging"], ["a-two"], False
    )
    assert admin_client.get(f"{GLOBAL_KEYS}{body['id']}/").json()["groups"] == ["production", "staging"]
    listed = admin_client.get(GLOBAL_KEYS).json()["results"]
    assert [row["groups"] for row in listed] == [["production", "staging"]]


def test_a_group_alone_is_a_scope(admin_client, group_a):
    response = admin_client.post(GLOBAL_KEYS, {"name": "by group", "groups": ["production"]}, format="json")

    assert response.status_code == 201
    assert response.json()["deployments"] == []


def test_an_empty_scope_is_rejected_with_groups_in_the_message(admin_client, group_a):
    response = admin_client.post(GLOBAL_KEYS, {"name": "nothing", "groups": [], "deployments": []}, format="json")

    assert response.status_code == 400
    assert "group" in response.json()["deployments"][0]
    assert not GlobalApiDeploymentKey.objects.exists()


def test_allow_all_with_groups_is_rejected(admin_client, group_a):
    response = admin_client.post(
        GLOBAL_KEYS, {"name": "both", "allow_all_deployments": True, "groups": ["production"]}, format="json"
    )

    assert response.status_code == 400
    assert list(response.json()) == ["groups"]
    assert not GlobalApiDeploymentKey.objects.exists()


def test_an_unknown_group_and_another_organizations_read_alike(admin_client, org_a, group_b):
    group_b.slug = "b-only"
    group_b.save(update_fields=["slug"])
    unknown = admin_client.post(GLOBAL_KEYS, {"name": "x", "groups": ["zzz-1"]}, format="json")
    foreign = admin_client.post(GLOBAL_KEYS, {"name": "x", "groups": ["b-only"]}, format="json")

    assert unknown.status_code == foreign.status_code == 400
    assert unknown.json()["groups"][0].replace("zzz-1", "b-only") == foreign.json()["groups"][0]
    assert not GlobalApiDeploymentKey.objects.exists()


@pytest.mark.parametrize("groups", ["production", [1], {"a": 1}, None])
def test_groups_must_be_a_list_of_slugs(admin_client, group_a, groups):
    response = admin_client.post(GLOBAL_KEYS, {"name": "x", "groups": groups}, format="json")
    assert response.status_code == 400
    assert "groups" in response.json()


def test_patch_replaces_the_groups_and_audits_the_change(admin_client, org_a, grouped_key_a):
    key, _ = grouped_key_a
    group_create(organization=org_a, slug="staging", name="Staging", actor=None)

    response = admin_client.patch(f"{GLOBAL_KEYS}{key.pk}/", {"groups": ["staging"]}, format="json")

    assert response.status_code == 200
    assert response.json()["groups"] == ["staging"]
    event = AuditEvent.objects.filter(key_id=key.pk, action="changed").get()
    assert event.changes == {"groups": [["production"], ["staging"]]}
    assert event.group is None


def test_patching_away_the_last_group_of_a_key_with_no_list_is_rejected(admin_client, grouped_key_a, deployment_a2):
    key, _ = grouped_key_a

    emptied = admin_client.patch(f"{GLOBAL_KEYS}{key.pk}/", {"groups": []}, format="json")
    assert emptied.status_code == 400
    assert "deployments" in emptied.json()
    swapped = admin_client.patch(f"{GLOBAL_KEYS}{key.pk}/", {"groups": [], "deployments": ["a-two"]}, format="json")
    assert swapped.status_code == 200
    assert (swapped.json()["groups"], swapped.json()["deployments"]) == ([], ["a-two"])


def test_patching_to_allow_all_empties_both_lists(admin_client, org_a, group_a, deployment_a2):
    key, _ = issue_global_key(org_a, name="mixed", groups=[group_a], deployments=[deployment_a2])

    response = admin_client.patch(f"{GLOBAL_KEYS}{key.pk}/", {"allow_all_deployments": True}, format="json")

    assert response.status_code == 200
    assert (response.json()["groups"], response.json()["deployments"]) == ([], [])
    assert not key.groups.exists() and not key.deployments.exists()
    event = AuditEvent.objects.get(key_id=key.pk, action="changed")
    assert event.changes["groups"] == [["production"], []]


def test_patching_groups_onto_an_allow_all_key_is_rejected(admin_client, global_all_key_a, group_a):
    key, _ = global_all_key_a

    response = admin_client.patch(f"{GLOBAL_KEYS}{key.pk}/", {"groups": ["production"]}, format="json")

    assert response.status_code == 400
    assert list(response.json()) == ["groups"]
    together = admin_client.patch(
        f"{GLOBAL_KEYS}{key.pk}/", {"allow_all_deployments": False, "groups": ["production"]}, format="json"
    )
    assert together.status_code == 200
    assert together.json()["groups"] == ["production"]


def test_a_deployment_key_has_no_groups(admin_client, deployment_key_a1, group_a):
    key, _ = deployment_key_a1
    response = admin_client.patch(f"{ORG_A}/deployments/a-one/keys/{key.pk}/", {"groups": ["production"]}, format="json")
    assert response.status_code == 400
    assert list(response.json()) == ["groups"]


def test_rotation_keeps_the_groups(admin_client, grouped_key_a):
    key, _ = grouped_key_a

    response = admin_client.post(f"{GLOBAL_KEYS}{key.pk}/rotate/", {}, format="json")

    assert response.status_code == 200
    assert response.json()["groups"] == ["production"]


def test_the_key_list_costs_a_fixed_number_of_queries_with_groups(
    admin_client, org_a, group_a, deployment_a1, django_assert_max_num_queries
):
    for number in range(20):
        issue_global_key(org_a, name=f"k{number}", groups=[group_a], deployments=[deployment_a1])

    with django_assert_max_num_queries(9):
        assert len(admin_client.get(GLOBAL_KEYS).json()["results"]) == 20
