"""POST /api/v1/credentials/revoke/: anyone may report leaked keys, without an account, and learns nothing.

Both sides are checked: the answer (always 202 {"received": n}) and what was stored.
"""

import json
import secrets
import uuid

import pytest
from django.core import mail
from django.db import connection
from django.test.utils import CaptureQueriesContext

from keys import crypto
from keys.models import AuditEvent, DeploymentKey, GlobalApiDeploymentKey
from keys.tests.factories import import_deployment_key, import_global_key, issue_global_key
from keys.tests.helpers import assert_error, bad_checksum, execute
from lib import counters

from .helpers import CREDENTIALS_URL, FULL_KEY, assert_no_full_key_in_any_email, last_event, report, works

pytestmark = pytest.mark.django_db


KINDS: tuple[crypto.KeyKind, ...] = ("deployment", "global")


def unknown_key(kind: crypto.KeyKind = "deployment") -> str:
    """A well-formed key that no key ever had (checksum right, so it costs a lookup)."""
    return crypto.generate_key(kind)


def malformed(full_key: str) -> list[str]:
    return [
        bad_checksum(full_key),  # checksum
        "ksx_" + full_key[4:],  # prefix
        full_key[:-1],  # length
        full_key + "0",
        full_key[:10] + "-" + full_key[11:],  # alphabet
        full_key.lower(),
        "",
        "not a key at all",
        "é" * 42,
    ]


def stored_keys() -> list:
    return [
        sorted(DeploymentKey.objects.values_list("digest", "revoked_at", "revocation_reason")),
        sorted(GlobalApiDeploymentKey.objects.values_list("digest", "revoked_at", "revocation_reason")),
    ]


@pytest.mark.parametrize("persona", ["deployment_key_a1", "global_all_key_a"])
def test_a_reported_key_is_revoked_as_leaked(client, request, admin_a, persona):
    key, full_key = request.getfixturevalue(persona)

    response = report(client, full_key, REMOTE_ADDR="198.51.100.4")

    assert response.status_code == 202
    assert response.json() == {"received": 1}
    key.refresh_from_db()
    assert key.revoked_at is not None and key.revocation_reason == "leaked"
    assert not works(full_key)
    event = last_event(key)
    assert (event.action, event.actor_id) == ("revoked", None)
    assert event.changes["reason"] == [None, "reported as leaked"]
    assert event.ip_address == "198.51.100.4"
    (message,) = mail.outbox
    assert message.to == [admin_a.email]
    assert key.key_masked in message.body and "198.51.100.4" in message.body
    assert_no_full_key_in_any_email()


def test_a_reported_secret_that_a_rotation_replaced_ends_its_grace_and_spares_the_key(client, admin_a, in_grace_key_a):
    key, old_key, new_key = in_grace_key_a
    assert works(old_key)

    assert report(client, old_key).status_code == 202

    key.refresh_from_db()
    assert key.revoked_at is None and key.revocation_reason == ""
    assert not works(old_key) and works(new_key)
    event = last_event(key)
    assert event.action == "changed"
    assert event.changes["reason"] == [None, "reported as leaked"]
    assert "current secret" in mail.outbox[0].body


def test_a_warm_key_is_refused_on_the_next_request_after_its_report(client, deployment_key_a1, deployment_a1):
    _, full_key = deployment_key_a1
    assert execute(client, "org-a", "a-one", full_key).status_code == 200  # now in this worker's cache

    report(client, full_key)

    assert_error(execute(client, "org-a", "a-one", full_key), 401, "key_revoked")


def test_reporting_again_changes_nothing_and_emails_nobody(client, admin_a, deployment_key_a1):
    key, full_key = deployment_key_a1
    report(client, full_key)
    key.refresh_from_db()
    events, revoked_at = AuditEvent.objects.count(), key.revoked_at
    mail.outbox.clear()

    assert report(client, full_key, full_key).json() == {"received": 2}

    key.refresh_from_db()
    assert key.revoked_at == revoked_at and AuditEvent.objects.count() == events
    assert not mail.outbox


def test_one_email_per_organization_for_a_batch(
    client, admin_a, admin_b, deployment_key_a1, global_all_key_a, global_all_key_b
):
    report(client, deployment_key_a1[1], global_all_key_a[1], global_all_key_b[1])

    assert sorted(message.to[0] for message in mail.outbox) == [admin_a.email, admin_b.email]
    (to_a,) = [message for message in mail.outbox if message.to == [admin_a.email]]
    assert "a-one key" in to_a.body and "all of A" in to_a.body and "all of B" not in to_a.body


