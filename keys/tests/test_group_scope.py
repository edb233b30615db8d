"""What a key bound to a deployment group opens: the union of its own list and its groups' deployments, now.

Each test warms this worker's verification cache first where it matters: a
change of membership must reach a key that is already cached, without the
key's row being rewritten.
"""

import pytest

from deployments.models import GroupDeployment
from deployments.services import deployment_delete, group_create, group_delete, group_update
from deployments.tests.factories import DeploymentFactory
from keys.models import AuditEvent, GlobalApiDeploymentKey
from keys.services import key_update
from keys.tests.factories import issue_global_key
from keys.tests.helpers import assert_error, bearer, execute, execution_url


def opens(client, full_key: str, slug: str) -> bool:
    response = execute(client, "org-a", slug, full_key)
    if response.status_code == 200:
        return True
    assert_error(response, 403, "deployment_not_in_scope")
    return False


def introspect(client, full_key: str) -> dict:
    return client.get("/api/v1/key/", **bearer(full_key)).json()


def key_row_unchanged(key: GlobalApiDeploymentKey) -> bool:
    return GlobalApiDeploymentKey.objects.get(pk=key.pk).modified_at == key.modified_at


def test_a_key_bound_to_a_group_opens_what_the_group_holds_and_nothing_else(client, grouped_key_a):
    _, full_key = grouped_key_a

    assert opens(client, full_key, "a-one")
    assert not opens(client, full_key, "a-two")
    assert not opens(client, full_key, "a-three")


def test_adding_a_deployment_to_the_group_opens_it_at_once_without_touching_the_key(
    client, grouped_key_a, group_a, deployment_a1, deployment_a2
):
    key, full_key = grouped_key_a
    assert not opens(client, full_key, "a-two")  # now cached as not in scope

    group_update(group=group_a, actor=None, deployments=[deployment_a1, deployment_a2])

    assert opens(client, full_key, "a-two")
    assert key_row_unchanged(key)
    assert not AuditEvent.objects.filter(key_id=key.pk).exclude(action="created").exists()


def test_removing_a_deployment_from_the_group_closes_it_at_once(client, grouped_key_a, group_a, deployment_a2):
    _, full_key = grouped_key_a
    assert opens(client, full_key, "a-one")

    group_update(group=group_a, actor=None, deployments=[deployment_a2])

    assert not opens(client, full_key, "a-one")
    assert opens(client, full_key, "a-two")


def test_a_deployment_created_into_a_group_opens_to_its_keys(client, org_a, grouped_key_a, group_a, deployment_a1):
    _, full_key = grouped_key_a
    assert_error(execute(client, "org-a", "brand-new", full_key), 404, "not_found")

    brand_new = DeploymentFactory(organization=org_a, slug="brand-new")
    group_update(group=group_a, actor=None, deployments=[deployment_a1, brand_new])

    assert opens(client, full_key, "brand-new")


@pytest.mark.parametrize(
    "change",
    [
        pytest.param(lambda group, deployment: group.deployments.add(deployment), id="group.deployments.add"),
        pytest.param(lambda group, deployment: deployment.groups.add(group), id="deployment.groups.add"),
        pytest.param(lambda group, deployment: GroupDeployment.objects.create(group=group, deployment=deployment), id="through-create"),
    ],
)
def test_a_shell_change_of_membership_reaches_cached_keys_too(client, grouped_key_a, group_a, deployment_a2, change):
    _, full_key = grouped_key_a
    assert not opens(client, full_key, "a-two")

    change(group_a, deployment_a2)

    assert opens(client, full_key, "a-two")
    GroupDeployment.objects.get(group=group_a, deployment=deployment_a2).delete()
    assert not opens(client, full_key, "a-two")


def test_deleting_the_group_closes_its_deployments_and_a_key_left_with_nothing_opens_nothing(
    client, grouped_key_a, group_a, admin_a
):
    key, full_key = grouped_key_a
    assert opens(client, full_key, "a-one")

    group_delete(group=group_a, actor=admin_a, ip_address="192.0.2.1")

    assert not opens(client, full_key, "a-one")
    key.refresh_from_db()
    assert not key.groups.exists() and not key.deployments.exists() and key.is_active
    assert introspect(client, full_key)["groups"] == [] and introspect(client, full_key)["deployments"] == []
    event = AuditEvent.objects.get(key_id=key.pk, action="changed")
    assert (event.changes, event.actor_username, event.ip_address) == (
        {"groups": [["production"], []]}, "admin-a", "192.0.2.1"
    )


