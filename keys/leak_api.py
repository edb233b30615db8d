"""The two anonymous endpoints where leaked keys are reported: anyone's reports, and GitHub's alerts.

Neither needs an account, as GitHub's own token revocation does not. What they do
is in keys/leaks.py; here are only the request shapes, the limits and the answers.
"""

from __future__ import annotations

import hashlib
import math
from typing import Any, NoReturn

from drf_spectacular.extensions import OpenApiAuthenticationExtension
from drf_spectacular.utils import OpenApiResponse, extend_schema
from rest_framework import serializers, status
from rest_framework.permissions import AllowAny
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.throttling import BaseThrottle
from rest_framework.views import APIView

from keys import ratelimit
from keys.authentication import RateLimited
from keys.leaks import Reported, stop_reported
from keys.secret_scanning import GitHubSignatureAuthentication, HasGitHubSignature
from lib.net import client_ip
from lib.serializers import ErrorSerializer, InputSerializer, StrictCharField, ValidationErrorSerializer

MAX_CREDENTIALS = 1000

INVALID = OpenApiResponse(ValidationErrorSerializer, description="Invalid input: field → list of messages.")
TOO_LARGE = OpenApiResponse(ErrorSerializer, description="`payload_too_large`: over KEYSCOPE_MAX_BODY_BYTES.")
NOT_JSON = OpenApiResponse(ErrorSerializer, description="`unsupported_media_type`: send JSON.")


class CredentialReportSerializer(InputSerializer):
    credentials = serializers.ListField(
        child=StrictCharField(allow_blank=True),
        min_length=1,
        max_length=MAX_CREDENTIALS,
        help_text=f"1 to {MAX_CREDENTIALS} strings. Those that are not well-formed keys are ignored.",
    )


class CredentialReportReceivedSerializer(serializers.Serializer):
    received = serializers.IntegerField(help_text="How many strings the report held, whatever they were.")


class CredentialReportThrottle(BaseThrottle):
    """KEYSCOPE_CREDENTIAL_REPORTS_PER_MINUTE calls per client address, counted across workers and hosts."""

    def allow_request(self, request: Request, view: APIView) -> bool:
        throttled, self.reset = ratelimit.record_credential_report(client_ip(request))
        return not throttled

    def wait(self) -> float:
        return self.reset


class CredentialReportView(APIView):
    """POST /api/v1/credentials/revoke/: anyone who finds keys may have them revoked, without an account.

    The answer is the same whatever the strings were, so it tells nothing about them.
    """

    authentication_classes: list[type] = []
    permission_classes = [AllowAny]
    throttle_classes = [CredentialReportThrottle]

    def throttled(self, request: Request, wait: float | None) -> NoReturn:
        raise RateLimited("Too many reports from this address. Try again later.", wait=math.ceil(wait or 1))

    @extend_schema(
        summary="Report leaked keys",
        tags=["leaked keys"],
        auth=[],
        request=CredentialReportSerializer,
        responses={
            202: CredentialReportReceivedSerializer,
            400: INVALID,
            413: TOO_LARGE,
            415: NOT_JSON,
            429: OpenApiResponse(ErrorSerializer, description="`rate_limited`; carries `Retry-After`."),
        },
        description="No authentication. A reported key's current secret revokes the key; a secret replaced by "
        "a rotation stops working at once. The organization's admins are told by email. The answer is the same "
        "for known, unknown and malformed strings.",
    )
    def post(self, request: Request) -> Response:
        serializer = CredentialReportSerializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        credentials = serializer.validated_data["credentials"]
        address = client_ip(request)
        reported_from = f"a report to POST /api/v1/credentials/revoke/ from {address or 'an unknown address'}"
        stop_reported([Reported(secret, reported_from) for secret in credentials], ip_address=address)
        return Response({"received": len(credentials)}, status=status.HTTP_202_ACCEPTED)


class GitHubAlertSerializer(serializers.Serializer):
    """One match of GitHub's secret scanning; fields GitHub may add later are ignored."""

    token = StrictCharField(allow_blank=True, trim_whitespace=False)
    type = StrictCharField(allow_blank=True, max_length=200)
    url = StrictCharField(allow_blank=True, required=False, default="", max_length=2000)
    source = StrictCharField(allow_blank=True, required=False, default="", max_length=200)  # type: ignore[assignment]  # GitHub's name


class GitHubFeedbackSerializer(serializers.Serializer):
    token_hash = serializers.CharField(help_text="The token's SHA-256, in hex; the token itself is never echoed.")
    token_type = serializers.CharField()
    label = serializers.ChoiceField(choices=["true_positive", "false_positive"])  # type: ignore[assignment]  # GitHub's name


def token_hash(token: str) -> str:
    # Whatever the string: GitHub hashes what it sent, and it may not be a key at all.
    return hashlib.sha256(token.encode("utf-8", "surrogatepass")).hexdigest()


def _reported_from(alert: dict[str, str]) -> str:
    where = f"GitHub secret scanning, found at {alert['url']}" if alert["url"] else "GitHub secret scanning"
    return f"{where} ({alert['source']})" if alert["source"] else where


class GitHubSecretScanningAuthenticationScheme(OpenApiAuthenticationExtension):
    target_class = "keys.secret_scanning.GitHubSignatureAuthentication"
    name = "githubSecretScanningSignature"

    def get_security_definition(self, auto_schema: Any) -> dict[str, Any]:
        return {
            "type": "apiKey",
            "in": "header",
            "name": "Github-Public-Key-Signature",
            "description": "GitHub's ECDSA P-256 signature of the raw body, with the key named in "
            "`Github-Public-Key-Identifier`.",
        }


class GitHubSecretScanningView(APIView):
    """POST /api/v1/secret-scanning/github/: GitHub's secret scanning partner alerts."""

    authentication_classes = [GitHubSignatureAuthentication]
    permission_classes = [HasGitHubSignature]

    @extend_schema(
        summary="Receive GitHub secret scanning alerts",
        tags=["leaked keys"],
        request=GitHubAlertSerializer(many=True),
        responses={
            200: GitHubFeedbackSerializer(many=True),
            400: INVALID,
            401: OpenApiResponse(
                ErrorSerializer, description="No signature, an unknown key identifier or a bad signature."
            ),
            413: TOO_LARGE,
            415: NOT_JSON,
        },
        description="The body must be signed by GitHub (`Github-Public-Key-Identifier`, "
        "`Github-Public-Key-Signature`). Found keys are revoked as reported leaks; the answer labels each token "
        "`true_positive` when it is or was a key's secret.",
    )
    def post(self, request: Request) -> Response:
        alerts = serializers.ListField(child=GitHubAlertSerializer()).run_validation(request.data)
        outcome = stop_reported(
            [Reported(alert["token"], _reported_from(alert)) for alert in alerts], ip_address=client_ip(request)
        )
        return Response(
            [
                {
                    "token_hash": token_hash(alert["token"]),
                    "token_type": alert["type"],
                    "label": "true_positive" if outcome.known(alert["token"]) else "false_positive",
                }
                for alert in alerts
            ]
        )
