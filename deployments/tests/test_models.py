"""Deployments and executions, with the constraints held by the database."""

import uuid

import pytest
from django.core.exceptions import ValidationError
from django.db import IntegrityError, connection, transaction

from deployments.models import Deployment, Execution
from deployments.tests.factories import DeploymentFactory, ExecutionFactory

pytestmark = pytest.mark.django_db


def test_a_deployment_is_created_with_only_the_contract_fields(org_a):
    deployment = Deployment.objects.create(
        organization=org_a, slug="summarize", name="Summarize", description="Sums up.", is_active=True
    )

    deployment.refresh_from_db()
    assert deployment.is_active is True
    assert deployment.runner == "echo"
    assert deployment.created_at is not None
    assert deployment.modified_at is not None
    assert str(deployment) == "org-a/summarize"


def test_a_deployment_defaults_to_active_with_an_empty_description(org_a):
    deployment = Deployment.objects.create(organization=org_a, slug="classify", name="Classify")

    assert deployment.is_active is True
    assert deployment.description == ""


def test_deployment_slug_is_unique_per_organization(org_a):
    DeploymentFactory(organization=org_a, slug="summarize")

    with pytest.raises(IntegrityError), transaction.atomic():
        Deployment.objects.create(organization=org_a, slug="summarize", name="Again")

    assert Deployment.objects.filter(organization=org_a, slug="summarize").count() == 1


def test_two_organizations_may_use_the_same_deployment_slug(org_a, org_b):
    DeploymentFactory(organization=org_a, slug="summarize")

    DeploymentFactory(organization=org_b, slug="summarize")

    assert Deployment.objects.filter(slug="summarize").count() == 2


def test_a_duplicate_slug_fails_validation_before_the_database(org_a):
    DeploymentFactory(organization=org_a, slug="summarize")

    with pytest.raises(ValidationError):
        Deployment(organization=org_a, slug="summarize", name="Again").full_clean()


@pytest.mark.parametrize("slug", ["Has Spaces", "with/slash", "dot.ted", "ünï", ""])
def test_deployment_slug_must_be_a_slug(org_a, slug):
    with pytest.raises(ValidationError) as excinfo:
        Deployment(organization=org_a, slug=slug, name="Bad").full_clean()

    assert "slug" in excinfo.value.message_dict


def test_modified_at_moves_on_save_and_created_at_does_not(org_a):
    deployment = DeploymentFactory(organization=org_a)
    created_at, modified_at = deployment.created_at, deployment.modified_at

    deployment.name = "Renamed"
    deployment.save()

    deployment.refresh_from_db()
    assert deployment.created_at == created_at
    assert deployment.modified_at >= modified_at


def test_an_execution_has_a_uuid_and_keeps_its_request_and_result(org_a):
    deployment = DeploymentFactory(organization=org_a)

    execution = Execution.objects.create(
        deployment=deployment,
        status=Execution.Status.COMPLETED,
        request={"text": "hello"},
        result={"echo": {"text": "hello"}},
        elapsed_ms=12,
        key_kind=Execution.KeyKind.GLOBAL,
        key_id=uuid.uuid4(),
        key_name="ci",
        client_ip="203.0.113.7",
    )

    execution.refresh_from_db()
    assert isinstance(execution.id, uuid.UUID)
    assert execution.request == {"text": "hello"}
    assert execution.result == {"echo": {"text": "hello"}}
    assert execution.http_status == 200
    assert execution.client_ip == "203.0.113.7"


def test_executions_are_listed_newest_first(org_a):
    deployment = DeploymentFactory(organization=org_a)
    first = ExecutionFactory(deployment=deployment)
    second = ExecutionFactory(deployment=deployment)

    listed = list(Execution.objects.filter(deployment=deployment))

    # Ties on created_at fall back to the id, so compare as sets of the order's keys.
    assert listed == sorted([first, second], key=lambda e: (e.created_at, e.id), reverse=True)


def test_executions_of_a_deployment_newest_first_have_an_index():
    with connection.cursor() as cursor:
        constraints = connection.introspection.get_constraints(cursor, Execution._meta.db_table)

    index = constraints["execution_deployment_newest"]
    assert index["index"] is True
    assert index["columns"] == ["deployment_id", "created_at"]
    assert index["orders"] == ["ASC", "DESC"]


def test_deleting_a_deployment_deletes_its_executions(org_a):
    execution = ExecutionFactory(deployment=DeploymentFactory(organization=org_a))

    execution.deployment.delete()

    assert not Execution.objects.filter(pk=execution.pk).exists()
