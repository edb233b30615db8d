"""The client API (CONTRACT §4): execute a deployment, read an execution back."""

from __future__ import annotations

import time
import uuid
from typing import Any

from rest_framework import exceptions, status
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from backend.net import client_ip
from deployments.models import Deployment, Execution
from deployments.runners import RunContext, get_runner
from keys.authentication import ApiKeyAuthentication, HasApiKey, KeyAuth
from keys.verification import can_execute


class DeploymentNotInScope(exceptions.PermissionDenied):
    default_detail = "This key may not execute this deployment."
    default_code = "deployment_not_in_scope"


class DeploymentInactive(exceptions.PermissionDenied):
    default_detail = "This deployment is inactive."
    default_code = "deployment_inactive"


NOT_FOUND = "No deployment with this name exists for this key's organization."


def resolve_deployment(auth: KeyAuth, org_slug: str, deployment_slug: str) -> Deployment:
    """The deployment a verified key asks for, or the contract's 404/403 (CONTRACT §4 order)."""
    key = auth.key
    # Another organization's slug is answered like a missing deployment, without a query.
    if org_slug != key.organization_slug:
        raise exceptions.NotFound(NOT_FOUND)
    deployment = (
        Deployment.objects.filter(organization_id=key.organization_id, slug=deployment_slug)
        .only("id", "organization_id", "slug", "is_active", "runner")
        .first()
    )
    if deployment is None:
        raise exceptions.NotFound(NOT_FOUND)
    if not can_execute(key, deployment.id, deployment.organization_id):
        raise DeploymentNotInScope()
    if not deployment.is_active:
        raise DeploymentInactive()
    return deployment


def execution_body(execution: Execution) -> dict[str, Any]:
    body: dict[str, Any] = {
        "execution_id": str(execution.id),
        "status": execution.status,
        "result": execution.result,
        "elapsed_ms": execution.elapsed_ms,
    }
    if execution.status == Execution.Status.FAILED:
        body["detail"] = execution.error_detail
        body["code"] = execution.error_code
    return body


class ClientAPIView(APIView):
    authentication_classes = [ApiKeyAuthentication]
    permission_classes = [HasApiKey]


class ExecuteView(ClientAPIView):
    def post(self, request: Request, org_slug: str, deployment_slug: str) -> Response:
        deployment = resolve_deployment(request.auth, org_slug, deployment_slug)
        payload = request.data
        if not isinstance(payload, dict):
            raise exceptions.ParseError("The request body must be a JSON object.")
        key = request.auth.key
        execution = Execution(
            deployment=deployment,
            request=payload,
            key_kind=key.kind,
            key_id=key.id,
            key_name=key.name,
            client_ip=client_ip(request),
        )
        started = time.perf_counter()
        outcome = get_runner(deployment.runner).run(
            deployment=deployment,
            payload=payload,
            context=RunContext(organization_slug=key.organization_slug, key_id=key.id, execution_id=str(execution.id)),
        )
        execution.elapsed_ms = int((time.perf_counter() - started) * 1000)
        execution.result = outcome.result
        execution.http_status = outcome.http_status
        if outcome.ok:
            execution.status = Execution.Status.COMPLETED
            response_status = status.HTTP_200_OK
        else:
            execution.status = Execution.Status.FAILED
            execution.error_code = outcome.code
            execution.error_detail = outcome.detail
            response_status = status.HTTP_504_GATEWAY_TIMEOUT if outcome.code == "upstream_timeout" else status.HTTP_502_BAD_GATEWAY
        execution.save(force_insert=True)
        return Response(execution_body(execution), status=response_status)


class ExecutionDetailView(ClientAPIView):
    def get(self, request: Request, org_slug: str, deployment_slug: str, execution_id: str) -> Response:
        try:
            deployment = resolve_deployment(request.auth, org_slug, deployment_slug)
        except (DeploymentNotInScope, DeploymentInactive):
            # Only keys that may execute a deployment see its executions; to others they do not exist.
            raise exceptions.NotFound("No execution with this id exists for this deployment.") from None
        try:
            execution_uuid = uuid.UUID(execution_id)
        except ValueError:
            raise exceptions.NotFound("No execution with this id exists for this deployment.") from None
        execution = Execution.objects.filter(pk=execution_uuid, deployment_id=deployment.id).first()
        if execution is None:
            raise exceptions.NotFound("No execution with this id exists for this deployment.")
        return Response(execution_body(execution))
