"""Three trivial endpoints with the same body; only what guards them differs."""

from __future__ import annotations

from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from keys.authentication import key_auth
from keys.scopes import DEPLOYMENTS_EXECUTE
from keys.views import ClientAPIView, resolve_deployment

BODY = {"ok": True}


class NoAuthView(APIView):
    """The baseline: DRF and the middleware stack, no authentication at all."""

    authentication_classes: list = []
    permission_classes: list = []

    def get(self, request: Request, org_slug: str, deployment_slug: str) -> Response:
        # The same URL shape as the guarded rows, so the baseline differs from them in the check alone.
        return Response(BODY)


class KeyscopeView(ClientAPIView):
    """The full client key check (header, lookup, status, addresses, rate limit, scope, deployment), no Execution insert."""

    required_scope = DEPLOYMENTS_EXECUTE  # what executing needs, so every row pays the scope check

    def get(self, request: Request, org_slug: str, deployment_slug: str) -> Response:
        resolve_deployment(key_auth(request), org_slug, deployment_slug)
        return Response(BODY)


def peer_view() -> type[APIView] | None:
    """djangorestframework-api-key's HasAPIKey guarding the same body, when the package is installed."""
    try:
        from rest_framework_api_key.permissions import HasAPIKey
    except ImportError:
        return None

    class DrfApiKeyView(APIView):
        authentication_classes: list = []
        permission_classes = [HasAPIKey]

        def get(self, request: Request) -> Response:
            return Response(BODY)

    return DrfApiKeyView
