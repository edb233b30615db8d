"""Management API for keys and audit events: thin viewsets over keys/services.py."""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Any, cast

from django.db.models import QuerySet
from drf_spectacular.utils import OpenApiParameter, extend_schema, extend_schema_view
from rest_framework import exceptions, status
from rest_framework.decorators import action
from rest_framework.request import Request
from rest_framework.response import Response

from deployments.api import DEPLOYMENT_NOT_FOUND
from deployments.models import Deployment
from keys import (
    schema,  # noqa: F401  (registers the OpenAPI extensions)
    usage,
)
from keys.models import ApiKey, AuditEvent, DeploymentKey, GlobalApiDeploymentKey, KeyQuerySet, KeyStatus
from keys.policy import key_policy_update
from keys.serializers import (
    AuditEventFilterSerializer,
    AuditEventSerializer,
    DeploymentKeySerializer,
    GlobalKeyInputSerializer,
    GlobalKeySerializer,
    IssuedDeploymentKeySerializer,
    IssuedGlobalKeySerializer,
    KeyFilterSerializer,
    KeyInputSerializer,
    KeyUsageSerializer,
    OrganizationPolicyInputSerializer,
    OrganizationSerializer,
    RevokeInputSerializer,
    RotateInputSerializer,
)
from keys.services import (
    deployment_key_issue,
    global_key_issue,
    key_delete,
    key_revoke,
    key_rotate,
    key_update,
)
from lib.net import client_ip
from lib.schema import CONFLICT, INVALID
from organizations.api import OrganizationViewSet, query_filters

KEY_NOT_FOUND = "No key with this id exists here."

KEY_FILTERS = [
    OpenApiParameter("is_active", bool, description="Only keys with this `is_active`."),
    OpenApiParameter("status", str, enum=KeyStatus.values, description="Only keys in this status."),
    OpenApiParameter("search", str, description="Only keys whose name contains this, in any case."),
]


class KeyViewSet(OrganizationViewSet):
    """What both kinds of key share: list, create, read, PATCH, delete, rotate, revoke."""

    serializer_class: type[DeploymentKeySerializer] | type[GlobalKeySerializer]
    issued_serializer_class: type[IssuedDeploymentKeySerializer] | type[IssuedGlobalKeySerializer]
    input_serializer_class: type[KeyInputSerializer]

    def get_object(self) -> Any:
        try:
            key_id = uuid.UUID(str(self.kwargs["pk"]))
        except ValueError:
            raise exceptions.NotFound(KEY_NOT_FOUND) from None
        key = self.get_queryset().filter(pk=key_id).first()
        if key is None:
            raise exceptions.NotFound(KEY_NOT_FOUND)
        return key

    def fresh(self, key: ApiKey) -> Any:
        """The key re-read through the scoped queryset, with what the output serializer needs."""
        return self.get_queryset().get(pk=key.pk)

    def output(self, key: ApiKey, http_status: int = status.HTTP_200_OK) -> Response:
        return Response(self.serializer_class(self.fresh(key), context=self.get_serializer_context()).data, status=http_status)

    def issued(self, key: ApiKey, full_key: str, http_status: int) -> Response:
        """The one response that carries a full key (create, rotate): never stored by a cache."""
        context = {**self.get_serializer_context(), "full_key": full_key}
        data = self.issued_serializer_class(self.fresh(key), context=context).data
        return Response(data, status=http_status, headers={"Cache-Control": "no-store"})

    def issue(self, request: Request, fields: dict[str, Any]) -> tuple[ApiKey, str]:
        """Create the key through this kind's service, from the validated input."""
        raise NotImplementedError

    def list(self, request: Request, *args: Any, **kwargs: Any) -> Response:
        filters = query_filters(request, KeyFilterSerializer)
        queryset = self.get_queryset()
        if "is_active" in filters:
            queryset = queryset.filter(is_active=filters["is_active"])
        if "status" in filters:
            queryset = cast(KeyQuerySet, queryset).with_status(filters["status"])
        if filters.get("search"):
            queryset = queryset.filter(name__icontains=filters["search"])
        return self.paginated(queryset, self.serializer_class)

    def retrieve(self, request: Request, *args: Any, **kwargs: Any) -> Response:
        return Response(self.get_serializer(self.get_object()).data)

    def create(self, request: Request, *args: Any, **kwargs: Any) -> Response:
        serializer = self.input_serializer_class(data=request.data, context=self.get_serializer_context())
        serializer.is_valid(raise_exception=True)
        key, full_key = self.issue(request, dict(serializer.validated_data))
        return self.issued(key, full_key, status.HTTP_201_CREATED)

    def partial_update(self, request: Request, *args: Any, **kwargs: Any) -> Response:
        key = self.get_object()
        serializer = self.input_serializer_class(
            key, data=request.data, partial=True, context=self.get_serializer_context()
        )
        serializer.is_valid(raise_exception=True)
        key = key_update(key=key, actor=request.user, ip_address=client_ip(request), **serializer.validated_data)
        return self.output(key)

    def destroy(self, request: Request, *args: Any, **kwargs: Any) -> Response:
        key_delete(key=self.get_object(), actor=request.user, ip_address=client_ip(request))
        return Response(status=status.HTTP_204_NO_CONTENT)

    @action(detail=True, methods=["post"])
    def rotate(self, request: Request, *args: Any, **kwargs: Any) -> Response:
        key = self.get_object()
        serializer = RotateInputSerializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        key, full_key = key_rotate(
            key=key,
            actor=request.user,
            grace_period_seconds=serializer.validated_data["grace_period_seconds"],
            ip_address=client_ip(request),
        )
        return self.issued(key, full_key, status.HTTP_200_OK)

    @action(detail=True, methods=["post"])
    def revoke(self, request: Request, *args: Any, **kwargs: Any) -> Response:
        key = self.get_object()
        RevokeInputSerializer(data=request.data).is_valid(raise_exception=True)
        return self.output(key_revoke(key=key, actor=request.user, ip_address=client_ip(request)))

    @action(detail=True, methods=["get"])
    def usage(self, request: Request, *args: Any, **kwargs: Any) -> Response:
        key = self.get_object()
        days = usage.usage_for(str(key.pk))
        body = {"key_id": key.pk, "days": days, "total": sum(int(day["count"]) for day in days)}
        return Response(KeyUsageSerializer(body).data)


