"""Organization resolution and permissions for the management API.

Everything under `/api/v1/orgs/<org_slug>/` answers, in this order:
anonymous → 401 (with `WWW-Authenticate: Basic`); not a member of the
organization, or no such organization → 404 (its existence is not revealed);
a `member` writing → 403; admins and superusers may do everything.
"""

from __future__ import annotations

from typing import Any

from django.db.models import QuerySet
from rest_framework import exceptions, generics, permissions, serializers, viewsets
from rest_framework.request import Request
from rest_framework.response import Response

from lib.pagination import StandardPagination
from lib.schema import ManagementAutoSchema
from organizations.models import Membership, Organization
from organizations.permissions import role_in

ORGANIZATION_NOT_FOUND = "No organization with this slug exists, or you are not a member of it."
ADMINS_ONLY = "Only an admin of this organization may do this."


class OrganizationScopedMixin(generics.GenericAPIView):
    """Resolves `self.organization` and `self.role` from the URL's `org_slug`, once per request."""

    _organization: Organization
    _role: str

    def resolve_organization(self) -> Organization:
        if not hasattr(self, "_organization"):
            organization = Organization.objects.filter(slug=self.kwargs.get("org_slug", "")).first()
            role = role_in(self.request.user, organization) if organization is not None else None
            if organization is None or role is None:
                # An unknown organization and someone else's look the same.
                raise exceptions.NotFound(ORGANIZATION_NOT_FOUND)
            self._organization, self._role = organization, role
        return self._organization

    @property
    def organization(self) -> Organization:
        return self.resolve_organization()

    @property
    def role(self) -> str:
        self.resolve_organization()
        return self._role

    def is_schema_generation(self) -> bool:
        """drf-spectacular calls get_queryset() without a request to type the path parameters."""
        return bool(getattr(self, "swagger_fake_view", False))


class IsOrganizationMember(permissions.BasePermission):
    """Members read, admins (and superusers) write."""

    message = ADMINS_ONLY

    def has_permission(self, request: Request, view: Any) -> bool:
        if not (request.user and request.user.is_authenticated):
            # DRF turns this into a 401 with the first authenticator's challenge (Basic).
            return False
        view.resolve_organization()
        if request.method in permissions.SAFE_METHODS:
            return True
        return view.role == Membership.Role.ADMIN


# The base of every viewset under `/api/v1/orgs/<org_slug>/` (a comment, not a docstring:
# the OpenAPI schema would show it on every operation of a subclass without its own).
class OrganizationViewSet(OrganizationScopedMixin, viewsets.GenericViewSet):

    permission_classes = [IsOrganizationMember]
    pagination_class = StandardPagination
    schema = ManagementAutoSchema()

    def paginated(self, queryset: QuerySet, serializer_class: type) -> Response:
        page = self.paginate_queryset(queryset)
        return self.get_paginated_response(serializer_class(page, many=True, context=self.get_serializer_context()).data)

    def get_serializer_context(self) -> dict[str, Any]:
        context = super().get_serializer_context()
        if not self.is_schema_generation():
            context["organization"] = self.organization
        return context


def query_filters(request: Request, serializer_class: type[serializers.Serializer]) -> dict[str, Any]:
    """Validated query parameters; a bad one is a 400 naming it."""
    serializer = serializer_class(data=request.query_params.dict())
    serializer.is_valid(raise_exception=True)
    return {name: value for name, value in serializer.validated_data.items() if value is not None}