def test_found_and_unknown_keys_get_identical_answers(client, deployment_key_a1, global_all_key_a):
    unknown = report(client, unknown_key(), unknown_key("global"), "junk")
    found = report(client, deployment_key_a1[1], global_all_key_a[1], "junk")

    assert (found.status_code, found.content) == (unknown.status_code, unknown.content)
    ignored = {"X-Request-Id"}
    assert {k: v for k, v in found.headers.items() if k not in ignored} == {
        k: v for k, v in unknown.headers.items() if k not in ignored
    }
    assert not works(deployment_key_a1[1])


def test_malformed_strings_are_ignored_without_a_query(client, deployment_key_a1, django_assert_num_queries):
    _, full_key = deployment_key_a1
    junk = malformed(full_key)

    with django_assert_num_queries(0):
        response = report(client, *junk)

    assert response.json() == {"received": len(junk)}
    assert works(full_key)


@pytest.mark.parametrize(("kinds", "queries"), [(["deployment"], 1), (["global"], 1), (["deployment", "global"], 2)])
def test_a_whole_batch_costs_one_query_per_kind(client, deployment_a1, kinds, queries, django_assert_num_queries):
    batch = [unknown_key(kinds[n % len(kinds)]) for n in range(1000)]

    with django_assert_num_queries(queries):
        assert report(client, *batch).json() == {"received": 1000}


def test_after_the_limit_an_address_gets_429_and_costs_no_query(client, settings, deployment_key_a1):
    settings.KEYSCOPE_CREDENTIAL_REPORTS_PER_MINUTE = 3
    for _ in range(3):
        assert report(client, unknown_key()).status_code == 202

    with CaptureQueriesContext(connection) as queries:
        refused = report(client, deployment_key_a1[1])

    assert_error(refused, 429, "rate_limited")
    assert int(refused["Retry-After"]) >= 1
    assert len(queries) == 0
    assert works(deployment_key_a1[1])
    assert report(client, unknown_key(), REMOTE_ADDR="198.51.100.77").status_code == 202  # another address


def test_a_flood_from_one_address_costs_what_its_limit_allows(client, settings, deployment_a1):
    """1000 well-formed keys of both kinds a call, 50 calls: only the first 10 calls reach the database."""
    batch = [unknown_key(KINDS[n % 2]) for n in range(1000)]
    statuses = []

    with CaptureQueriesContext(connection) as queries:
        for _ in range(50):
            statuses.append(report(client, *batch).status_code)

    assert statuses == [202] * 10 + [429] * 40
    assert len(queries) == 10 * 2


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({"credentials": []}, "credentials"),
        ({"credentials": "ksd_" + "0" * 38}, "credentials"),
        ({"credentials": [3]}, "credentials"),
        ({"credentials": [None]}, "credentials"),
        ({"credentials": [{"key": "x"}]}, "credentials"),
        ({"credentials": [["x"]]}, "credentials"),
        ({"credentials": [True]}, "credentials"),
        ({"credentials": ["x"] * 1001}, "credentials"),
        ({}, "credentials"),
        ({"credentials": ["x"], "extra": 1}, "extra"),
        (["ksd_x"], "non_field_errors"),
        ("ksd_x", "non_field_errors"),
        (None, "non_field_errors"),
    ],
    ids=[
        "empty",
        "a-string",
        "a-number",
        "null",
        "an-object",
        "a-list",
        "a-boolean",
        "1001",
        "missing",
        "unknown-field",
        "a-list-body",
        "a-string-body",
        "null-body",
    ],
)
def test_a_malformed_report_is_a_400_naming_the_field_and_revokes_nothing(client, deployment_key_a1, body, field):
    _, full_key = deployment_key_a1
    if isinstance(body, dict) and isinstance(body.get("credentials"), list) and body["credentials"]:
        body["credentials"] = [full_key, *body["credentials"]]  # a real key beside the bad entry
    before = stored_keys()

    response = client.post(CREDENTIALS_URL, json.dumps(body), content_type="application/json")

    assert response.status_code == 400, response.content
    assert field in response.json()
    assert stored_keys() == before and works(full_key)