def test_deleting_one_group_leaves_what_the_key_opens_otherwise(client, org_a, group_a, deployment_a1, deployment_a2):
    staging = group_create(organization=org_a, slug="staging", name="Staging", deployments=[deployment_a2], actor=None)
    _, full_key = issue_global_key(org_a, name="two groups", groups=[group_a, staging])

    group_delete(group=staging, actor=None)

    assert opens(client, full_key, "a-one") and not opens(client, full_key, "a-two")


def test_a_key_opens_the_union_of_its_list_and_its_groups(client, org_a, group_a, deployment_a2, deployment_a3):
    key, full_key = issue_global_key(org_a, name="union", groups=[group_a], deployments=[deployment_a2])

    assert [opens(client, full_key, slug) for slug in ("a-one", "a-two", "a-three")] == [True, True, False]
    assert introspect(client, full_key)["deployments"] == ["a-one", "a-two"]
    # Leaving the list keeps what the group opens, and the other way round.
    key_update(key=key, actor=None, deployments=[])
    assert [opens(client, full_key, slug) for slug in ("a-one", "a-two")] == [True, False]


def test_a_deployment_in_several_of_the_keys_groups_and_on_its_list_opens_once(client, org_a, group_a, deployment_a1):
    twin = group_create(organization=org_a, slug="twin", name="Twin", deployments=[deployment_a1], actor=None)
    _, full_key = issue_global_key(org_a, name="overlap", groups=[group_a, twin], deployments=[deployment_a1])

    assert opens(client, full_key, "a-one")
    assert introspect(client, full_key)["deployments"] == ["a-one"]


def test_a_deployment_reached_through_a_warm_key_is_judged_by_its_groups_too(client, org_a, grouped_key_a, group_a, deployment_a1, deployment_a2):
    """The first request caches the key; the next names another deployment, which the cached key must judge."""
    _, full_key = grouped_key_a
    group_update(group=group_a, actor=None, deployments=[deployment_a1, deployment_a2])
    assert opens(client, full_key, "a-one")  # the key is now cached, a-two is not

    assert opens(client, full_key, "a-two")
    assert not opens(client, full_key, "a-three")


def test_an_inactive_deployment_in_a_group_is_deployment_inactive(client, grouped_key_a, deployment_a1):
    _, full_key = grouped_key_a
    deployment_a1.is_active = False
    deployment_a1.save()

    assert_error(execute(client, "org-a", "a-one", full_key), 403, "deployment_inactive")


def test_deleting_a_deployment_drops_it_from_its_groups_audited(client, grouped_key_a, group_a, deployment_a1, deployment_a2):
    _, full_key = grouped_key_a
    group_update(group=group_a, actor=None, deployments=[deployment_a1, deployment_a2])

    deployment_delete(deployment=deployment_a1, actor=None)

    assert list(group_a.deployments.values_list("slug", flat=True)) == ["a-two"]
    event = AuditEvent.objects.filter(group="production", action="changed").first()
    assert event.changes == {"deployments": [["a-one", "a-two"], ["a-two"]]}
    assert opens(client, full_key, "a-two")


def test_an_execution_is_visible_to_a_key_through_its_group_and_no_longer_once_it_leaves(
    client, grouped_key_a, group_a, deployment_a2
):
    _, full_key = grouped_key_a
    execution_id = execute(client, "org-a", "a-one", full_key).json()["execution_id"]
    url = execution_url("org-a", "a-one", execution_id)
    assert client.get(url, **bearer(full_key)).status_code == 200

    group_update(group=group_a, actor=None, deployments=[deployment_a2])

    assert_error(client.get(url, **bearer(full_key)), 404, "not_found")


def test_introspection_lists_what_the_groups_open_now(client, org_a, grouped_key_a, group_a, deployment_a1, deployment_a3):
    _, full_key = grouped_key_a
    assert (introspect(client, full_key)["deployments"], introspect(client, full_key)["groups"]) == (
        ["a-one"], ["production"]
    )

    group_update(group=group_a, actor=None, deployments=[deployment_a3, deployment_a1])
    group_create(organization=org_a, slug="empty", name="Empty", actor=None)

    body = introspect(client, full_key)
    assert (body["deployments"], body["groups"], body["allow_all_deployments"]) == (
        ["a-one", "a-three"], ["production"], False
    )
