"""Keys refused without a query are answered before DRF wraps the request (ClientAPIView.dispatch).

The answer must be the one DRF's own path gives (status, body, headers), be
counted against the address exactly once, and leave every other request,
a valid key's above all, to DRF, which then reuses what the early screen learnt.
"""

from __future__ import annotations

import pytest

from keys import authentication, crypto, verification
from keys.digest_filter import digest_filter
from keys.tests.helpers import assert_error, bad_checksum, execute, execution_url
from keys.views import ClientAPIView

pytestmark = pytest.mark.django_db

ADDRESS = "203.0.113.8"
LIMIT = 60  # KEYSCOPE_FAILED_AUTH_PER_MINUTE's default


def answer(response) -> tuple[int, bytes, dict[str, str]]:
    """What a client sees, less the header that differs on every response."""
    headers = {name: value for name, value in response.items() if name != "X-Request-Id"}
    return response.status_code, response.content, headers


def drf_only(monkeypatch) -> None:
    """The view as it was before the early answer: every request through DRF's dispatch."""
    monkeypatch.setattr(ClientAPIView, "_answers_refusals_early", lambda self: False)


REFUSED = {
    "bad checksum": bad_checksum,
    "wrong length": lambda key: key[:-3],
    "no prefix": lambda key: "not-a-key",
    "never issued": lambda key: crypto.generate_key("deployment"),
    "never issued, global": lambda key: crypto.generate_key("global"),
}


@pytest.mark.parametrize("case", REFUSED)
def test_a_key_refused_without_a_query_gets_drfs_answer_without_drf(
    client, deployment_key_a1, monkeypatch, drf_requests, django_assert_num_queries, case
):
    digest_filter.catch_up()
    candidate = REFUSED[case](deployment_key_a1[1])

    with django_assert_num_queries(0):
        early = execute(client, "org-a", "a-one", candidate, REMOTE_ADDR=ADDRESS)
    assert drf_requests == []
    drf_only(monkeypatch)
    through_drf = execute(client, "org-a", "a-one", candidate, REMOTE_ADDR=ADDRESS)

    assert len(drf_requests) == 1
    assert_error(early, 401, "invalid_key")
    assert answer(early) == answer(through_drf)
    assert early["WWW-Authenticate"] == "Bearer"
    assert early["Allow"] == "POST, OPTIONS"


def test_a_throttled_address_gets_drfs_429_without_drf(client, deployment_a1, monkeypatch, drf_requests):
    for _ in range(LIMIT):
        assert_error(execute(client, "org-a", "a-one", "not-a-key", REMOTE_ADDR=ADDRESS), 401, "invalid_key")
    early = execute(client, "org-a", "a-one", "not-a-key", REMOTE_ADDR=ADDRESS)
    assert drf_requests == []
    drf_only(monkeypatch)
    through_drf = execute(client, "org-a", "a-one", "not-a-key", REMOTE_ADDR=ADDRESS)

    assert_error(early, 429, "rate_limited")
    assert answer(early) == answer(through_drf)
    assert early["Retry-After"] == through_drf["Retry-After"]


@pytest.mark.parametrize("early", [True, False], ids=["early", "through DRF"])
def test_each_refusal_counts_once_against_the_address(client, deployment_a1, monkeypatch, early):
    if not early:
        drf_only(monkeypatch)
    statuses = [execute(client, "org-a", "a-one", "not-a-key", REMOTE_ADDR=ADDRESS).status_code for _ in range(LIMIT + 1)]

    assert statuses == [401] * LIMIT + [429]


def test_every_client_view_answers_early(client, deployment_key_a1, drf_requests):
    junk = bad_checksum(deployment_key_a1[1])
    headers = {"HTTP_AUTHORIZATION": f"Bearer {junk}", "REMOTE_ADDR": ADDRESS}
    answers = [
        execute(client, "org-a", "a-one", junk, REMOTE_ADDR=ADDRESS),
        client.get(execution_url("org-a", "a-one", "00000000-0000-0000-0000-000000000000"), **headers),
        client.get("/api/v1/key/", **headers),
        client.post("/api/v1/key/revoke/", **headers),
        client.get("/api/v1/key/", HTTP_X_API_KEY=junk, REMOTE_ADDR=ADDRESS),
    ]

    for response in answers:
        assert_error(response, 401, "invalid_key")
    assert drf_requests == []


