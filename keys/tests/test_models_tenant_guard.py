"""The tenant guard in the model layer (CONTRACT §1), from plain ORM code as in `manage.py shell`.

A shell session runs in autocommit, where each ORM call is its own transaction;
inside a test's transaction, `transaction.atomic()` around the call plays that part.
"""

import pytest
from django.core.exceptions import ValidationError
from django.db import transaction

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