def key_schema(output: type, issued: type, request: type, noun: str) -> Any:
    return extend_schema_view(
        list=extend_schema(summary=f"List {noun}s", parameters=KEY_FILTERS),
        create=extend_schema(
            summary=f"Create a {noun}",
            request=request,
            responses={201: issued},
            description="The response holds the full key in `key`, this once.",
        ),
        retrieve=extend_schema(summary=f"Read a {noun}"),
        partial_update=extend_schema(
            summary=f"Change a {noun}", request=request, responses={200: output, 409: CONFLICT}
        ),
        destroy=extend_schema(summary=f"Delete a {noun}", description="Audited as `deleted`."),
        rotate=extend_schema(
            summary=f"Rotate a {noun}",
            request=RotateInputSerializer,
            responses={200: issued, 400: INVALID, 409: CONFLICT},
            description="Gives the key a new secret, returned in `key` this once. The old secret keeps working "
            "for `grace_period_seconds`, then answers `key_revoked`.",
        ),
        revoke=extend_schema(
            summary=f"Revoke a {noun}",
            request=RevokeInputSerializer,
            responses={200: output},
            description="Final. Revoking a revoked key changes nothing.",
        ),
        usage=extend_schema(
            summary=f"Daily usage of a {noun}",
            responses={200: KeyUsageSerializer},
            description="Requests authenticated with the key on each of the last 30 days (UTC), oldest first. "
            "Counts are buffered per worker and may lag by about a second.",
        ),
    )


@key_schema(DeploymentKeySerializer, IssuedDeploymentKeySerializer, KeyInputSerializer, "deployment key")
class DeploymentKeyViewSet(KeyViewSet):
    """Keys that open one deployment: `deployments/<deployment_slug>/keys/`."""

    schema_tags = ["deployment keys"]
    serializer_class = DeploymentKeySerializer
    issued_serializer_class = IssuedDeploymentKeySerializer
    input_serializer_class = KeyInputSerializer
    queryset = DeploymentKey.objects.none()  # typed path parameters in the schema; get_queryset() scopes

    def initial(self, request: Request, *args: Any, **kwargs: Any) -> None:
        super().initial(request, *args, **kwargs)  # authentication and permissions first
        deployment = Deployment.objects.filter(organization=self.organization, slug=self.kwargs["deployment_slug"]).first()
        if deployment is None:
            raise exceptions.NotFound(DEPLOYMENT_NOT_FOUND)
        self.deployment = deployment

    def get_queryset(self) -> QuerySet:
        if self.is_schema_generation():
            return DeploymentKey.objects.none()
        return (
            DeploymentKey.objects.filter(deployment=self.deployment)
            .select_related("deployment", "created_by")
            .with_previous_key_expiry()
        )

    def issue(self, request: Request, fields: dict[str, Any]) -> tuple[ApiKey, str]:
        return deployment_key_issue(deployment=self.deployment, actor=request.user, ip_address=client_ip(request), **fields)


