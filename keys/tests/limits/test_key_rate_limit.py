"""Per-key rate limits: N a minute, then 429 with the IETF fields and Retry-After."""

import pytest
from django.test import override_settings

from keys.services import key_update
from keys.tests.factories import issue_deployment_key, issue_global_key
from keys.tests.helpers import assert_error, execute

pytestmark = pytest.mark.django_db


def policy(limit: int) -> str:
    return f'"key";q={limit};w=60'


def test_a_key_gets_its_limit_then_429_with_ratelimit_fields_and_retry_after(client, deployment_a1):
    _, full_key = issue_deployment_key(deployment_a1, rate_limit_per_minute=3)

    responses = [execute(client, "org-a", "a-one", full_key) for _ in range(3)]
    refused = execute(client, "org-a", "a-one", full_key)

    assert [r.status_code for r in responses] == [200, 200, 200]
    assert [r["RateLimit"] for r in responses] == ['"key";r=2;t=59', '"key";r=1;t=59', '"key";r=0;t=59']
    assert all(r["RateLimit-Policy"] == policy(3) for r in responses)
    assert_error(refused, 429, "rate_limited")
    assert refused["RateLimit-Policy"] == policy(3)
    assert refused["RateLimit"] == '"key";r=0;t=59'
    assert refused["Retry-After"] == "59"


def test_a_refused_request_still_counts_and_the_next_window_starts_afresh(client, deployment_a1, clock):
    _, full_key = issue_deployment_key(deployment_a1, rate_limit_per_minute=1)
    assert execute(client, "org-a", "a-one", full_key).status_code == 200
    assert execute(client, "org-a", "a-one", full_key).status_code == 429

    clock.advance(30)
    later_in_the_window = execute(client, "org-a", "a-one", full_key)
    clock.advance(30)
    next_window = execute(client, "org-a", "a-one", full_key)

    assert later_in_the_window.status_code == 429
    assert later_in_the_window["Retry-After"] == "29"
    assert next_window.status_code == 200
    assert next_window["RateLimit"] == '"key";r=0;t=59'


def test_introspection_is_limited_and_counted_like_execution(client, org_a, deployment_a1):
    _, full_key = issue_global_key(org_a, allow_all_deployments=True, rate_limit_per_minute=2)

    first = client.get("/api/v1/key/", HTTP_AUTHORIZATION=f"Bearer {full_key}")
    second = execute(client, "org-a", "a-one", full_key)
    third = client.get("/api/v1/key/", HTTP_AUTHORIZATION=f"Bearer {full_key}")

    assert (first.status_code, second.status_code) == (200, 200)
    assert first["RateLimit"] == '"key";r=1;t=59'
    assert_error(third, 429, "rate_limited")


def test_every_answer_counts_even_a_404(client, deployment_a1, org_a):
    _, full_key = issue_global_key(org_a, allow_all_deployments=True, rate_limit_per_minute=2)

    missing = execute(client, "org-a", "no-such-deployment", full_key)
    ok = execute(client, "org-a", "a-one", full_key)
    refused = execute(client, "org-a", "a-one", full_key)

    assert missing.status_code == 404
    assert missing["RateLimit"] == '"key";r=1;t=59'
    assert ok.status_code == 200
    assert_error(refused, 429, "rate_limited")


# The fallback chain: key → organization default → KEYSCOPE_DEFAULT_RATE_LIMIT_PER_MINUTE


@override_settings(KEYSCOPE_DEFAULT_RATE_LIMIT_PER_MINUTE=4)
def test_without_key_or_organization_limit_the_setting_applies(client, deployment_a1):
    _, full_key = issue_deployment_key(deployment_a1)

    response = execute(client, "org-a", "a-one", full_key)

    assert response["RateLimit-Policy"] == policy(4)
    assert response["RateLimit"] == '"key";r=3;t=59'


@override_settings(KEYSCOPE_DEFAULT_RATE_LIMIT_PER_MINUTE=4)
def test_the_organization_default_beats_the_setting(client, org_a, deployment_a1):
    org_a.default_rate_limit_per_minute = 2
    org_a.save()
    _, full_key = issue_deployment_key(deployment_a1)

    responses = [execute(client, "org-a", "a-one", full_key) for _ in range(3)]

    assert [r.status_code for r in responses] == [200, 200, 429]
    assert responses[0]["RateLimit-Policy"] == policy(2)


