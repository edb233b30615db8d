"""OpenAPI for the key-authenticated client API: the two key schemes and the client views.

The client views live in keys/views.py; they are documented here, through
view extensions, so their code stays as it is.
"""

from __future__ import annotations

from typing import Any

from drf_spectacular.extensions import OpenApiAuthenticationExtension, OpenApiViewExtension
from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import OpenApiParameter, OpenApiResponse, extend_schema
from rest_framework import serializers

from keys.models import KeyFormat
from keys.scopes import ALL_SCOPES, DEPLOYMENTS_EXECUTE, EXECUTIONS_READ
from keys.serializers import KEY_FORMAT_HELP
from lib.serializers import ErrorSerializer

KEY_ERRORS = {
    401: OpenApiResponse(
        ErrorSerializer,
        description="No key (`not_authenticated`), or `invalid_key`, `key_revoked`, `key_expired`, `key_inactive`. "
        "Carries `WWW-Authenticate: Bearer`.",
    ),
    429: OpenApiResponse(ErrorSerializer, description="`rate_limited`; carries `Retry-After`."),
}
ADDRESS_ERROR = "`ip_not_allowed`: the client address is outside the key's `allowed_ips`"


def forbidden(scope: str, then: str = "") -> OpenApiResponse:
    """The 403s of a view that needs `scope`: the key's own, decided before the deployment is looked up, then `then`."""
    return OpenApiResponse(
        ErrorSerializer,
        description=f"{ADDRESS_ERROR}; `insufficient_scope`: the key lacks `{scope}` (with "
        f'`WWW-Authenticate: Bearer error="insufficient_scope", scope="{scope}"`){then}.',
    )
CLIENT_PATH = [
    OpenApiParameter("org_slug", OpenApiTypes.STR, OpenApiParameter.PATH, description="The organization's slug."),
    OpenApiParameter("deployment_slug", OpenApiTypes.STR, OpenApiParameter.PATH, description="The deployment's slug."),
]


class ApiKeyAuthenticationScheme(OpenApiAuthenticationExtension):
    """Either header carries the key; both are listed as alternatives."""

    target_class = "keys.authentication.ApiKeyAuthentication"
    name = ["apiKeyBearer", "apiKeyHeader"]

    def get_security_requirement(self, auto_schema: Any) -> list[dict[str, list]]:
        return [{"apiKeyBearer": []}, {"apiKeyHeader": []}]

    def get_security_definition(self, auto_schema: Any) -> list[dict[str, Any]]:
        return [
            {
                "type": "http",
                "scheme": "bearer",
                "description": "`Authorization: Bearer ksd_…` (a deployment key) or `ksg_…` (a global key), "
                "or the UUID of a key imported from Unstract.",
            },
            {
                "type": "apiKey",
                "in": "header",
                "name": "X-Api-Key",
                "description": "The key, for clients whose Authorization header is taken.",
            },
        ]


class ExecutionResultSerializer(serializers.Serializer):
    execution_id = serializers.UUIDField()
    # Plain strings: `status` and `kind` are enums elsewhere with other choices (keys' status, key_kind).
    status = serializers.CharField(help_text="`COMPLETED` or `FAILED`.")
    result = serializers.JSONField(allow_null=True)
    elapsed_ms = serializers.IntegerField()
    detail = serializers.CharField(required=False, help_text="FAILED only.")
    code = serializers.CharField(required=False, help_text="FAILED only: `upstream_timeout`, `upstream_error`, ….")


class KeyIntrospectionSerializer(serializers.Serializer):
    id = serializers.UUIDField()
    name = serializers.CharField()
    kind = serializers.CharField(help_text="`deployment` or `global`.")
    organization = serializers.CharField(help_text="The organization's slug.")
    key_masked = serializers.CharField()
    allow_all_deployments = serializers.BooleanField()
    deployments = serializers.ListField(
        child=serializers.CharField(),
        help_text="Slugs, sorted, of every deployment the key opens now, through its list or its groups; "
        "[] for an allow-all key.",
    )
    groups = serializers.ListField(
        child=serializers.CharField(), help_text="Slugs of the groups the key is bound to, sorted; [] for deployment keys."
    )
    scopes = serializers.ListField(child=serializers.ChoiceField(choices=ALL_SCOPES), help_text="Sorted.")
    allowed_ips = serializers.ListField(
        child=serializers.CharField(), help_text="Canonical networks the key may be used from; [] allows any address."
    )
    format = serializers.ChoiceField(choices=KeyFormat.choices, help_text=KEY_FORMAT_HELP)
    expires_at = serializers.DateTimeField(allow_null=True)


