"""Key introspection for API clients: GET /api/v1/key/."""

from rest_framework.request import Request
from rest_framework.response import Response

from deployments.models import Deployment
from deployments.views import ClientAPIView
from keys.models import GlobalKeyDeployment


class KeyIntrospectionView(ClientAPIView):
    def get(self, request: Request) -> Response:
        key = request.auth.key
        if key.kind == "deployment":
            deployments = list(Deployment.objects.filter(pk=key.deployment_id).values_list("slug", flat=True))
        elif key.allow_all_deployments:
            deployments = []
        else:
            deployments = sorted(
                GlobalKeyDeployment.objects.filter(key_id=key.id).values_list("deployment__slug", flat=True)
            )
        return Response(
            {
                "id": key.id,
                "name": key.name,
                "kind": key.kind,
                "organization": key.organization_slug,
                "key_masked": key.key_masked,
                "allow_all_deployments": key.allow_all_deployments,
                "deployments": deployments,
                "expires_at": key.expires_at,
            }
        )
