"""The tenant guard between global keys and deployment groups, from plain ORM code as in `manage.py shell`.

A key is bound only to its organization's groups, and an allow-all key to none;
every path (add, set, the through row, full_clean, issue) refuses with a
ValidationError and stores nothing.
"""

import pytest
from django.core.exceptions import ValidationError
from django.db import transaction

from deployments.models import DeploymentGroup
from keys.models import AuditEvent, GlobalApiDeploymentKey, GlobalKeyGroup
from keys.tests.factories import issue_global_key


@pytest.fixture
def group_a2(org_a, deployment_a2):
    return DeploymentGroup.objects.create(organization=org_a, slug="staging", name="Staging")


@pytest.fixture
def grouped_key(grouped_key_a):
    return grouped_key_a[0]


def bound_groups(key: GlobalApiDeploymentKey) -> list[str]:
    return sorted(GlobalKeyGroup.objects.filter(key=key).values_list("group__name", flat=True))


FOREIGN_LINKS = [
    pytest.param(lambda key, group: key.groups.add(group), id="add"),
    pytest.param(lambda key, group: key.groups.add(group.pk), id="add-by-pk"),
    pytest.param(lambda key, group: key.groups.set([group]), id="set"),
    pytest.param(lambda key, group: group.global_keys.add(key), id="reverse-add"),
    pytest.param(lambda key, group: group.global_keys.set([key]), id="reverse-set"),
    pytest.param(lambda key, group: GlobalKeyGroup(key=key, group=group).save(), id="through-save"),
    pytest.param(lambda key, group: GlobalKeyGroup.objects.create(key=key, group=group), id="through-create"),
    pytest.param(lambda key, group: GlobalKeyGroup(key=key, group=group).full_clean(), id="full-clean"),
]


@pytest.mark.parametrize("link", FOREIGN_LINKS)
def test_a_key_cannot_be_bound_to_another_organizations_group(grouped_key, group_b, link):
    with pytest.raises(ValidationError) as error, transaction.atomic():
        link(grouped_key, group_b)

    assert "groups" in error.value.message_dict
    assert bound_groups(grouped_key) == ["Production"]
    assert not GlobalKeyGroup.objects.filter(group=group_b).exists()


@pytest.mark.parametrize("link", FOREIGN_LINKS)
def test_an_allow_all_key_cannot_be_bound_to_a_group(org_a, group_a, link):
    key, _ = issue_global_key(org_a, name="everything", allow_all_deployments=True)

    with pytest.raises(ValidationError) as error, transaction.atomic():
        link(key, group_a)

    assert "groups" in error.value.message_dict
    assert bound_groups(key) == []


@pytest.mark.django_db(transaction=True)
def test_set_with_a_foreign_group_keeps_the_old_groups_in_autocommit(grouped_key, group_a2, group_b):
    with pytest.raises(ValidationError):
        grouped_key.groups.set([group_a2, group_b])

    assert bound_groups(grouped_key) == ["Production"]


def test_a_key_is_bound_to_its_own_organizations_groups(grouped_key, group_a2):
    grouped_key.groups.add(group_a2)
    GlobalKeyGroup.objects.get(key=grouped_key, group=group_a2).full_clean()
    grouped_key.full_clean()

    assert bound_groups(grouped_key) == ["Production", "Staging"]


def test_allow_all_on_a_key_with_groups_cannot_be_saved_or_cleaned(grouped_key):
    grouped_key.allow_all_deployments = True

    with pytest.raises(ValidationError) as error:
        grouped_key.full_clean()
    assert "allow_all_deployments" in error.value.message_dict
    with pytest.raises(ValidationError):
        grouped_key.save()

    grouped_key.refresh_from_db()
    assert grouped_key.allow_all_deployments is False
    assert bound_groups(grouped_key) == ["Production"]


def test_full_clean_of_a_key_bound_to_a_foreign_group_raises(grouped_key, group_b):
    # Such a row can only come from outside the ORM's ordinary paths (a raw bulk insert).
    GlobalKeyGroup.objects.bulk_create([GlobalKeyGroup(key=grouped_key, group=group_b)])

    with pytest.raises(ValidationError) as error:
        grouped_key.full_clean()
    assert "groups" in error.value.message_dict


@pytest.mark.parametrize(
    "fields",
    [
        pytest.param({"allow_all_deployments": True}, id="allow-all-with-a-group"),
        pytest.param({}, id="foreign-group"),
    ],
)
def test_issuing_a_key_that_breaks_the_guard_stores_nothing(org_a, group_a, group_b, fields):
    groups = [group_a] if fields else [group_a, group_b]

    with pytest.raises(ValidationError) as error:
        GlobalApiDeploymentKey.objects.issue(organization=org_a, name="bad", groups=groups, **fields)

    assert "groups" in error.value.message_dict
    assert not GlobalApiDeploymentKey.objects.exists()
    assert not GlobalKeyGroup.objects.exists()
    assert not AuditEvent.objects.filter(key_id__isnull=False).exists()


def test_issue_binds_the_groups_given(org_a, group_a, group_a2):
    key, _ = GlobalApiDeploymentKey.objects.issue(organization=org_a, name="two groups", groups=[group_a2, group_a])

    assert bound_groups(key) == ["Production", "Staging"]
    assert list(key.deployments.all()) == []


def test_a_group_bound_to_a_key_cannot_move_to_another_organization(grouped_key, group_a, org_b):
    group_a.deployments.clear()  # so only the key holds it where it is
    group_a.organization = org_b

    with pytest.raises(ValidationError) as error:
        group_a.save()
    assert "organization" in error.value.message_dict
    with pytest.raises(ValidationError):
        group_a.full_clean()

    assert DeploymentGroup.objects.get(pk=group_a.pk).organization.slug == "org-a"


@pytest.mark.django_db(transaction=True)
def test_creating_another_organizations_group_through_the_key_stores_nothing(grouped_key, org_b):
    # transaction=True: autocommit, as in a shell session, where a half-done create() would stay committed.
    with pytest.raises(ValidationError):
        grouped_key.groups.create(organization=org_b, slug="made-here", name="Made here")

    assert not DeploymentGroup.objects.filter(slug="made-here").exists()
    assert bound_groups(grouped_key) == ["Production"]


@pytest.mark.django_db(transaction=True)
def test_creating_a_key_of_another_organization_from_the_group_side_stores_nothing(grouped_key, group_a, org_b):
    with pytest.raises(ValidationError):
        group_a.global_keys.create(organization=org_b, name="made here")

    assert not GlobalApiDeploymentKey.objects.filter(name="made here").exists()