class ExecuteViewSchema(OpenApiViewExtension):
    target_class = "keys.views.ExecuteView"

    def view_replacement(self) -> type:
        class Fixed(self.target_class):  # type: ignore[name-defined]
            @extend_schema(
                summary="Execute a deployment",
                tags=["client"],
                parameters=CLIENT_PATH,
                request=OpenApiTypes.OBJECT,
                responses={
                    200: ExecutionResultSerializer,
                    400: OpenApiResponse(ErrorSerializer, description="The body is not a JSON object."),
                    **KEY_ERRORS,
                    403: forbidden(DEPLOYMENTS_EXECUTE, "; then `deployment_not_in_scope` or `deployment_inactive`"),
                    404: OpenApiResponse(ErrorSerializer, description="No such deployment for this key's organization."),
                    415: OpenApiResponse(ErrorSerializer, description="`unsupported_media_type`: send JSON."),
                    502: OpenApiResponse(ExecutionResultSerializer, description="The upstream failed."),
                    504: OpenApiResponse(ExecutionResultSerializer, description="The upstream timed out."),
                },
            )
            def post(self, *args: Any, **kwargs: Any) -> Any:
                return super().post(*args, **kwargs)

        return Fixed


class ExecutionDetailViewSchema(OpenApiViewExtension):
    target_class = "keys.views.ExecutionDetailView"

    def view_replacement(self) -> type:
        class Fixed(self.target_class):  # type: ignore[name-defined]
            @extend_schema(
                summary="Read an execution",
                tags=["client"],
                parameters=[
                    *CLIENT_PATH,
                    OpenApiParameter("execution_id", OpenApiTypes.UUID, OpenApiParameter.PATH),
                ],
                responses={
                    200: ExecutionResultSerializer,
                    **KEY_ERRORS,
                    403: forbidden(EXECUTIONS_READ),
                    404: OpenApiResponse(ErrorSerializer, description="No such execution visible to this key."),
                },
            )
            def get(self, *args: Any, **kwargs: Any) -> Any:
                return super().get(*args, **kwargs)

        return Fixed


class KeyIntrospectionViewSchema(OpenApiViewExtension):
    target_class = "keys.views.KeyIntrospectionView"

    def view_replacement(self) -> type:
        class Fixed(self.target_class):  # type: ignore[name-defined]
            @extend_schema(
                summary="Describe the calling key",
                tags=["client"],
                description="Needs no scope.",
                responses={
                    200: KeyIntrospectionSerializer,
                    **KEY_ERRORS,
                    403: OpenApiResponse(ErrorSerializer, description=ADDRESS_ERROR + "."),
                },
            )
            def get(self, *args: Any, **kwargs: Any) -> Any:
                return super().get(*args, **kwargs)

        return Fixed


class RevokedKeySerializer(KeyIntrospectionSerializer):
    revoked_at = serializers.DateTimeField(help_text="When the calling secret stopped working.")


class KeyRevokeViewSchema(OpenApiViewExtension):
    target_class = "keys.views.KeyRevokeView"

    def view_replacement(self) -> type:
        class Fixed(self.target_class):  # type: ignore[name-defined]
            @extend_schema(
                summary="Revoke the calling key",
                tags=["client"],
                request=None,
                responses={200: RevokedKeySerializer, **KEY_ERRORS},
                description="For a client that finds its own key leaked: the key is revoked for good (a secret "
                "replaced by a rotation only ends its grace). No scope needed, no body read; the organization's "
                "admins are told by email.",
            )
            def post(self, *args: Any, **kwargs: Any) -> Any:
                return super().post(*args, **kwargs)

        return Fixed
