"""Property-based tests: the key format round-trips, and no input makes the client API answer 5xx."""

from __future__ import annotations

import json
from urllib.parse import quote

import pytest
from django.test import Client
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from keys import crypto
from keys.tests.helpers import bearer, execute_url, x_api_key

BASE62 = st.sampled_from(crypto.BASE62_ALPHABET)
BODIES = st.text(BASE62, min_size=crypto.BODY_LENGTH, max_size=crypto.BODY_LENGTH)
KINDS = st.sampled_from(["deployment", "global"])
# What a WSGI server can hand over as a header value: latin-1 text, control characters included.
HEADER_TEXT = st.text(st.characters(min_codepoint=0, max_codepoint=255, exclude_characters="\r\n"), max_size=120)

# Bounded so the whole file runs in seconds; the fixtures hold for every example
# because nothing here changes the data they made.
HTTP = settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])


@given(kind=KINDS)
def test_a_generated_key_parses_back_to_its_kind(kind):
    key = crypto.generate_key(kind)
    assert len(key) == crypto.KEY_LENGTH
    assert crypto.key_kind(key) == kind
    assert crypto.mask(kind, crypto.last4(key)).endswith(key[-4:])


@given(kind=KINDS, body=BODIES)
def test_any_body_with_its_checksum_is_a_key_of_its_prefix(kind, body):
    key = crypto.PREFIX_BY_KIND[kind] + body + crypto.checksum(body)
    assert crypto.key_kind(key) == kind


@given(kind=KINDS, body=BODIES, position=st.integers(crypto.PREFIX_LENGTH, crypto.KEY_LENGTH - 1), replacement=BASE62)
def test_changing_one_character_after_the_prefix_breaks_the_checksum(kind, body, position, replacement):
    key = crypto.PREFIX_BY_KIND[kind] + body + crypto.checksum(body)
    mangled = key[:position] + replacement + key[position + 1 :]
    if mangled != key:
        assert crypto.key_kind(mangled) is None


@given(candidate=st.text(max_size=60))
def test_any_text_is_a_kind_or_none_never_an_error(candidate):
    assert crypto.key_kind(candidate) in (None, "deployment", "global")


def assert_not_5xx(response) -> None:
    assert response.status_code < 500, (response.status_code, response.content[:300])
    if response.status_code >= 400:
        assert {"detail", "code"} <= set(response.json()) or response.status_code == 400


@pytest.fixture
def fuzz_target(deployment_a1, deployment_key_a1, settings):
    # Thousands of bad keys from one address would only measure the failed-auth throttle.
    settings.KEYSCOPE_FAILED_AUTH_PER_MINUTE = 0
    return deployment_key_a1[1]


@pytest.mark.django_db
@HTTP
@given(value=HEADER_TEXT, use_x_api_key=st.booleans())
def test_any_credential_header_is_answered_without_a_5xx(fuzz_target, value, use_x_api_key):
    headers = x_api_key(value) if use_x_api_key else {"HTTP_AUTHORIZATION": value}
    client = Client()
    assert_not_5xx(client.post(execute_url("org-a", "a-one"), b"{}", content_type="application/json", **headers))
    assert_not_5xx(client.get("/api/v1/key/", **headers))


@pytest.mark.django_db
@HTTP
@given(cut=st.integers(0, crypto.KEY_LENGTH), tail=HEADER_TEXT)
def test_a_cut_or_padded_real_key_is_refused_without_a_5xx(fuzz_target, cut, tail):
    candidate = fuzz_target[:cut] + tail
    response = Client().get("/api/v1/key/", **bearer(candidate))
    assert_not_5xx(response)
    if candidate.strip() != fuzz_target:
        assert response.status_code == 401


JSON_VALUES = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats() | st.text(),
    lambda children: st.lists(children, max_size=4) | st.dictionaries(st.text(max_size=8), children, max_size=4),
    max_leaves=20,
)


@pytest.mark.django_db
@HTTP
@given(body=st.one_of(st.binary(max_size=300), JSON_VALUES.map(lambda v: json.dumps(v).encode())),
       content_type=st.sampled_from(["application/json", "application/json; charset=utf-16", "text/plain", ""]))
def test_any_body_is_answered_without_a_5xx(fuzz_target, body, content_type):
    response = Client().generic(
        "POST", execute_url("org-a", "a-one"), body, content_type=content_type, **bearer(fuzz_target)
    )
    assert_not_5xx(response)


@pytest.mark.django_db
@HTTP
@given(segment=st.text(max_size=80), where=st.sampled_from(["org", "deployment", "execution", "mgmt-org", "mgmt-key"]))
def test_any_path_segment_is_answered_without_a_5xx(fuzz_target, admin_a, segment, where):
    from keys.tests.helpers import basic

    encoded = quote(segment.encode("utf-8", "surrogatepass"), safe="")
    paths = {
        "org": (f"/api/v1/deployments/{encoded}/a-one/execute/", bearer(fuzz_target)),
        "deployment": (f"/api/v1/deployments/org-a/{encoded}/execute/", bearer(fuzz_target)),
        "execution": (f"/api/v1/deployments/org-a/a-one/executions/{encoded}/", bearer(fuzz_target)),
        "mgmt-org": (f"/api/v1/orgs/{encoded}/deployments/", {"HTTP_AUTHORIZATION": basic(admin_a.username)}),
        "mgmt-key": (f"/api/v1/orgs/org-a/deployments/a-one/keys/{encoded}/", {"HTTP_AUTHORIZATION": basic(admin_a.username)}),
    }
    path, headers = paths[where]
    client = Client()
    method = client.post if where in ("org", "deployment") else client.get
    response = method(path, **headers) if method == client.get else method(path, b"{}", content_type="application/json", **headers)
    assert_not_5xx(response)