@override_settings(KEYSCOPE_DEFAULT_RATE_LIMIT_PER_MINUTE=4)
def test_the_key_limit_beats_the_organization_default(client, org_a, deployment_a1):
    org_a.default_rate_limit_per_minute = 2
    org_a.save()
    _, full_key = issue_deployment_key(deployment_a1, rate_limit_per_minute=3)

    responses = [execute(client, "org-a", "a-one", full_key) for _ in range(4)]

    assert [r.status_code for r in responses] == [200, 200, 200, 429]
    assert responses[0]["RateLimit-Policy"] == policy(3)


@override_settings(KEYSCOPE_DEFAULT_RATE_LIMIT_PER_MINUTE=1)
def test_the_organization_default_applies_to_global_keys_too(client, org_a, deployment_a1):
    org_a.default_rate_limit_per_minute = 5
    org_a.save()
    _, full_key = issue_global_key(org_a, allow_all_deployments=True)

    response = execute(client, "org-a", "a-one", full_key)

    assert response["RateLimit-Policy"] == policy(5)


def test_a_changed_organization_default_applies_on_the_next_request(client, org_a, deployment_a1):
    _, full_key = issue_deployment_key(deployment_a1)
    assert execute(client, "org-a", "a-one", full_key)["RateLimit-Policy"] == policy(600)

    org_a.default_rate_limit_per_minute = 7
    org_a.save()

    assert execute(client, "org-a", "a-one", full_key)["RateLimit-Policy"] == policy(7)


# 0 means unlimited


@pytest.mark.parametrize(
    "key_limit, org_default, setting",
    [
        pytest.param(0, 5, 5, id="key-0"),
        pytest.param(None, 0, 5, id="organization-0"),
        pytest.param(None, None, 0, id="setting-0"),
    ],
)
def test_zero_means_unlimited_and_sends_no_ratelimit_fields(client, org_a, deployment_a1, key_limit, org_default, setting):
    org_a.default_rate_limit_per_minute = org_default
    org_a.save()
    _, full_key = issue_deployment_key(deployment_a1, rate_limit_per_minute=key_limit)

    with override_settings(KEYSCOPE_DEFAULT_RATE_LIMIT_PER_MINUTE=setting):
        responses = [execute(client, "org-a", "a-one", full_key) for _ in range(12)]

    assert {r.status_code for r in responses} == {200}
    assert not any(r.has_header("RateLimit") or r.has_header("RateLimit-Policy") for r in responses)


def test_a_key_limit_of_zero_beats_an_organization_default(client, org_a, deployment_a1):
    org_a.default_rate_limit_per_minute = 1
    org_a.save()
    _, full_key = issue_deployment_key(deployment_a1, rate_limit_per_minute=0)

    assert [execute(client, "org-a", "a-one", full_key).status_code for _ in range(3)] == [200, 200, 200]


# Independent per key


def test_a_burst_on_one_key_leaves_another_keys_remaining_untouched(client, org_a, deployment_a1):
    _, busy = issue_deployment_key(deployment_a1, name="busy", rate_limit_per_minute=5)
    _, quiet = issue_global_key(org_a, name="quiet", allow_all_deployments=True, rate_limit_per_minute=5)
    _, twin = issue_deployment_key(deployment_a1, name="twin of busy", rate_limit_per_minute=5)
    assert execute(client, "org-a", "a-one", quiet)["RateLimit"] == '"key";r=4;t=59'

    burst = [execute(client, "org-a", "a-one", busy).status_code for _ in range(8)]
    quiet_after = execute(client, "org-a", "a-one", quiet)
    twin_after = execute(client, "org-a", "a-one", twin)

    assert burst == [200] * 5 + [429] * 3
    assert quiet_after.status_code == 200
    assert quiet_after["RateLimit"] == '"key";r=3;t=59'
    assert twin_after.status_code == 200
    assert twin_after["RateLimit"] == '"key";r=4;t=59'


def test_a_changed_key_limit_applies_on_the_next_request(client, deployment_a1, admin_a):
    key, full_key = issue_deployment_key(deployment_a1, rate_limit_per_minute=100)
    assert execute(client, "org-a", "a-one", full_key).status_code == 200

    key_update(key=key, actor=admin_a, rate_limit_per_minute=1)

    assert_error(execute(client, "org-a", "a-one", full_key), 429, "rate_limited")
