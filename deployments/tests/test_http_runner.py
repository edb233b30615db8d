"""The http runner against a real upstream on 127.0.0.1: what is forwarded, what is recorded."""

import json
import socket

import pytest
from rest_framework.test import APIClient

from deployments import encryption
from deployments.models import Deployment, Execution
from deployments.tests.factories import DeploymentFactory
from keys.models import DeploymentKey

UPSTREAM_SECRET = "Bearer upstream-secret-for-tests"


def http_deployment(org, upstream_url: str, **fields) -> Deployment:
    deployment = DeploymentFactory.create(organization=org, slug="model", runner=Deployment.Runner.HTTP, **fields)
    deployment.upstream_url = upstream_url
    deployment.full_clean()
    deployment.save()
    return deployment


def execute(deployment: Deployment, body: object = None, query: str = "", **extra):
    _, full_key = DeploymentKey.objects.issue(deployment=deployment, name="client")
    path = f"/api/v1/deployments/{deployment.organization.slug}/{deployment.slug}/execute/"
    if query:
        path = f"{path}?{query}"
    client = APIClient()
    body = body if body is not None else {"text": "hello"}
    response = client.post(path, body, format="json", HTTP_AUTHORIZATION=f"Bearer {full_key}", **extra)
    return response, full_key


def only_execution() -> Execution:
    (execution,) = Execution.objects.all()
    return execution


def test_json_answer_is_the_result(org_a, upstream):
    deployment = http_deployment(org_a, upstream.url("/json"))

    response, _ = execute(deployment, {"text": "hello"})

    assert response.status_code == 200
    assert response.json()["status"] == "COMPLETED"
    assert response.json()["result"] == {"answer": 42, "received": {"text": "hello"}}
    (received,) = upstream.requests
    assert received.method == "POST"
    assert received.json() == {"text": "hello"}
    assert received.headers["Content-Type"] == "application/json"
    execution = only_execution()
    assert execution.status == Execution.Status.COMPLETED
    assert execution.http_status == 200
    assert execution.result == {"answer": 42, "received": {"text": "hello"}}
    assert str(execution.id) == response.json()["execution_id"]


def test_text_answer_is_the_result(org_a, upstream):
    deployment = http_deployment(org_a, upstream.url("/text"))

    response, _ = execute(deployment)

    assert response.status_code == 200
    assert response.json()["result"] == "plain answer"
    assert only_execution().result == "plain answer"


def test_upstream_learns_the_caller_and_never_sees_the_key(org_a, upstream):
    deployment = http_deployment(org_a, upstream.url("/headers?fixed=1"))
    _, other_key = DeploymentKey.objects.issue(deployment=deployment, name="other")

    response, full_key = execute(
        deployment,
        query=f"a=1&api_key={other_key}&token=ksd_not_even_well_formed&b=two",
        HTTP_X_API_KEY=other_key,
        HTTP_COOKIE="sessionid=abc",
    )

    assert response.status_code == 200
    (received,) = upstream.requests
    assert received.query == "fixed=1&a=1&b=two"
    headers = {name.lower(): value for name, value in received.headers.items()}
    execution = only_execution()
    key_row = DeploymentKey.objects.get(name="client")
    assert headers["x-keyscope-organization"] == "org-a"
    assert headers["x-keyscope-deployment"] == "model"
    assert headers["x-keyscope-key-id"] == str(key_row.id)
    assert headers["x-keyscope-execution-id"] == str(execution.id)
    assert "authorization" not in headers
    assert "x-api-key" not in headers
    assert "cookie" not in headers
    everything = repr(received)
    for secret in (full_key, other_key):
        assert secret not in everything
        assert secret not in repr(execution.result)


def test_credentials_header_arrives_decrypted(org_a, upstream, encryption_keys):
    deployment = http_deployment(org_a, upstream.url("/headers"))
    deployment.set_upstream_headers({"Authorization": UPSTREAM_SECRET, "X-Model-Version": "7"})
    deployment.save()

    response, full_key = execute(deployment)

    assert response.status_code == 200
    (received,) = upstream.requests
    assert received.headers["Authorization"] == UPSTREAM_SECRET
    assert received.headers["X-Model-Version"] == "7"
    assert full_key not in repr(received)


