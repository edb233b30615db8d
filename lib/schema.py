"""OpenAPI for the management API: the error shapes on every operation, the shared path parameters."""

from __future__ import annotations

from typing import Any

from drf_spectacular.extensions import OpenApiSerializerExtension
from drf_spectacular.openapi import AutoSchema
from drf_spectacular.plumbing import build_array_type, build_basic_type
from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import OpenApiParameter, OpenApiResponse

from lib.serializers import ErrorSerializer, ValidationErrorSerializer

UNAUTHORIZED = OpenApiResponse(ErrorSerializer, description="No credentials, or wrong ones (`WWW-Authenticate: Basic`).")
FORBIDDEN = OpenApiResponse(ErrorSerializer, description="A member (not an admin) tried to write.")
NOT_FOUND = OpenApiResponse(
    ErrorSerializer, description="No such object, or an organization the user is not a member of (not revealed)."
)
INVALID = OpenApiResponse(ValidationErrorSerializer, description="Invalid input: field → list of messages.")
CONFLICT = OpenApiResponse(ErrorSerializer, description="The key is revoked (code `key_revoked`); revocation is final.")

PATH_PARAMETERS = {
    "org_slug": "The organization's slug.",
    "deployment_slug": "The deployment's slug.",
}


class ManagementAutoSchema(AutoSchema):
    """Adds the error responses every management operation can give, and types the URL's slugs."""

    def get_override_parameters(self) -> list[Any]:
        parameters = list(super().get_override_parameters())
        for name, description in PATH_PARAMETERS.items():
            if f"{{{name}}}" in self.path:
                parameters.append(OpenApiParameter(name, OpenApiTypes.STR, OpenApiParameter.PATH, description=description))
        return parameters

    def get_tags(self) -> list[str]:
        return list(getattr(self.view, "schema_tags", None) or super().get_tags())

    def _get_response_bodies(self, direction: Any = "response") -> dict[str, Any]:
        # Here rather than in get_response_serializers(): @extend_schema's responses replace that one.
        responses = super()._get_response_bodies(direction)
        errors: dict[int, OpenApiResponse] = {}
        if self.method in ("POST", "PATCH", "PUT") or getattr(self.view, "action", None) == "list":
            errors[400] = INVALID
        errors[401] = UNAUTHORIZED
        if self.method not in ("GET", "HEAD", "OPTIONS"):
            errors[403] = FORBIDDEN
        errors[404] = NOT_FOUND
        for code, body in errors.items():
            if str(code) not in responses:
                responses[str(code)] = self._get_response_for_code(body, str(code), direction=direction)
        return dict(sorted(responses.items()))


class ValidationErrorExtension(OpenApiSerializerExtension):
    target_class = "lib.serializers.ValidationErrorSerializer"

    def map_serializer(self, auto_schema: AutoSchema, direction: Any) -> dict[str, Any]:
        return {
            "type": "object",
            "description": "Each offending field (or `non_field_errors`) maps to its messages; a field that "
            "holds a map or list (DRF's nested form) maps to an object of the same shape, keyed by entry.",
            "additionalProperties": {
                "oneOf": [build_array_type(build_basic_type(OpenApiTypes.STR) or {}), {"type": "object"}],
            },
        }
