"""Key introspection for API clients: GET /api/v1/key/."""

from rest_framework.request import Request
from rest_framework.response import Response

from deployments.views import ClientAPIView
from keys.verification import scope_slugs


class KeyIntrospectionView(ClientAPIView):
    def get(self, request: Request) -> Response:
        key = request.auth.key
        return Response(
            {
                "id": key.id,
                "name": key.name,
                "kind": key.kind,
                "organization": key.organization_slug,
                "key_masked": key.key_masked,
                "allow_all_deployments": key.allow_all_deployments,
                "deployments": scope_slugs(key),
                "expires_at": key.expires_at,
            }
        )
