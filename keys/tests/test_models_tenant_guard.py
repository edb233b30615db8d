"""The tenant guard in the model layer, from plain ORM code as in `manage.py shell`.

A shell session runs in autocommit, where each ORM call is its own transaction;
inside a test's transaction, `transaction.atomic()` around the call plays that part.
"""

import pytest
from django.core.exceptions import ValidationError
from django.db import transaction

from deployments.models import Deployment
from keys.models import AuditEvent, GlobalApiDeploymentKey, GlobalKeyDeployment
from keys.tests.factories import issue_global_key


def linked_slugs(key: GlobalApiDeploymentKey) -> list[str]:
    return sorted(GlobalKeyDeployment.objects.filter(key=key).values_list("deployment__slug", flat=True))


@pytest.fixture
def selected_key(org_a, deployment_a1, deployment_a2):
    row, _ = issue_global_key(org_a, name="selected", deployments=[deployment_a1])
    return row


def test_add_of_another_organizations_deployment_raises_and_stores_nothing(selected_key, deployment_b1):
    with pytest.raises(ValidationError) as error, transaction.atomic():
        selected_key.deployments.add(deployment_b1)

    assert "deployments" in error.value.message_dict
    assert linked_slugs(selected_key) == ["a-one"]


def test_add_by_primary_key_is_guarded_too(selected_key, deployment_a2, deployment_b1):
    with pytest.raises(ValidationError), transaction.atomic():
        selected_key.deployments.add(deployment_a2.pk, deployment_b1.pk)

    assert linked_slugs(selected_key) == ["a-one"]


@pytest.mark.django_db(transaction=True)
def test_set_with_another_organizations_deployment_raises_and_keeps_the_old_scope(
    selected_key, deployment_a2, deployment_b1
):
    # transaction=True: set() runs in its own real transaction, as it does in a shell session.
    with pytest.raises(ValidationError):
        selected_key.deployments.set([deployment_a2, deployment_b1])

    assert linked_slugs(selected_key) == ["a-one"]


def test_reverse_add_from_the_deployment_side_raises(selected_key, deployment_b1):
    with pytest.raises(ValidationError), transaction.atomic():
        deployment_b1.global_keys.add(selected_key)

    assert linked_slugs(selected_key) == ["a-one"]
    assert not deployment_b1.global_keys.exists()


@pytest.mark.django_db(transaction=True)
def test_reverse_set_from_the_deployment_side_raises(selected_key, deployment_b1):
    with pytest.raises(ValidationError):
        deployment_b1.global_keys.set([selected_key])

    assert not GlobalKeyDeployment.objects.filter(deployment=deployment_b1).exists()


def test_saving_the_through_row_raises(selected_key, deployment_b1):
    with pytest.raises(ValidationError):
        GlobalKeyDeployment(key=selected_key, deployment=deployment_b1).save()
    with pytest.raises(ValidationError):
        GlobalKeyDeployment.objects.create(key=selected_key, deployment=deployment_b1)

    assert linked_slugs(selected_key) == ["a-one"]


def test_full_clean_of_a_through_row_raises(selected_key, deployment_b1):
    with pytest.raises(ValidationError):
        GlobalKeyDeployment(key=selected_key, deployment=deployment_b1).full_clean()


def test_full_clean_of_a_key_with_a_foreign_link_raises(selected_key, deployment_b1):
    # Such a link can only come from outside the ORM's ordinary paths (a raw bulk insert).
    GlobalKeyDeployment.objects.bulk_create([GlobalKeyDeployment(key=selected_key, deployment=deployment_b1)])

    with pytest.raises(ValidationError) as error:
        selected_key.full_clean()
    assert "deployments" in error.value.message_dict


def test_a_key_of_the_same_organization_links_and_full_cleans(selected_key, deployment_a2):
    selected_key.deployments.add(deployment_a2)
    GlobalKeyDeployment(key=selected_key, deployment=deployment_a2).clean()
    selected_key.full_clean()

    assert linked_slugs(selected_key) == ["a-one", "a-two"]


def test_allow_all_on_a_key_with_a_list_cannot_be_saved_or_cleaned(selected_key):
    selected_key.allow_all_deployments = True

    with pytest.raises(ValidationError) as error:
        selected_key.full_clean()
    assert "allow_all_deployments" in error.value.message_dict
    with pytest.raises(ValidationError):
        selected_key.save()

    selected_key.refresh_from_db()
    assert selected_key.allow_all_deployments is False
    assert linked_slugs(selected_key) == ["a-one"]


@pytest.mark.parametrize(
    "link",
    [
        pytest.param(lambda key, deployment: key.deployments.add(deployment), id="add"),
        pytest.param(lambda key, deployment: key.deployments.set([deployment]), id="set"),
        pytest.param(lambda key, deployment: deployment.global_keys.add(key), id="reverse-add"),
        pytest.param(lambda key, deployment: GlobalKeyDeployment(key=key, deployment=deployment).save(), id="through-save"),
        pytest.param(
            lambda key, deployment: GlobalKeyDeployment(key=key, deployment=deployment).full_clean(), id="full-clean"
        ),
    ],
)
def test_an_allow_all_key_cannot_be_given_a_list(org_a, deployment_a1, link):
    key, _ = issue_global_key(org_a, name="everything", allow_all_deployments=True)

    with pytest.raises(ValidationError), transaction.atomic():
        link(key, deployment_a1)

    assert linked_slugs(key) == []


