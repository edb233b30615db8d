"""What executing a deployment does.

`echo` returns the request body. `http` posts it to the deployment's upstream
URL and returns the upstream's JSON (or text): see HttpRunner.
"""

from __future__ import annotations

import json
import logging
import re
import ssl
import time
from dataclasses import dataclass
from functools import lru_cache
from typing import Any, Protocol
from urllib.parse import parse_qsl, urlencode, urlsplit, urlunsplit

import httpx
from django.conf import settings

from deployments import encryption
from deployments.models import Deployment
from deployments.upstream import Upstream, UpstreamNotAllowed, UpstreamUnresolvable, resolve_upstream
from lib.request_id import request_id_var

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class RunContext:
    """Who is calling, for runners that tell their upstream."""

    organization_slug: str
    key_id: str
    execution_id: str
    deployment_slug: str = ""
    # The client's query string, without the parameters that look like a key (the client view drops them).
    query_string: str = ""


@dataclass
class RunOutcome:
    ok: bool
    result: Any
    http_status: int = 200
    code: str = ""
    detail: str = ""


class Runner(Protocol):
    def run(self, *, deployment: Deployment, payload: dict[str, Any], context: RunContext) -> RunOutcome: ...


class EchoRunner:
    def run(self, *, deployment: Deployment, payload: dict[str, Any], context: RunContext) -> RunOutcome:
        return RunOutcome(ok=True, result=payload)


def forwarded_query(upstream_url: str, client_query: str) -> str:
    """The upstream URL's own query plus the client's parameters."""
    own = parse_qsl(urlsplit(upstream_url).query, keep_blank_values=True)
    return urlencode(own + parse_qsl(client_query, keep_blank_values=True))


def _failure(http_status: int, code: str, detail: str, result: Any = None) -> RunOutcome:
    return RunOutcome(ok=False, result=result, http_status=http_status, code=code, detail=detail)


class _ResponseTooLarge(Exception):
    pass


class _DeadlinePassed(Exception):
    pass


@lru_cache(maxsize=1)
def _ssl_context() -> ssl.SSLContext:
    # Built once: loading the CA bundle for every call would cost more than the call.
    return httpx.create_ssl_context()


# What PostgreSQL's jsonb cannot store: NUL, and unpaired surrogates (only JSON's \u escapes make them).
_UNSTORABLE = re.compile("[\x00\ud800-\udfff]")
_UNSTORABLE_ESCAPE = re.compile(r"\\u(?:0000|[dD][89a-fA-F])")


def _storable(value: Any) -> Any:
    # An upstream must not be able to make the execution unsaveable: each such character becomes U+FFFD.
    if isinstance(value, str):
        return _UNSTORABLE.sub("\ufffd", value)
    if isinstance(value, list):
        return [_storable(item) for item in value]
    if isinstance(value, dict):
        return {_storable(key): _storable(item) for key, item in value.items()}
    return value


def _decode_body(response: httpx.Response, body: bytes) -> Any:
    """The upstream's JSON when it says it sent JSON, else its text; None when empty."""
    if not body:
        return None
    text = body.decode(response.charset_encoding or "utf-8", errors="replace")
    result: Any = text
    if "json" in response.headers.get("content-type", "").lower():
        try:
            result = json.loads(text)
        except ValueError:
            result = text
    if "\x00" in text or _UNSTORABLE_ESCAPE.search(text):
        result = _storable(result)
    return result