@pytest.mark.parametrize(
    ("raw", "content_type", "status", "code"),
    [
        (b'{"credentials": [', "application/json", 400, "parse_error"),
        (b"\xff\xfe", "application/json", 400, "parse_error"),
        (b"credentials=ksd_x", "application/x-www-form-urlencoded", 415, "unsupported_media_type"),
        (b"ksd_x", "text/plain", 415, "unsupported_media_type"),
    ],
    ids=["truncated-json", "not-utf8", "form", "text"],
)
def test_a_body_that_is_not_json_is_a_clear_4xx(client, deployment_key_a1, raw, content_type, status, code):
    before = stored_keys()

    assert_error(client.generic("POST", CREDENTIALS_URL, raw, content_type=content_type), status, code)

    assert stored_keys() == before


def test_a_body_over_the_limit_is_413_and_revokes_nothing(client, settings, deployment_key_a1):
    settings.KEYSCOPE_MAX_BODY_BYTES = 4096
    _, full_key = deployment_key_a1
    body = json.dumps({"credentials": [full_key] + ["x" * 100] * 100})

    assert_error(client.post(CREDENTIALS_URL, body, content_type="application/json"), 413, "payload_too_large")

    assert works(full_key)


def test_the_path_works_without_its_trailing_slash_and_ignores_credentials_headers(client, admin_a, deployment_key_a1):
    _, full_key = deployment_key_a1
    response = client.post(
        CREDENTIALS_URL.rstrip("/"),
        {"credentials": [full_key]},
        content_type="application/json",
        HTTP_AUTHORIZATION="Basic bm9ib2R5Om5vdGhpbmc=",  # wrong credentials: not a login, not a refusal
    )

    assert response.status_code == 202
    assert not works(full_key)


def test_keys_issued_in_bulk_are_found_in_one_batch(client, org_a, admin_a):
    issued = [issue_global_key(org_a, name=f"bulk {n}", allow_all_deployments=True) for n in range(20)]
    decoys = [unknown_key("global") for _ in range(500)] + [secrets.token_urlsafe(30) for _ in range(100)]

    report(client, *decoys, *(full_key for _, full_key in issued))

    assert GlobalApiDeploymentKey.objects.filter(revocation_reason="leaked").count() == 20
    assert len(mail.outbox) == 1 and mail.outbox[0].subject.startswith("[keyscope] Organization A: 20 keys")


def test_no_reported_key_reaches_the_log(client, caplog, admin_a, deployment_key_a1):
    caplog.set_level("DEBUG")
    _, full_key = deployment_key_a1

    report(client, full_key, unknown_key(), bad_checksum(full_key))
    report(client, 3)  # a 400

    assert caplog.records and not FULL_KEY.search(caplog.text)


@pytest.mark.parametrize("fail_open", [True, False])
def test_with_the_counters_down_reports_follow_the_fail_open_setting(client, settings, monkeypatch, fail_open):
    settings.KEYSCOPE_RATELIMIT_FAIL_OPEN = fail_open

    def down(*args, **kwargs):
        raise counters.CountersUnavailable

    monkeypatch.setattr(counters, "hit", down)

    response = report(client, unknown_key())

    assert response.status_code == (202 if fail_open else 429)


@pytest.mark.parametrize("spelling", [str.lower, str.upper])
def test_a_reported_imported_uuid_key_is_revoked_in_any_case(client, admin_a, deployment_a1, org_a, spelling):
    deployment_key, deployment_uuid = import_deployment_key(deployment_a1)
    global_key, global_uuid = import_global_key(org_a, allow_all_deployments=True)

    assert report(client, spelling(deployment_uuid), spelling(global_uuid)).json() == {"received": 2}

    for key in (deployment_key, global_key):
        key.refresh_from_db()
        assert key.revocation_reason == "leaked"
    assert not works(deployment_uuid) and not works(global_uuid)
    assert "uuid\u2026" in mail.outbox[0].body and deployment_uuid not in mail.outbox[0].body


def test_uuids_cost_one_query_per_kind_for_the_whole_batch(client, deployment_a1, django_assert_num_queries):
    with django_assert_num_queries(2):  # a UUID may be a key of either kind
        report(client, *(str(uuid.uuid4()) for _ in range(1000)))


def test_where_uuid_keys_are_refused_a_reported_uuid_is_ignored_without_a_query(
    client, settings, deployment_a1, django_assert_num_queries
):
    settings.KEYSCOPE_ACCEPT_UUID_KEYS = False
    key, uuid_key = import_deployment_key(deployment_a1)

    with django_assert_num_queries(0):
        assert report(client, uuid_key).status_code == 202

    key.refresh_from_db()
    assert key.revoked_at is None
