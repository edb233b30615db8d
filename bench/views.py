"""Three trivial endpoints with the same body (only what guards them differs), execute with no key check,
a worker's cache figures, and a header naming the worker that answered."""

from __future__ import annotations

import functools
import os
from collections.abc import Callable
from typing import Any

from django.http import HttpRequest, HttpResponse, JsonResponse
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from keys.authentication import ApiKeyAuthentication, HasApiKey, KeyAuth, key_auth
from keys.lookup import LOOKUPS, VerifiedKey
from keys.scopes import DEPLOYMENTS_EXECUTE
from keys.views import ClientAPIView, ExecuteView, resolve_deployment

BODY = {"ok": True}
BENCH_KEY_NAME = "bench"  # the deployment key of bench/seed.py that the warm rows and `execute` use


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


@functools.cache
def bench_key() -> VerifiedKey:
    """What verifying the bench's deployment key gives, read once per worker (by its digest, never its secret)."""
    from keys.models import DeploymentKey

    digest = DeploymentKey.objects.values_list("digest", flat=True).get(name=BENCH_KEY_NAME)
    key, _ = LOOKUPS["deployment"].run(digest)
    assert key is not None
    return key


class ExecuteNoAuthView(ExecuteView):
    """`execute` with the key check skipped: the same view, body handling and Execution insert, for the bench key."""

    def get_authenticators(self) -> tuple[ApiKeyAuthentication, ...]:  # type: ignore[override]  # DRF only iterates it
        return ()

    def get_permissions(self) -> tuple[HasApiKey, ...]:
        return ()

    def initial(self, request: Request, *args: Any, **kwargs: Any) -> None:
        super().initial(request, *args, **kwargs)
        request.auth = KeyAuth(key=bench_key())


def cache_stats(request: HttpRequest) -> JsonResponse:
    """This worker's verification cache: how many entries it holds, and this worker's pid and resident memory."""
    from keys import verification_cache

    with open("/proc/self/status") as status:
        rss_kb = next(int(line.split()[1]) for line in status if line.startswith("VmRSS:"))
    return JsonResponse({"pid": os.getpid(), "rss_kb": rss_kb, **verification_cache.stats()})


class WorkerHeaderMiddleware:
    """X-Bench-Worker: the pid of the worker that answered, so a probe knows which worker refused a revoked key."""

    def __init__(self, get_response: Callable[[HttpRequest], HttpResponse]) -> None:
        self.get_response = get_response
        self.pid = str(os.getpid())

    def __call__(self, request: HttpRequest) -> HttpResponse:
        response = self.get_response(request)
        response["X-Bench-Worker"] = self.pid
        return response