class HttpRunner:
    """POST the JSON body to `upstream_url`.

    Nothing of the client's request is forwarded but its body and its query
    string (which comes without key-like parameters): never its Authorization
    or X-Api-Key.
    The upstream gets the deployment's decrypted upstream headers and learns
    the caller from the X-Keyscope-* headers. Redirects are not followed. The
    connection goes to the addresses checked by resolve_upstream, so a DNS
    answer that changes after the check is not used.

    Every answer of the upstream is recorded with its status; a 5xx is a
    FAILED execution (502 upstream_error), a 2xx, 3xx or 4xx a COMPLETED one
    (the upstream answered; its status is on the execution).
    """

    def run(self, *, deployment: Deployment, payload: dict[str, Any], context: RunContext) -> RunOutcome:
        if not deployment.upstream_url:
            return _failure(502, "upstream_not_configured", "This deployment has no upstream URL.")
        try:
            upstream = resolve_upstream(deployment.upstream_url)
        except UpstreamUnresolvable as error:
            return _failure(502, "upstream_unavailable", str(error))
        except UpstreamNotAllowed as error:
            return _failure(502, "upstream_not_allowed", str(error))
        try:
            configured_headers = deployment.upstream_headers()
        except encryption.CredentialsError as error:
            logger.error("deployment %s: upstream credentials unreadable: %s", deployment.pk, error)
            return _failure(
                502,
                "upstream_credentials_unavailable",
                "The upstream credentials of this deployment cannot be read; the operator must check the encryption keys.",
            )
        headers = {
            "Content-Type": "application/json",
            "Accept": "application/json, text/plain;q=0.9, */*;q=0.5",
            "User-Agent": "keyscope",
            **configured_headers,
            "X-Keyscope-Organization": context.organization_slug,
            "X-Keyscope-Deployment": context.deployment_slug or deployment.slug,
            "X-Keyscope-Key-Id": str(context.key_id),
            "X-Keyscope-Execution-Id": context.execution_id,
        }
        request_id = request_id_var.get()
        if request_id != "-":
            headers["X-Request-Id"] = request_id
        body = json.dumps(payload, separators=(",", ":")).encode("utf-8")
        query = forwarded_query(deployment.upstream_url, context.query_string)
        timeout = float(deployment.timeout_seconds)
        deadline = time.monotonic() + timeout
        try:
            return self._call(upstream, query, headers, body, timeout, deadline)
        except (httpx.TimeoutException, _DeadlinePassed):
            return _failure(504, "upstream_timeout", f"The upstream did not answer within {deployment.timeout_seconds} seconds.")
        except httpx.ConnectError:
            return _failure(502, "upstream_unavailable", "The upstream could not be reached.")
        except _ResponseTooLarge:
            return _failure(502, "upstream_error", "The upstream's answer is larger than keyscope accepts.")
        except httpx.HTTPError as error:
            return _failure(502, "upstream_error", f"The upstream connection failed ({type(error).__name__}).")
        except Exception as error:  # noqa: BLE001
            # Anything else the HTTP client raises (a stored header value it cannot encode, say) fails
            # this execution, not the request. Its message may quote the credentials: only its type is told.
            logger.warning("deployment %s: the upstream request could not be made: %s", deployment.pk, type(error).__name__)
            return _failure(502, "upstream_error", f"The upstream request could not be made ({type(error).__name__}).")

    def _call(
        self, upstream: Upstream, query: str, headers: dict[str, str], body: bytes, timeout: float, deadline: float
    ) -> RunOutcome:
        parts = urlsplit(upstream.url)
        default_port = upstream.port == (443 if upstream.scheme == "https" else 80)
        headers = {**headers, "Host": upstream.host if default_port else f"{upstream.host}:{upstream.port}"}
        extensions = {"sni_hostname": upstream.host} if upstream.scheme == "https" else {}
        last_error: httpx.ConnectError | None = None
        with httpx.Client(timeout=timeout, follow_redirects=False, trust_env=False, verify=_ssl_context()) as client:
            for address in upstream.addresses:
                if time.monotonic() >= deadline:
                    raise _DeadlinePassed()
                host = f"[{address}]" if ":" in address else address
                url = urlunsplit((upstream.scheme, f"{host}:{upstream.port}", parts.path or "/", query, ""))
                try:
                    with client.stream("POST", url, content=body, headers=headers, extensions=extensions) as response:
                        received = self._read(response, deadline)
                except httpx.ConnectError as error:
                    last_error = error  # try the host's next address
                    continue
                return self._outcome(response, received)
        assert last_error is not None
        raise last_error

    def _read(self, response: httpx.Response, deadline: float) -> bytes:
        limit = settings.KEYSCOPE_MAX_UPSTREAM_RESPONSE_BYTES
        chunks: list[bytes] = []
        size = 0
        for chunk in response.iter_bytes():
            size += len(chunk)
            if size > limit:
                raise _ResponseTooLarge()
            chunks.append(chunk)
            # httpx's timeout bounds each read; this bounds the whole answer.
            if time.monotonic() >= deadline:
                raise _DeadlinePassed()
        return b"".join(chunks)

    def _outcome(self, response: httpx.Response, received: bytes) -> RunOutcome:
        result = _decode_body(response, received)
        if response.status_code >= 500:
            return RunOutcome(
                ok=False,
                result=result,
                http_status=response.status_code,
                code="upstream_error",
                detail=f"The upstream answered with status {response.status_code}.",
            )
        return RunOutcome(ok=True, result=result, http_status=response.status_code)


RUNNERS: dict[str, Runner] = {Deployment.Runner.ECHO: EchoRunner(), Deployment.Runner.HTTP: HttpRunner()}


def get_runner(name: str) -> Runner:
    return RUNNERS[name]
