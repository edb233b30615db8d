"""The client API: execute a deployment, read an execution back, describe the calling key or revoke it.

Every view here authenticates with a key (keys/authentication.py); what a
verified key may reach is decided by `resolve_deployment`, and the execution
itself is run and recorded by deployments/services.py.
"""

from __future__ import annotations

import uuid
from types import SimpleNamespace
from typing import Any
from urllib.parse import parse_qsl, urlencode

from django.http import HttpRequest
from django.http.response import HttpResponseBase
from rest_framework import exceptions, status
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from deployments.models import Execution
from deployments.services import execution_run
from keys import crypto, refusals
from keys.authentication import ApiKeyAuthentication, HasApiKey, KeyAuth, key_auth, rate_limit_headers, screen_request
from keys.leaks import stop_by_holder
from keys.lookup import DeploymentRef, VerifiedKey
from keys.scopes import DEPLOYMENTS_EXECUTE, EXECUTIONS_READ
from keys.verification import can_execute, find_deployment, scope_slugs
from lib.negotiation import FallbackContentNegotiation
from lib.net import client_ip
from lib.parsers import check_body_size, check_storable


class DeploymentNotInScope(exceptions.PermissionDenied):
    default_detail = "This key may not execute this deployment."
    default_code = "deployment_not_in_scope"


class DeploymentInactive(exceptions.PermissionDenied):
    default_detail = "This deployment is inactive."
    default_code = "deployment_inactive"


NOT_FOUND = "No deployment with this name exists for this key's organization."
EXECUTION_NOT_FOUND = "No execution with this id exists for this deployment."


def resolve_deployment(auth: KeyAuth, org_slug: str, deployment_slug: str, client_address: str | None = None) -> DeploymentRef:
    """The deployment a verified key asks for, or the 404/403 in the client API's order."""
    key = auth.key
    # Another organization's slug is answered like a missing deployment, without a query.
    if org_slug != key.organization_slug:
        raise exceptions.NotFound(NOT_FOUND)
    # A cold lookup has read the deployment already: with the cache off, that read is the only one.
    target = auth.target if auth.target is not None and auth.target.slug == deployment_slug else None
    deployment = target.deployment if target is not None else find_deployment(key.organization_id, deployment_slug)
    if deployment is None:
        raise exceptions.NotFound(NOT_FOUND)
    if not can_execute(key, deployment.id, deployment.organization_id, known=target.in_scope if target is not None else None):
        refusals.record_refusal(key, DeploymentNotInScope.default_code, client_address)
        raise DeploymentNotInScope()
    if not deployment.is_active:
        raise DeploymentInactive()
    return deployment


def without_keys(query_string: str) -> str:
    """The client's query string minus every parameter whose name or value looks like a key: never passed upstream."""
    kept = [
        (name, value)
        for name, value in parse_qsl(query_string, keep_blank_values=True)
        if not crypto.looks_like_key(name) and not crypto.looks_like_key(value)
    ]
    return urlencode(kept)


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
    # The scope (keys/scopes.py) a key needs here, checked by HasApiKey before the view runs; None: any key.
    required_scope: str | None = None
    # Both classes keep no state: one instance of each serves every request, instead of
    # DRF making new ones per request on the path every client call takes.
    _authenticators = (ApiKeyAuthentication(),)
    _permissions = (HasApiKey(),)

    def get_authenticators(self) -> tuple[ApiKeyAuthentication, ...]:  # type: ignore[override]  # DRF only iterates it
        return self._authenticators

    def get_permissions(self) -> tuple[HasApiKey, ...]:
        return self._permissions

    def dispatch(self, request: HttpRequest, *args: Any, **kwargs: Any) -> HttpResponseBase:
        """DRF's dispatch, except for a key refused without a query (keys.authentication.screen_request):
        answered before DRF wraps the request and authenticates, with the response DRF's negotiation,
        handle_exception and finalize_response give, so a junk flood costs less than real traffic."""
        refusal = screen_request(request) if self._answers_refusals_early() else None
        if refusal is None:
            return super().dispatch(request, *args, **kwargs)
        self.args, self.kwargs = args, kwargs
        self.request = request  # type: ignore[assignment]  # what DRF's context and header helpers read of it
        self.headers = self.default_response_headers
        self.format_kwarg = self.get_format_suffix(**kwargs)
        # DRF's negotiation, on what it reads of a request: its Accept header and its ?format= (the parity
        # tests in keys/tests/limits/test_early_refusal.py pin this against DRF's own path).
        asked = SimpleNamespace(META=request.META, headers=request.headers, query_params=request.GET)
        negotiated = self.get_content_negotiator().select_renderer(asked, self.get_renderers(), self.format_kwarg)  # type: ignore[arg-type]
        request.accepted_renderer, request.accepted_media_type = negotiated  # type: ignore[attr-defined]
        self.response = self.finalize_response(request, self.handle_exception(refusal), *args, **kwargs)  # type: ignore[arg-type]
        return self.response

    def _answers_refusals_early(self) -> bool:
        """Whether this view authenticates by key with the class itself (a subclass may check more) and
        negotiates with the API's negotiation, which always answers (lib/negotiation.py), never a 406."""
        authenticators = self.get_authenticators()
        return (
            bool(authenticators)
            and type(authenticators[0]) is ApiKeyAuthentication
            and isinstance(self.get_content_negotiator(), FallbackContentNegotiation)
        )

    def handle_exception(self, exc: Exception) -> Response:
        response = super().handle_exception(exc)
        for name, value in rate_limit_headers(self.request, exc).items():
            response[name] = value
        return response

    def finalize_response(self, request: Request, response: Response, *args: Any, **kwargs: Any) -> Response:
        response = super().finalize_response(request, response, *args, **kwargs)
        for name, value in rate_limit_headers(request).items():
            response.headers.setdefault(name, value)
        return response


