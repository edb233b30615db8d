"""Management API for deployments and executions: thin viewsets over deployments/services.py."""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Any

from django.db.models import QuerySet
from drf_spectacular.utils import OpenApiParameter, extend_schema, extend_schema_view
from rest_framework import exceptions, status
from rest_framework.request import Request
from rest_framework.response import Response

from deployments.models import Deployment, DeploymentGroup, Execution
from deployments.serializers import (
    DeploymentCreateSerializer,
    DeploymentGroupCreateSerializer,
    DeploymentGroupSerializer,
    DeploymentGroupUpdateSerializer,
    DeploymentSerializer,
    DeploymentUpdateSerializer,
    ExecutionFilterSerializer,
    ExecutionSerializer,
)
from deployments.services import (
    deployment_create,
    deployment_delete,
    deployment_update,
    group_create,
    group_delete,
    group_update,
)
from lib.net import client_ip
from organizations.api import OrganizationViewSet, query_filters

DEPLOYMENT_NOT_FOUND = "No deployment with this slug exists in this organization."
GROUP_NOT_FOUND = "No group with this slug exists in this organization."


class SlugLookupViewSet(OrganizationViewSet):
    """Rows of the organization named by their slug in the URL; another organization's read as missing."""

    lookup_field = "slug"
    not_found = ""

    def get_object(self) -> Any:
        row = self.get_queryset().filter(slug=self.kwargs["slug"]).first()
        if row is None:
            raise exceptions.NotFound(self.not_found)
        return row


@extend_schema_view(
    list=extend_schema(summary="List deployments"),
    create=extend_schema(
        summary="Create a deployment",
        request=DeploymentCreateSerializer,
        responses={201: DeploymentSerializer},
        description="`runner` is `echo` unless given; the `http` runner needs an `upstream_url`. "
        "`upstream_headers` is write-only: responses show `upstream_header_names`.",
    ),
    retrieve=extend_schema(summary="Read a deployment"),
    partial_update=extend_schema(
        summary="Change a deployment",
        request=DeploymentUpdateSerializer,
        responses={200: DeploymentSerializer},
        description="`name`, `description`, `is_active`, `runner`, `upstream_url`, `timeout_seconds` and the "
        "write-only `upstream_headers`; the slug is fixed once created.",
    ),
    destroy=extend_schema(
        summary="Delete a deployment",
        description="Deletes its deployment keys (each audited `deleted`) and its executions, "
        "and removes it from global keys' scopes.",
    ),
)
class DeploymentViewSet(SlugLookupViewSet):
    """The organization's deployments. Members read; admins create, change and delete."""

    schema_tags = ["deployments"]
    serializer_class = DeploymentSerializer
    queryset = Deployment.objects.none()
    not_found = DEPLOYMENT_NOT_FOUND

    def get_queryset(self) -> QuerySet:
        if self.is_schema_generation():
            return Deployment.objects.none()
        return Deployment.objects.filter(organization=self.organization)

    def list(self, request: Request, *args: Any, **kwargs: Any) -> Response:
        return self.paginated(self.get_queryset(), DeploymentSerializer)

    def retrieve(self, request: Request, *args: Any, **kwargs: Any) -> Response:
        return Response(DeploymentSerializer(self.get_object()).data)

    def create(self, request: Request, *args: Any, **kwargs: Any) -> Response:
        serializer = DeploymentCreateSerializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        deployment = deployment_create(organization=self.organization, **serializer.validated_data)
        return Response(DeploymentSerializer(deployment).data, status=status.HTTP_201_CREATED)

    def partial_update(self, request: Request, *args: Any, **kwargs: Any) -> Response:
        deployment = self.get_object()
        serializer = DeploymentUpdateSerializer(deployment, data=request.data, partial=True)
        serializer.is_valid(raise_exception=True)
        deployment = deployment_update(deployment=deployment, **serializer.validated_data)
        return Response(DeploymentSerializer(deployment).data)

    def destroy(self, request: Request, *args: Any, **kwargs: Any) -> Response:
        deployment_delete(deployment=self.get_object(), actor=request.user, ip_address=client_ip(request))
        return Response(status=status.HTTP_204_NO_CONTENT)