def test_slow_upstream_is_504(org_a, upstream):
    deployment = http_deployment(org_a, upstream.url("/slow"), timeout_seconds=1)

    response, _ = execute(deployment)

    assert response.status_code == 504
    body = response.json()
    assert body["status"] == "FAILED"
    assert body["code"] == "upstream_timeout"
    assert body["detail"]
    execution = only_execution()
    assert execution.status == Execution.Status.FAILED
    assert execution.error_code == "upstream_timeout"
    assert execution.http_status == 504
    assert execution.elapsed_ms < 2500


def closed_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def test_closed_port_is_502(org_a, upstream):
    deployment = http_deployment(org_a, f"http://127.0.0.1:{closed_port()}/")

    response, _ = execute(deployment)

    assert response.status_code == 502
    assert response.json()["code"] == "upstream_unavailable"
    execution = only_execution()
    assert (execution.status, execution.error_code, execution.http_status) == ("FAILED", "upstream_unavailable", 502)


def test_unresolvable_host_is_502(org_a, upstream, monkeypatch):
    deployment = http_deployment(org_a, upstream.url("/json"))
    Deployment.objects.filter(pk=deployment.pk).update(upstream_url="http://models.example.com/")

    def no_such_host(*args, **kwargs):
        raise socket.gaierror(socket.EAI_NONAME, "Name or service not known")

    monkeypatch.setattr(socket, "getaddrinfo", no_such_host)
    response, _ = execute(deployment)

    assert response.status_code == 502
    assert response.json()["code"] == "upstream_unavailable"
    assert upstream.requests == []


@pytest.mark.parametrize(
    ("path", "upstream_status", "result"),
    [("/error", 500, {"error": "the model crashed"}), ("/unavailable", 503, "down for maintenance")],
)
def test_upstream_5xx_is_502_with_its_body_and_status_recorded(org_a, upstream, path, upstream_status, result):
    deployment = http_deployment(org_a, upstream.url(path))

    response, _ = execute(deployment)

    assert response.status_code == 502
    body = response.json()
    assert (body["status"], body["code"], body["result"]) == ("FAILED", "upstream_error", result)
    execution = only_execution()
    assert (execution.error_code, execution.http_status, execution.result) == ("upstream_error", upstream_status, result)


def test_upstream_4xx_is_completed_with_its_status_recorded(org_a, upstream):
    deployment = http_deployment(org_a, upstream.url("/missing"))

    response, _ = execute(deployment)

    assert response.status_code == 200
    assert response.json()["result"] == {"error": "no such thing"}
    execution = only_execution()
    assert (execution.status, execution.http_status) == ("COMPLETED", 404)


def test_redirects_are_not_followed(org_a, upstream):
    deployment = http_deployment(org_a, upstream.url("/redirect"))

    response, _ = execute(deployment)

    assert response.status_code == 200
    assert upstream.paths() == ["/redirect"]
    execution = only_execution()
    assert (execution.status, execution.http_status, execution.result) == ("COMPLETED", 302, None)


def test_body_over_the_limit_is_413_and_nothing_is_forwarded(org_a, upstream, settings):
    settings.KEYSCOPE_MAX_BODY_BYTES = 100
    deployment = http_deployment(org_a, upstream.url("/json"))

    response, _ = execute(deployment, {"text": "x" * 200})

    assert response.status_code == 413
    assert response.json() == {"detail": "The request body is larger than 100 bytes.", "code": "payload_too_large"}
    assert upstream.requests == []
    assert not Execution.objects.exists()


def test_body_over_djangos_own_limit_is_still_413(org_a, upstream):
    deployment = http_deployment(org_a, upstream.url("/json"))

    response, _ = execute(deployment, {"text": "x" * (3 * 1024 * 1024)})

    assert response.status_code == 413
    assert response.json()["code"] == "payload_too_large"
    assert upstream.requests == []


def test_body_at_the_limit_is_forwarded(org_a, upstream, settings):
    body = {"text": "x" * 50}
    settings.KEYSCOPE_MAX_BODY_BYTES = len(b'{"text":"' + b"x" * 50 + b'"}')
    deployment = http_deployment(org_a, upstream.url("/json"))

    response, _ = execute(deployment, body)

    assert response.status_code == 200
    assert len(upstream.requests) == 1


