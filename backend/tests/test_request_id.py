"""Every response carries X-Request-Id and every log line of the request names it."""

import io
import logging
import re

import pytest

GENERATED_ID = re.compile(r"[0-9a-f]{32}")


@pytest.fixture
def log_stream():
    """The configured stdout handler, writing into a buffer for the test."""
    handler = next(h for h in logging.getLogger().handlers if getattr(h, "name", "") == "stdout")
    buffer = io.StringIO()
    previous = handler.setStream(buffer)
    yield buffer
    handler.setStream(previous)


@pytest.mark.parametrize(
    "request_id",
    [
        "0f8fad5b-d9cb-469f-a165-70867728950e",
        "abc.DEF_123:456",
        "a" * 128,
    ],
)
def test_a_valid_incoming_request_id_is_kept(client, request_id):
    response = client.get("/healthz", headers={"X-Request-Id": request_id})

    assert response["X-Request-Id"] == request_id


@pytest.mark.parametrize(
    "request_id",
    [
        "a" * 129,
        "short",
        "has spaces in it",
        "abcdefgh\n",
        "abcdefgh\r\nSet-Cookie: x=1",
        "request-id-ünïcode",
        "<script>alert(1)</script>",
        "",
    ],
)
def test_an_invalid_incoming_request_id_is_replaced(client, request_id):
    response = client.get("/healthz", headers={"X-Request-Id": request_id})

    assert response["X-Request-Id"] != request_id
    assert GENERATED_ID.fullmatch(response["X-Request-Id"])


def test_a_request_id_is_made_when_none_is_sent(client):
    first = client.get("/healthz")
    second = client.get("/healthz")

    assert GENERATED_ID.fullmatch(first["X-Request-Id"])
    assert first["X-Request-Id"] != second["X-Request-Id"]


def test_error_responses_carry_the_request_id(client):
    response = client.get("/no-such-page/", headers={"X-Request-Id": "req-404-check"})

    assert response.status_code == 404
    assert response["X-Request-Id"] == "req-404-check"


def test_log_lines_of_a_request_name_its_request_id(client, log_stream):
    client.get("/no-such-page/", headers={"X-Request-Id": "req-logged-0001"})

    lines = [line for line in log_stream.getvalue().splitlines() if "/no-such-page/" in line]
    assert lines, log_stream.getvalue()
    assert all("request_id=req-logged-0001" in line for line in lines)


def test_application_log_lines_name_the_request_id(client, log_stream):
    # A keyscope logger propagates to the root handler, which also names the request.
    from unittest import mock

    from django.db import OperationalError

    with mock.patch(
        "django.db.backends.base.base.BaseDatabaseWrapper.ensure_connection",
        side_effect=OperationalError("could not connect to server"),
    ):
        client.get("/healthz", headers={"X-Request-Id": "req-health-0001"})

    lines = [line for line in log_stream.getvalue().splitlines() if "keyscope.health" in line]
    assert lines, log_stream.getvalue()
    assert all("request_id=req-health-0001" in line for line in lines)


def test_an_invalid_request_id_never_reaches_the_logs(client, log_stream):
    client.get("/no-such-page/", headers={"X-Request-Id": "forged\nline injected"})

    output = log_stream.getvalue()
    assert "injected" not in output
    assert "forged" not in output


def test_log_lines_outside_a_request_say_so(log_stream):
    logging.getLogger("keyscope.test").warning("outside any request")

    assert "request_id=- outside any request" in log_stream.getvalue()


@pytest.mark.urls("backend.tests.urls_failing_view")
def test_every_log_line_of_a_failing_request_names_its_request_id(client, log_stream):
    client.raise_request_exception = False

    response = client.get("/fail/", headers={"X-Request-Id": "req-failing-0001"})

    assert response.status_code == 500
    assert response["X-Request-Id"] == "req-failing-0001"
    lines = [line for line in log_stream.getvalue().splitlines() if " request_id=" in line]
    assert any("about to fail" in line for line in lines)
    assert any("Internal Server Error: /fail/" in line for line in lines)
    assert all("request_id=req-failing-0001" in line for line in lines), lines