@extend_schema_view(
    list=extend_schema(summary="List deployment groups"),
    create=extend_schema(
        summary="Create a deployment group",
        request=DeploymentGroupCreateSerializer,
        responses={201: DeploymentGroupSerializer},
        description="`deployments` names the organization's deployments by slug. A global key bound to the group "
        "opens every deployment the group holds at the time of the request.",
    ),
    retrieve=extend_schema(summary="Read a deployment group"),
    partial_update=extend_schema(
        summary="Change a deployment group",
        request=DeploymentGroupUpdateSerializer,
        responses={200: DeploymentGroupSerializer},
        description="`name`, `description` and `deployments` (the whole list); the slug is fixed once created. "
        "A deployment added opens to every key bound to the group within a second; one removed closes likewise.",
    ),
    destroy=extend_schema(
        summary="Delete a deployment group",
        description="Removes the group from the scope of every global key bound to it (each audited `changed`); "
        "a key left with an empty scope opens nothing. The deployments stay.",
    ),
)
class DeploymentGroupViewSet(SlugLookupViewSet):
    """The organization's deployment groups. Members read; admins create, change and delete."""

    schema_tags = ["deployment groups"]
    serializer_class = DeploymentGroupSerializer
    queryset = DeploymentGroup.objects.none()
    not_found = GROUP_NOT_FOUND

    def get_queryset(self) -> QuerySet:
        if self.is_schema_generation():
            return DeploymentGroup.objects.none()
        return DeploymentGroup.objects.filter(organization=self.organization).prefetch_related("deployments")

    def output(self, group: DeploymentGroup, http_status: int = status.HTTP_200_OK) -> Response:
        return Response(DeploymentGroupSerializer(self.get_queryset().get(pk=group.pk)).data, status=http_status)

    def list(self, request: Request, *args: Any, **kwargs: Any) -> Response:
        return self.paginated(self.get_queryset(), DeploymentGroupSerializer)

    def retrieve(self, request: Request, *args: Any, **kwargs: Any) -> Response:
        return Response(DeploymentGroupSerializer(self.get_object()).data)

    def create(self, request: Request, *args: Any, **kwargs: Any) -> Response:
        serializer = DeploymentGroupCreateSerializer(data=request.data, context=self.get_serializer_context())
        serializer.is_valid(raise_exception=True)
        group = group_create(
            organization=self.organization, actor=request.user, ip_address=client_ip(request), **serializer.validated_data
        )
        return self.output(group, status.HTTP_201_CREATED)

    def partial_update(self, request: Request, *args: Any, **kwargs: Any) -> Response:
        group = self.get_object()
        serializer = DeploymentGroupUpdateSerializer(data=request.data, partial=True, context=self.get_serializer_context())
        serializer.is_valid(raise_exception=True)
        group = group_update(group=group, actor=request.user, ip_address=client_ip(request), **serializer.validated_data)
        return self.output(group)

    def destroy(self, request: Request, *args: Any, **kwargs: Any) -> Response:
        group_delete(group=self.get_object(), actor=request.user, ip_address=client_ip(request))
        return Response(status=status.HTTP_204_NO_CONTENT)


@extend_schema_view(
    list=extend_schema(
        summary="List executions",
        parameters=[
            OpenApiParameter("deployment", str, description="Only executions of this deployment (slug)."),
            OpenApiParameter("key_id", uuid.UUID, description="Only executions by this key."),
            OpenApiParameter("status", str, enum=Execution.Status.values, description="Only executions in this status."),
            OpenApiParameter("since", datetime, description="Only executions at or after this time (ISO 8601)."),
        ],
    )
)
class ExecutionViewSet(OrganizationViewSet):
    """Executions of the organization's deployments, newest first. Read-only."""

    schema_tags = ["executions"]
    serializer_class = ExecutionSerializer
    queryset = Execution.objects.none()

    def get_queryset(self) -> QuerySet:
        if self.is_schema_generation():
            return Execution.objects.none()
        return Execution.objects.filter(deployment__organization=self.organization).select_related("deployment")

    def list(self, request: Request, *args: Any, **kwargs: Any) -> Response:
        filters = query_filters(request, ExecutionFilterSerializer)
        queryset = self.get_queryset()
        if "deployment" in filters:
            queryset = queryset.filter(deployment__slug=filters["deployment"])
        if "key_id" in filters:
            queryset = queryset.filter(key_id=filters["key_id"])
        if "status" in filters:
            queryset = queryset.filter(status=filters["status"])
        if "since" in filters:
            queryset = queryset.filter(created_at__gte=filters["since"])
        return self.paginated(queryset, ExecutionSerializer)