def test_internal_address_is_refused_at_call_time_once_no_longer_allowed(org_a, upstream, settings):
    deployment = http_deployment(org_a, upstream.url("/json"))
    settings.KEYSCOPE_UPSTREAM_ALLOWED_HOSTS = []

    response, _ = execute(deployment)

    assert response.status_code == 502
    assert response.json()["code"] == "upstream_not_allowed"
    assert upstream.requests == []
    assert only_execution().error_code == "upstream_not_allowed"


def test_host_name_resolving_to_an_internal_address_is_refused_at_call_time(org_a, upstream, monkeypatch):
    deployment = http_deployment(org_a, upstream.url("/json"))
    Deployment.objects.filter(pk=deployment.pk).update(upstream_url="http://rebinding.example.com/json")

    def resolves_to_metadata(host, port, *args, **kwargs):
        return [(socket.AF_INET, socket.SOCK_STREAM, 6, "", ("169.254.169.254", port))]

    monkeypatch.setattr(socket, "getaddrinfo", resolves_to_metadata)
    response, _ = execute(deployment)

    assert response.status_code == 502
    assert response.json()["code"] == "upstream_not_allowed"
    assert upstream.requests == []


def test_allowed_host_name_is_called_with_its_name_in_the_host_header(org_a, upstream, settings):
    settings.KEYSCOPE_UPSTREAM_ALLOWED_HOSTS = ["localhost"]
    port = upstream.base_url.rsplit(":", 1)[1]
    deployment = http_deployment(org_a, f"http://localhost:{port}/headers")

    response, _ = execute(deployment)

    assert response.status_code == 200
    assert response.json()["result"]["headers"]["Host"] == f"localhost:{port}"


def test_unreadable_credentials_fail_the_call_and_forward_nothing(org_a, upstream, encryption_keys, settings):
    deployment = http_deployment(org_a, upstream.url("/headers"))
    deployment.set_upstream_headers({"Authorization": UPSTREAM_SECRET})
    deployment.save()
    settings.KEYSCOPE_ENCRYPTION_KEYS = []

    response, _ = execute(deployment)

    assert response.status_code == 502
    assert response.json()["code"] == "upstream_credentials_unavailable"
    assert UPSTREAM_SECRET not in response.content.decode()
    assert upstream.requests == []


@pytest.mark.parametrize("value", ["secret-caf\u00e9", "secret\u2028line"])
def test_a_stored_value_the_http_client_refuses_fails_the_execution_and_shows_nothing_of_it(
    org_a, upstream, encryption_keys, stdout_log, value
):
    """A header value stored before values had to be ASCII: the call fails, recorded, with no 500 and no secret."""
    deployment = http_deployment(org_a, upstream.url("/headers"))
    deployment.upstream_headers_encrypted = encryption.encrypt(json.dumps({"Authorization": value}))
    deployment.save()

    response, _ = execute(deployment)

    assert response.status_code == 502
    body = response.json()
    assert (body["status"], body["code"]) == ("FAILED", "upstream_error")
    execution = only_execution()
    assert (execution.status, execution.error_code) == (Execution.Status.FAILED, "upstream_error")
    assert upstream.requests == []
    odd = next(character for character in value if not character.isascii())
    for text in (response.content.decode(), execution.error_detail, stdout_log.getvalue()):
        assert "secret" not in text and odd not in text and ascii(odd)[1:-1] not in text


def test_an_answer_postgresql_cannot_store_is_recorded_with_replacement_characters(org_a, upstream):
    deployment = http_deployment(org_a, upstream.url("/unstorable"))

    response, _ = execute(deployment)

    assert response.status_code == 200
    expected = {"nul": "a\ufffdb", "lone": "\ufffd", "\ufffd": "key", "pair": "\U0001f511"}
    assert response.json()["result"] == expected
    assert only_execution().result == expected


def test_deployment_without_credentials_works_without_encryption_keys(org_a, upstream, settings):
    settings.KEYSCOPE_ENCRYPTION_KEYS = []
    deployment = http_deployment(org_a, upstream.url("/json"))

    response, _ = execute(deployment)

    assert response.status_code == 200