class ExecuteView(ClientAPIView):
    required_scope = DEPLOYMENTS_EXECUTE

    def post(self, request: Request, org_slug: str, deployment_slug: str) -> Response:
        deployment = resolve_deployment(key_auth(request), org_slug, deployment_slug, client_ip(request))
        # Before anything is read (by Content-Length), then on the body itself.
        check_body_size(request.META.get("CONTENT_LENGTH"))
        check_body_size(None, request.body)
        payload = request.data
        if not isinstance(payload, dict):
            raise exceptions.ParseError("The request body must be a JSON object.")
        check_storable(payload)
        key = key_auth(request).key
        execution = execution_run(
            deployment=deployment,
            payload=payload,
            key_kind=key.kind,
            key_id=key.id,
            key_name=key.name,
            organization_slug=key.organization_slug,
            client_ip=client_ip(request),
            query_string=without_keys(request.META.get("QUERY_STRING", "")),
        )
        response_status: int
        if execution.status == Execution.Status.COMPLETED:
            response_status = status.HTTP_200_OK
        elif execution.error_code == "upstream_timeout":
            response_status = status.HTTP_504_GATEWAY_TIMEOUT
        else:
            response_status = status.HTTP_502_BAD_GATEWAY
        return Response(execution_body(execution), status=response_status)


class ExecutionDetailView(ClientAPIView):
    required_scope = EXECUTIONS_READ

    def get(self, request: Request, org_slug: str, deployment_slug: str, execution_id: str) -> Response:
        try:
            deployment = resolve_deployment(key_auth(request), org_slug, deployment_slug, client_ip(request))
        except (DeploymentNotInScope, DeploymentInactive):
            # Only keys that may execute a deployment see its executions; to others they do not exist.
            raise exceptions.NotFound(EXECUTION_NOT_FOUND) from None
        try:
            execution_uuid = uuid.UUID(execution_id)
        except ValueError:
            raise exceptions.NotFound(EXECUTION_NOT_FOUND) from None
        execution = Execution.objects.filter(pk=execution_uuid, deployment_id=deployment.id).first()
        if execution is None:
            raise exceptions.NotFound(EXECUTION_NOT_FOUND)
        return Response(execution_body(execution))


def introspection(key: VerifiedKey) -> dict[str, Any]:
    """What the calling key is and what it opens."""
    deployments, groups = scope_slugs(key)
    return {
        "id": key.id,
        "name": key.name,
        "kind": key.kind,
        "organization": key.organization_slug,
        "key_masked": key.key_masked,
        "allow_all_deployments": key.allow_all_deployments,
        "deployments": deployments,
        "groups": groups,
        "scopes": sorted(key.scopes),
        "allowed_ips": list(key.allowed_ips),
        "format": key.format,
        "expires_at": key.expires_at,
    }


# GET /api/v1/key/: what the calling key is and what it opens (a comment: the schema would show a docstring).
class KeyIntrospectionView(ClientAPIView):
    def get(self, request: Request) -> Response:
        return Response(introspection(key_auth(request).key))


# POST /api/v1/key/revoke/: a client that finds its own key leaked revokes it; no scope needed, no body read.
# The request counts against the key's rate limit but is not refused by it: whoever else holds a leaked
# key may well keep it at its limit.
class KeyRevokeView(ClientAPIView):
    _authenticators = (ApiKeyAuthentication(enforce_rate_limit=False),)

    def post(self, request: Request) -> Response:
        key = key_auth(request).key
        revoked_at = stop_by_holder(key, ip_address=client_ip(request))
        return Response({**introspection(key), "revoked_at": revoked_at})
