"""Routes of the management API, mounted under `api/v1/orgs/<org_slug>/`: every app's viewsets, in one router.

Every path answers with and without its trailing slash, as the whole API does.
"""

from django.urls import include, re_path
from rest_framework.routers import SimpleRouter

from deployments.api import DeploymentGroupViewSet, DeploymentViewSet, ExecutionViewSet
from keys.api import AuditEventViewSet, DeploymentKeyViewSet, GlobalKeyViewSet


class OptionalSlashRouter(SimpleRouter):
    """DRF's router with `/?` for the slash: its constructor only takes True or False."""

    def __init__(self) -> None:
        super().__init__()
        self.trailing_slash = "/?"


organization_router = OptionalSlashRouter()
organization_router.register("deployments", DeploymentViewSet, basename="deployment")
organization_router.register("groups", DeploymentGroupViewSet, basename="deployment-group")
organization_router.register("global-keys", GlobalKeyViewSet, basename="global-key")
organization_router.register("executions", ExecutionViewSet, basename="execution")
organization_router.register("audit-events", AuditEventViewSet, basename="audit-event")

deployment_router = OptionalSlashRouter()
deployment_router.register("keys", DeploymentKeyViewSet, basename="deployment-key")

urlpatterns = [
    re_path(r"^deployments/(?P<deployment_slug>[^/.]+)/", include(deployment_router.urls)),
    *organization_router.urls,
]