@key_schema(GlobalKeySerializer, IssuedGlobalKeySerializer, GlobalKeyInputSerializer, "global key")
class GlobalKeyViewSet(KeyViewSet):
    """Keys that open all of the organization's deployments, or a list of them and their groups': `global-keys/`."""

    schema_tags = ["global keys"]
    serializer_class = GlobalKeySerializer
    issued_serializer_class = IssuedGlobalKeySerializer
    input_serializer_class = GlobalKeyInputSerializer
    queryset = GlobalApiDeploymentKey.objects.none()

    def get_queryset(self) -> QuerySet:
        if self.is_schema_generation():
            return GlobalApiDeploymentKey.objects.none()
        return (
            GlobalApiDeploymentKey.objects.filter(organization=self.organization)
            .select_related("created_by")
            .prefetch_related("deployments", "groups")
            .with_previous_key_expiry()
        )

    def issue(self, request: Request, fields: dict[str, Any]) -> tuple[ApiKey, str]:
        return global_key_issue(organization=self.organization, actor=request.user, ip_address=client_ip(request), **fields)


@extend_schema_view(
    retrieve=extend_schema(summary="Read the organization and its key policy", responses={200: OrganizationSerializer}),
    partial_update=extend_schema(
        summary="Change the organization's key policy",
        request=OrganizationPolicyInputSerializer,
        responses={200: OrganizationSerializer},
        description="Admins only. `slug` and `name` are read-only here. Each change is audited "
        "(an event with the key fields null).",
    ),
)
class OrganizationPolicyViewSet(OrganizationViewSet):
    """`/api/v1/orgs/<org_slug>/`: the organization, and the policy its keys follow."""

    schema_tags = ["organizations"]
    serializer_class = OrganizationSerializer

    def retrieve(self, request: Request, *args: Any, **kwargs: Any) -> Response:
        return Response(OrganizationSerializer(self.organization).data)

    def partial_update(self, request: Request, *args: Any, **kwargs: Any) -> Response:
        serializer = OrganizationPolicyInputSerializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        organization = key_policy_update(
            organization=self.organization, actor=request.user, ip_address=client_ip(request), **serializer.validated_data
        )
        return Response(OrganizationSerializer(organization).data)


@extend_schema_view(
    list=extend_schema(
        summary="List audit events",
        parameters=[
            OpenApiParameter("key_id", uuid.UUID, description="Only events of this key (UUID)."),
            OpenApiParameter("group", str, description="Only events of this deployment group (slug)."),
            OpenApiParameter("action", str, enum=AuditEvent.Action.values, description="Only events of this action."),
            OpenApiParameter("since", datetime, description="Only events at or after this time (ISO 8601)."),
        ],
    )
)
class AuditEventViewSet(OrganizationViewSet):
    """The organization's audit trail of keys and deployment groups, newest first. Read-only: events cannot be edited or deleted."""

    schema_tags = ["audit events"]
    serializer_class = AuditEventSerializer
    queryset = AuditEvent.objects.none()

    def get_queryset(self) -> QuerySet:
        if self.is_schema_generation():
            return AuditEvent.objects.none()
        return AuditEvent.objects.filter(organization=self.organization).select_related("organization")

    def list(self, request: Request, *args: Any, **kwargs: Any) -> Response:
        filters = query_filters(request, AuditEventFilterSerializer)
        queryset = self.get_queryset()
        if "key_id" in filters:
            queryset = queryset.filter(key_id=filters["key_id"])
        if "group" in filters:
            queryset = queryset.filter(group=filters["group"])
        if "action" in filters:
            queryset = queryset.filter(action=filters["action"])
        if "since" in filters:
            queryset = queryset.filter(created_at__gte=filters["since"])
        return self.paginated(queryset, AuditEventSerializer)
