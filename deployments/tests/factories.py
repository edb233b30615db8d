import factory

from deployments.models import Deployment, Execution
from organizations.tests.factories import OrganizationFactory


class DeploymentFactory(factory.django.DjangoModelFactory[Deployment]):
    class Meta:
        model = Deployment

    organization = factory.SubFactory(OrganizationFactory)
    slug = factory.Sequence(lambda n: f"deployment-{n}")
    name = factory.LazyAttribute(lambda d: d.slug.replace("-", " ").title())
    description = ""


class ExecutionFactory(factory.django.DjangoModelFactory[Execution]):
    class Meta:
        model = Execution

    deployment = factory.SubFactory(DeploymentFactory)
    status = Execution.Status.COMPLETED
    request = factory.LazyFunction(dict)
    result = factory.LazyFunction(dict)