@pytest.mark.parametrize(
    "fields",
    [
        pytest.param({"allow_all_deployments": True}, id="allow-all-with-a-list"),
        pytest.param({}, id="foreign-deployment"),
    ],
)
def test_issuing_a_key_that_breaks_the_guard_stores_nothing(org_a, deployment_a1, deployment_b1, fields):
    deployments = [deployment_a1] if fields else [deployment_a1, deployment_b1]

    with pytest.raises(ValidationError):
        GlobalApiDeploymentKey.objects.issue(organization=org_a, name="bad", deployments=deployments, **fields)

    assert not GlobalApiDeploymentKey.objects.exists()
    assert not GlobalKeyDeployment.objects.exists()
    assert not AuditEvent.objects.exists()


# The related managers' create(): Django saves the new row, then add()s the link, with
# no transaction of its own around the two. A refused link must not leave the row behind.

CREATE_THROUGH_THE_RELATION = [
    pytest.param(
        lambda key, org: key.deployments.create(organization=org, slug="made-here", name="Made here"), id="create"
    ),
    pytest.param(
        lambda key, org: key.deployments.get_or_create(organization=org, slug="made-here", defaults={"name": "M"}),
        id="get-or-create",
    ),
    pytest.param(
        lambda key, org: key.deployments.update_or_create(organization=org, slug="made-here", defaults={"name": "M"}),
        id="update-or-create",
    ),
]


@pytest.mark.django_db(transaction=True)
@pytest.mark.parametrize("create", CREATE_THROUGH_THE_RELATION)
def test_creating_another_organizations_deployment_through_the_key_stores_nothing(selected_key, org_b, create):
    # transaction=True: autocommit, as in a shell session, where a half-done create() would stay committed.
    with pytest.raises(ValidationError):
        create(selected_key, org_b)

    assert not Deployment.objects.filter(slug="made-here").exists()
    assert linked_slugs(selected_key) == ["a-one"]


@pytest.mark.parametrize("create", CREATE_THROUGH_THE_RELATION)
def test_creating_another_organizations_deployment_inside_a_transaction_stores_nothing(selected_key, org_b, create):
    with pytest.raises(ValidationError):
        create(selected_key, org_b)

    assert not Deployment.objects.filter(slug="made-here").exists()
    assert linked_slugs(selected_key) == ["a-one"]


@pytest.mark.django_db(transaction=True)
def test_creating_a_key_of_another_organization_from_the_deployment_side_stores_nothing(selected_key, org_b, deployment_a1):
    with pytest.raises(ValidationError):
        deployment_a1.global_keys.create(organization=org_b, name="made here")

    assert not GlobalApiDeploymentKey.objects.filter(name="made here").exists()
    assert sorted(GlobalKeyDeployment.objects.values_list("key__name", flat=True)) == ["selected"]


@pytest.mark.django_db(transaction=True)
def test_creating_a_deployment_of_the_same_organization_through_the_key_links_it(selected_key, org_a):
    created = selected_key.deployments.create(organization=org_a, slug="made-here", name="Made here")

    assert Deployment.objects.get(slug="made-here") == created
    assert linked_slugs(selected_key) == ["a-one", "made-here"]


# The deployment's side: a deployment that keys depend on does not change organization.


def move(deployment: Deployment, organization) -> Deployment:
    deployment.organization = organization
    return deployment


def test_moving_a_deployment_linked_by_a_global_key_raises_and_stores_nothing(selected_key, deployment_a1, org_b):
    with pytest.raises(ValidationError) as error:
        move(deployment_a1, org_b).save()
    assert "organization" in error.value.message_dict
    with pytest.raises(ValidationError) as error:
        move(deployment_a1, org_b).full_clean()
    assert "organization" in error.value.message_dict

    assert Deployment.objects.get(pk=deployment_a1.pk).organization_id == selected_key.organization_id
    assert linked_slugs(selected_key) == ["a-one"]


def test_moving_a_deployment_with_deployment_keys_raises_and_stores_nothing(deployment_key_a1, org_a, org_b):
    key, _ = deployment_key_a1
    deployment = Deployment.objects.get(pk=key.deployment_id)

    with pytest.raises(ValidationError) as error:
        move(deployment, org_b).save()
    assert "organization" in error.value.message_dict
    with pytest.raises(ValidationError):
        move(deployment, org_b).full_clean()

    key.refresh_from_db()
    assert key.deployment.organization == org_a


def test_a_deployment_no_key_depends_on_may_move(org_a, org_b, deployment_a2, selected_key):
    # An allow-all key covers whatever its organization has; it does not pin a deployment.
    issue_global_key(org_a, name="everything", allow_all_deployments=True)

    move(deployment_a2, org_b).full_clean()
    deployment_a2.save()

    assert Deployment.objects.get(pk=deployment_a2.pk).organization == org_b


def test_saving_a_linked_deployment_in_its_own_organization_still_works(selected_key, deployment_a1, deployment_key_a1):
    deployment_a1.name = "Renamed"
    deployment_a1.full_clean()
    deployment_a1.save()

    assert Deployment.objects.get(pk=deployment_a1.pk).name == "Renamed"
