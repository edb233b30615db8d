"""The client API's execute endpoint: bodies, content types, paths, what is recorded."""

import json
import uuid

import pytest

from deployments.models import Execution
from keys.tests.helpers import assert_error, bearer, execute, execute_url


def test_execute_runs_the_deployment_and_records_the_execution_with_its_key(client, global_selected_key_a):
    row, full_key = global_selected_key_a

    response = execute(client, "org-a", "a-two", full_key, body={"text": "hello", "n": [1, 2]}, REMOTE_ADDR="203.0.113.7")

    assert response.status_code == 200
    body = response.json()
    assert set(body) == {"execution_id", "status", "result", "elapsed_ms"}
    assert body["status"] == "COMPLETED"
    assert body["result"] == {"text": "hello", "n": [1, 2]}
    assert isinstance(body["elapsed_ms"], int) and body["elapsed_ms"] >= 0
    execution = Execution.objects.get(pk=uuid.UUID(body["execution_id"]))
    assert execution.deployment.slug == "a-two"
    assert execution.status == Execution.Status.COMPLETED
    assert execution.request == {"text": "hello", "n": [1, 2]}
    assert (execution.key_kind, str(execution.key_id), execution.key_name) == ("global", str(row.pk), row.name)
    assert execution.client_ip == "203.0.113.7"


def test_a_deployment_key_execution_records_the_deployment_key(client, deployment_key_a1):
    row, full_key = deployment_key_a1
    response = execute(client, "org-a", "a-one", full_key)

    execution = Execution.objects.get(pk=response.json()["execution_id"])
    assert (execution.key_kind, execution.key_id) == ("deployment", row.pk)


@pytest.mark.parametrize("trailing_slash", [True, False])
def test_execute_answers_with_and_without_the_trailing_slash(client, deployment_key_a1, trailing_slash):
    _, full_key = deployment_key_a1
    response = client.post(
        execute_url("org-a", "a-one", trailing_slash), {"a": 1}, content_type="application/json", **bearer(full_key)
    )
    assert response.status_code == 200
    assert response.json()["result"] == {"a": 1}


@pytest.mark.parametrize("trailing_slash", [True, False])
def test_errors_answer_with_and_without_the_trailing_slash(client, deployment_a1, trailing_slash):
    response = client.post(execute_url("org-a", "a-one", trailing_slash), {}, content_type="application/json")
    assert_error(response, 401, "not_authenticated")


@pytest.mark.parametrize("content_type", ["application/json", "application/json; charset=utf-8", None])
def test_an_empty_body_is_an_empty_object(client, deployment_key_a1, content_type):
    _, full_key = deployment_key_a1
    extra = {"CONTENT_TYPE": content_type} if content_type else {}
    response = client.generic("POST", execute_url("org-a", "a-one"), b"", **extra, **bearer(full_key))

    assert response.status_code == 200, response.content
    assert response.json()["result"] == {}
    assert Execution.objects.get().request == {}


@pytest.mark.parametrize(
    "content_type", ["text/plain", "application/x-www-form-urlencoded", "multipart/form-data; boundary=x", "application/xml"]
)
def test_another_content_type_is_415(client, deployment_key_a1, content_type):
    _, full_key = deployment_key_a1
    response = client.generic(
        "POST", execute_url("org-a", "a-one"), b'{"a": 1}', content_type=content_type, **bearer(full_key)
    )
    assert_error(response, 415, "unsupported_media_type")
    assert not Execution.objects.exists()


def test_415_is_decided_after_the_key(client, deployment_a1):
    response = client.generic("POST", execute_url("org-a", "a-one"), b"x", content_type="text/plain")
    assert_error(response, 401, "not_authenticated")


def deeply_nested(depth: int) -> bytes:
    return b"[" * depth + b"]" * depth


@pytest.mark.parametrize(
    "raw",
    [
        pytest.param(b"[1, 2]", id="list"),
        pytest.param(b'"text"', id="string"),
        pytest.param(b"42", id="number"),
        pytest.param(b"null", id="null"),
        pytest.param(b"true", id="boolean"),
        pytest.param(b'{"a": ', id="malformed"),
        pytest.param(b"{'a': 1}", id="single-quotes"),
        pytest.param(b'{"a": 1} trailing', id="trailing-garbage"),
        pytest.param(b'{"a": "\xff\xfe"}', id="invalid-utf-8"),
        pytest.param(b'{"a": NaN}', id="nan"),
        pytest.param(deeply_nested(100_000), id="deep-list-nesting"),
        pytest.param(b'{"a":' * 50_000 + b"1" + b"}" * 50_000, id="deep-object-nesting"),
    ],
)
def test_a_body_that_is_not_a_json_object_is_400_never_500(client, deployment_key_a1, raw):
    _, full_key = deployment_key_a1
    response = client.generic(
        "POST", execute_url("org-a", "a-one"), raw, content_type="application/json", **bearer(full_key)
    )

    assert response.status_code == 400, response.content
    body = response.json()
    assert body  # DRF's form for a parse error: {"detail", "code"}
    assert set(body) == {"detail", "code"}
    assert body["code"] == "parse_error"
    assert not Execution.objects.exists()


def test_a_unicode_body_round_trips(client, deployment_key_a1):
    _, full_key = deployment_key_a1
    payload = {"text": "h\u00e9llo \u2603 \U0001f600", "nested": {"list": [None, True, 1.5]}}
    response = client.generic(
        "POST",
        execute_url("org-a", "a-one"),
        json.dumps(payload, ensure_ascii=False).encode(),
        content_type="application/json",
        **bearer(full_key),
    )
    assert response.json()["result"] == payload


@pytest.mark.parametrize("method", ["get", "put", "patch", "delete"])
def test_execute_answers_only_post(client, deployment_key_a1, method):
    _, full_key = deployment_key_a1
    response = getattr(client, method)(execute_url("org-a", "a-one"), **bearer(full_key))
    assert_error(response, 405, "method_not_allowed")


def test_every_response_carries_a_request_id(client, deployment_key_a1):
    _, full_key = deployment_key_a1
    assert execute(client, "org-a", "a-one", full_key).has_header("X-Request-Id")
    assert execute(client, "org-a", "a-one").has_header("X-Request-Id")