ASKED = {
    "no Accept": {},
    "any, weighted": {"HTTP_ACCEPT": "*/*;q=0.1"},
    "a browser's": {"HTTP_ACCEPT": "text/html,application/xhtml+xml,application/xml;q=0.9,*/*;q=0.8"},
    "JSON, indented": {"HTTP_ACCEPT": "application/json; indent=4"},
    "a format it lacks": {"QUERY_STRING": "format=xml"},
}


@pytest.mark.parametrize("asked", ASKED)
@pytest.mark.parametrize("method", ["get", "head", "options"])
def test_the_early_answer_is_negotiated_as_drf_would(client, deployment_a1, monkeypatch, drf_requests, asked, method):
    send = getattr(client, method)
    headers = {"HTTP_AUTHORIZATION": "Bearer not-a-key", "REMOTE_ADDR": ADDRESS, **ASKED[asked]}

    early = send("/api/v1/key/", **headers)
    assert drf_requests == []
    drf_only(monkeypatch)
    through_drf = send("/api/v1/key/", **headers)

    assert early.status_code == 401
    assert answer(early) == answer(through_drf)
    if asked == "JSON, indented" and method != "head":
        assert b'\n    "detail"' in early.content


def test_a_key_in_either_header_is_screened_as_the_one_offered(client, deployment_key_a1, drf_requests):
    _, full_key = deployment_key_a1
    junk = bad_checksum(full_key)
    # A Bearer Authorization wins over X-Api-Key, an empty one included.
    refused = client.get("/api/v1/key/", HTTP_AUTHORIZATION="Bearer ", HTTP_X_API_KEY=full_key, REMOTE_ADDR=ADDRESS)
    accepted = client.get("/api/v1/key/", HTTP_AUTHORIZATION=f"Bearer {full_key}", HTTP_X_API_KEY=junk, REMOTE_ADDR=ADDRESS)
    other_scheme = client.get("/api/v1/key/", HTTP_AUTHORIZATION="Basic Zm9vOmJhcg==", HTTP_X_API_KEY=full_key, REMOTE_ADDR=ADDRESS)

    assert_error(refused, 401, "invalid_key")
    assert accepted.status_code == 200, accepted.content
    assert other_scheme.status_code == 200, other_scheme.content
    assert len(drf_requests) == 2


@pytest.mark.parametrize("offered", [None, ""], ids=["no key", "empty bearer"])
def test_no_key_and_an_empty_bearer_are_drfs_to_answer(client, deployment_a1, drf_requests, offered):
    headers = {} if offered is None else {"HTTP_AUTHORIZATION": "Bearer "}
    response = client.post("/api/v1/deployments/org-a/a-one/execute/", data={}, content_type="application/json", **headers)

    assert response.status_code == 401
    assert response.json()["code"] == ("not_authenticated" if offered is None else "invalid_key")
    assert len(drf_requests) == (1 if offered is None else 0)


def test_a_valid_key_is_screened_once_per_request(client, deployment_key_a1, monkeypatch, drf_requests):
    screened: list[str] = []
    screen = verification.screen

    def counting(candidate):
        screened.append(candidate)
        return screen(candidate)

    # Both callers: the view's early screen, and verify() when authenticate has no answer to reuse.
    monkeypatch.setattr(authentication, "screen", counting)
    monkeypatch.setattr(verification, "screen", counting)
    _, full_key = deployment_key_a1
    for _ in range(3):  # cold, then warm
        response = execute(client, "org-a", "a-one", full_key, REMOTE_ADDR=ADDRESS)
        assert response.status_code == 200, response.content

    assert len(screened) == 3
    assert len(drf_requests) == 3
