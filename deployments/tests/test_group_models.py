"""Deployment groups in the model layer: a group holds only its organization's deployments, through every ORM path.

A shell session runs in autocommit, where each ORM call is its own transaction;
inside a test's transaction, `transaction.atomic()` around the call plays that part.
"""

import pytest
from django.core.exceptions import ValidationError
from django.db import IntegrityError, transaction

from deployments.models import Deployment, DeploymentGroup, GroupDeployment
from deployments.tests.factories import DeploymentFactory


@pytest.fixture
def a_one(org_a):
    return DeploymentFactory(organization=org_a, slug="a-one")


@pytest.fixture
def a_two(org_a):
    return DeploymentFactory(organization=org_a, slug="a-two")


@pytest.fixture
def b_one(org_b):
    return DeploymentFactory(organization=org_b, slug="b-one")


@pytest.fixture
def production(org_a, a_one):
    group = DeploymentGroup.objects.create(organization=org_a, slug="production", name="Production")
    group.deployments.add(a_one)
    return group


def member_slugs(group: DeploymentGroup) -> list[str]:
    return sorted(GroupDeployment.objects.filter(group=group).values_list("deployment__slug", flat=True))


def test_a_group_is_created_with_only_the_contract_fields(org_a, a_one):
    group = DeploymentGroup.objects.create(organization=org_a, slug="staging", name="Staging", description="Pre-prod.")
    group.deployments.set([a_one])

    group.refresh_from_db()
    assert (group.slug, group.name, group.description) == ("staging", "Staging", "Pre-prod.")
    assert group.created_at is not None and group.modified_at is not None
    assert str(group) == "org-a/staging"
    assert member_slugs(group) == ["a-one"]
    assert list(a_one.groups.all()) == [group]


def test_a_group_slug_is_unique_per_organization(org_a, org_b, production):
    with pytest.raises(IntegrityError), transaction.atomic():
        DeploymentGroup.objects.create(organization=org_a, slug="production", name="Again")

    DeploymentGroup.objects.create(organization=org_b, slug="production", name="B's own")
    assert DeploymentGroup.objects.filter(slug="production").count() == 2


GUARDED_PATHS = [
    pytest.param(lambda group, deployment: group.deployments.add(deployment), id="add"),
    pytest.param(lambda group, deployment: group.deployments.add(deployment.pk), id="add-by-pk"),
    pytest.param(lambda group, deployment: group.deployments.set([deployment]), id="set"),
    pytest.param(lambda group, deployment: deployment.groups.add(group), id="reverse-add"),
    pytest.param(lambda group, deployment: deployment.groups.set([group]), id="reverse-set"),
    pytest.param(lambda group, deployment: GroupDeployment(group=group, deployment=deployment).save(), id="through-save"),
    pytest.param(
        lambda group, deployment: GroupDeployment.objects.create(group=group, deployment=deployment), id="through-create"
    ),
    pytest.param(
        lambda group, deployment: GroupDeployment(group=group, deployment=deployment).full_clean(), id="full-clean"
    ),
]


@pytest.mark.parametrize("link", GUARDED_PATHS)
def test_a_group_cannot_hold_another_organizations_deployment(production, b_one, link):
    with pytest.raises(ValidationError) as error, transaction.atomic():
        link(production, b_one)

    assert "deployments" in error.value.message_dict
    assert member_slugs(production) == ["a-one"]
    assert not GroupDeployment.objects.filter(deployment=b_one).exists()


@pytest.mark.django_db(transaction=True)
def test_set_with_a_foreign_deployment_keeps_the_old_members_in_autocommit(production, a_two, b_one):
    # transaction=True: set() runs in its own real transaction, as it does in a shell session.
    with pytest.raises(ValidationError):
        production.deployments.set([a_two, b_one])

    assert member_slugs(production) == ["a-one"]


def test_a_group_holds_its_own_organizations_deployments(production, a_two):
    production.deployments.add(a_two)
    GroupDeployment.objects.get(group=production, deployment=a_two).full_clean()
    production.full_clean()

    assert member_slugs(production) == ["a-one", "a-two"]


def test_full_clean_of_a_group_with_a_foreign_member_raises(production, b_one):
    # Such a row can only come from outside the ORM's ordinary paths (a raw bulk insert).
    GroupDeployment.objects.bulk_create([GroupDeployment(group=production, deployment=b_one)])

    with pytest.raises(ValidationError) as error:
        production.full_clean()
    assert "organization" in error.value.message_dict


def test_a_group_with_deployments_cannot_move_to_another_organization(production, org_b):
    production.organization = org_b

    with pytest.raises(ValidationError) as error:
        production.save()
    assert "organization" in error.value.message_dict
    with pytest.raises(ValidationError):
        production.full_clean()

    assert DeploymentGroup.objects.get(pk=production.pk).organization.slug == "org-a"


def test_an_empty_group_bound_to_no_key_may_move(org_a, org_b):
    group = DeploymentGroup.objects.create(organization=org_a, slug="empty", name="Empty")
    group.organization = org_b
    group.full_clean()
    group.save()

    assert DeploymentGroup.objects.get(pk=group.pk).organization == org_b


def test_a_deployment_in_a_group_cannot_move_to_another_organization(production, a_one, org_b):
    a_one.organization = org_b

    with pytest.raises(ValidationError) as error:
        a_one.save()
    assert "organization" in error.value.message_dict
    with pytest.raises(ValidationError):
        a_one.full_clean()

    assert Deployment.objects.get(pk=a_one.pk).organization.slug == "org-a"


def test_deleting_a_deployment_drops_it_from_its_groups(production, a_one, a_two):
    production.deployments.add(a_two)

    a_one.delete()

    assert member_slugs(production) == ["a-two"]


# The related managers' create(): Django saves the new row, then add()s the link, with no
# transaction of its own around the two. A refused link must not leave the row behind.


@pytest.mark.django_db(transaction=True)
def test_creating_another_organizations_deployment_through_a_group_stores_nothing(production, org_b):
    with pytest.raises(ValidationError):
        production.deployments.create(organization=org_b, slug="made-here", name="Made here")

    assert not Deployment.objects.filter(slug="made-here").exists()
    assert member_slugs(production) == ["a-one"]


@pytest.mark.django_db(transaction=True)
def test_creating_a_group_of_another_organization_from_the_deployment_side_stores_nothing(a_one, org_b):
    with pytest.raises(ValidationError):
        a_one.groups.create(organization=org_b, slug="made-here", name="Made here")

    assert not DeploymentGroup.objects.filter(slug="made-here").exists()
