"""POST /api/v1/secret-scanning/github/: GitHub's secret scanning partner alerts, signed by GitHub.

The tests play GitHub with a signing key made at run time (github.py); nothing calls GitHub.
"""

import hashlib
import json

import pytest
from django.core import mail

from keys import crypto
from keys.models import AuditEvent, DeploymentKey, GlobalApiDeploymentKey
from keys.services import key_revoke
from keys.tests.factories import issue_global_key
from keys.tests.helpers import bad_checksum

from .github import GITHUB_URL, GitHubSigner, alert_body, post_alert, write_keys_file
from .helpers import FULL_KEY, assert_no_full_key_in_any_email, last_event, works

pytestmark = pytest.mark.django_db


def sha256(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


def stored_keys() -> list:
    return [
        sorted(DeploymentKey.objects.values_list("digest", "revoked_at")),
        sorted(GlobalApiDeploymentKey.objects.values_list("digest", "revoked_at")),
        AuditEvent.objects.count(),
    ]


def assert_refused(response) -> None:
    assert response.status_code == 401, response.content
    body = response.json()
    assert set(body) == {"detail", "code"} and body["code"] in {"invalid_signature", "not_authenticated"}
    assert response["WWW-Authenticate"]


def test_a_signed_alert_revokes_the_key_and_answers_githubs_feedback_format(client, github, admin_a, deployment_key_a1):
    key, full_key = deployment_key_a1
    url = "https://github.com/octo/repo/blob/abc/settings.py"

    response = post_alert(client, alert_body(full_key, url=url), github)

    assert response.status_code == 200, response.content
    assert response.json() == [
        {"token_hash": sha256(full_key), "token_type": "keyscope_api_key", "label": "true_positive"}
    ]
    assert full_key not in response.content.decode()
    key.refresh_from_db()
    assert key.revocation_reason == "leaked" and not works(full_key)
    event = last_event(key)
    assert (event.action, event.actor_id, event.changes["reason"]) == ("revoked", None, [None, "reported as leaked"])
    (message,) = mail.outbox
    assert url in message.body and key.key_masked in message.body
    assert_no_full_key_in_any_email()


def test_labels_say_which_tokens_are_or_were_keys(client, github, deployment_key_a1, in_grace_key_a, org_a):
    _, current = deployment_key_a1
    _, old_secret, new_secret = in_grace_key_a
    revoked_row, revoked = issue_global_key(org_a, name="already revoked", allow_all_deployments=True)
    key_revoke(key=revoked_row, actor=None)
    tokens = [current, old_secret, revoked, crypto.generate_key("global"), "not a key", bad_checksum(current)]

    response = post_alert(client, alert_body(*tokens), github)

    labels = [item["label"] for item in response.json()]
    assert labels == ["true_positive"] * 3 + ["false_positive"] * 3
    assert [item["token_hash"] for item in response.json()] == [sha256(token) for token in tokens]
    assert works(new_secret) and not works(old_secret) and not works(current)


def test_a_replayed_alert_is_harmless(client, github, admin_a, deployment_key_a1):
    body = alert_body(deployment_key_a1[1])
    headers = github.headers(body)
    first = client.generic("POST", GITHUB_URL, body, content_type="application/json", **headers)
    before = stored_keys()
    mail.outbox.clear()

    again = client.generic("POST", GITHUB_URL, body, content_type="application/json", **headers)

    assert again.status_code == 200 and again.json() == first.json()
    assert stored_keys() == before and not mail.outbox


def test_an_unsigned_alert_is_401_and_does_nothing(client, github, deployment_key_a1):
    before = stored_keys()

    response = post_alert(client, alert_body(deployment_key_a1[1]))

    assert_refused(response)
    assert response.json()["code"] == "not_authenticated"
    assert stored_keys() == before and works(deployment_key_a1[1])


def test_a_signature_over_another_body_is_401_and_does_nothing(client, github, deployment_key_a1, global_all_key_a):
    signed_for = alert_body(global_all_key_a[1])
    sent = alert_body(deployment_key_a1[1])
    before = stored_keys()

    response = client.generic("POST", GITHUB_URL, sent, content_type="application/json", **github.headers(signed_for))

    assert_refused(response)
    assert stored_keys() == before and works(deployment_key_a1[1]) and works(global_all_key_a[1])


def test_the_signature_covers_the_raw_body_not_its_json(client, github, deployment_key_a1):
    body = alert_body(deployment_key_a1[1])
    respaced = json.dumps(json.loads(body), indent=2).encode()  # the same JSON, other bytes

    assert_refused(
        client.generic("POST", GITHUB_URL, respaced, content_type="application/json", **github.headers(body))
    )
    assert works(deployment_key_a1[1])


@pytest.mark.parametrize(
    "headers",
    [
        {"HTTP_GITHUB_PUBLIC_KEY_IDENTIFIER": "unknown-identifier"},
        {"HTTP_GITHUB_PUBLIC_KEY_SIGNATURE": "!!! not base64 !!!"},
        {"HTTP_GITHUB_PUBLIC_KEY_SIGNATURE": "bm90IGEgc2lnbmF0dXJl"},
        {"HTTP_GITHUB_PUBLIC_KEY_SIGNATURE": ""},
        {"HTTP_GITHUB_PUBLIC_KEY_IDENTIFIER": ""},
    ],
    ids=["unknown-identifier", "not-base64", "not-der", "empty-signature", "empty-identifier"],
)
def test_a_bad_signature_header_is_401_and_does_nothing(client, github, deployment_key_a1, headers):
    body = alert_body(deployment_key_a1[1])
    before = stored_keys()

    assert_refused(post_alert(client, body, github, **headers))

    assert stored_keys() == before and works(deployment_key_a1[1])


def test_only_one_signature_header_is_401(client, github, deployment_key_a1):
    body = alert_body(deployment_key_a1[1])
    signature = github.headers(body)["HTTP_GITHUB_PUBLIC_KEY_SIGNATURE"]

    response = client.generic(
        "POST", GITHUB_URL, body, content_type="application/json", HTTP_GITHUB_PUBLIC_KEY_SIGNATURE=signature
    )

    assert_refused(response)
    assert response.json()["code"] == "invalid_signature"


def test_a_key_of_another_signer_is_401(client, github, deployment_key_a1):
    impostor = GitHubSigner.generate(github.key_identifier)  # the right identifier, another private key

    assert_refused(post_alert(client, alert_body(deployment_key_a1[1]), impostor))
    assert works(deployment_key_a1[1])


@pytest.mark.parametrize("state", ["unset", "missing", "not-json", "no-keys"])
def test_without_a_usable_keys_file_every_alert_is_401(client, github, settings, tmp_path, deployment_key_a1, state):
    path = tmp_path / "broken.json"
    if state == "unset":
        settings.KEYSCOPE_GITHUB_SECRET_SCANNING_KEYS = ""
    else:
        settings.KEYSCOPE_GITHUB_SECRET_SCANNING_KEYS = str(path)
    if state == "not-json":
        path.write_text("{not json")
    if state == "no-keys":
        path.write_text(json.dumps({"public_keys": [{"key_identifier": github.key_identifier, "key": "not a PEM"}]}))

    assert_refused(post_alert(client, alert_body(deployment_key_a1[1]), github))
    assert works(deployment_key_a1[1])


def test_a_refreshed_keys_file_counts_without_a_restart(client, github, settings, tmp_path, deployment_key_a1):
    newer = GitHubSigner.generate("new-identifier")
    body = alert_body(deployment_key_a1[1])
    assert_refused(post_alert(client, body, newer))

    write_keys_file(tmp_path / "github-keys.json", github, newer)  # GitHub listed a new key; the old one stays

    assert post_alert(client, body, newer).status_code == 200
    assert not works(deployment_key_a1[1])


@pytest.mark.parametrize(
    "payload",
    [
        {"token": "x", "type": "t"},
        [{"type": "t"}],
        [{"token": 3, "type": "t"}],
        [{"token": None, "type": "t"}],
        [{"token": "x"}],
        ["ksd_x"],
        [{"token": "x", "type": "t", "url": ["x"]}],
    ],
    ids=["an-object", "no-token", "a-number", "null-token", "no-type", "a-string-entry", "a-list-url"],
)
def test_a_signed_body_of_the_wrong_shape_is_a_400_and_revokes_nothing(client, github, deployment_key_a1, payload):
    if isinstance(payload, list):
        payload = [{"token": deployment_key_a1[1], "type": "t", "url": "", "source": "content"}, *payload]
    body = json.dumps(payload).encode()
    before = stored_keys()

    response = post_alert(client, body, github)

    assert response.status_code == 400, response.content
    assert isinstance(response.json(), dict)
    assert stored_keys() == before and works(deployment_key_a1[1])


def test_a_signed_body_that_is_not_json_is_a_400(client, github):
    body = b'[{"token": '

    response = post_alert(client, body, github)

    assert response.status_code == 400 and response.json()["code"] == "parse_error"


def test_a_body_over_the_limit_is_413_before_its_signature_is_checked(client, github, settings, deployment_key_a1):
    settings.KEYSCOPE_MAX_BODY_BYTES = 2048
    body = alert_body(deployment_key_a1[1], *(["x" * 100] * 30))

    response = post_alert(client, body, github)

    assert response.status_code == 413 and response.json()["code"] == "payload_too_large"
    assert works(deployment_key_a1[1])


def test_an_empty_alert_list_is_answered_with_an_empty_list(client, github):
    assert post_alert(client, b"[]", github).json() == []


def test_no_token_reaches_the_log(client, github, caplog, admin_a, deployment_key_a1):
    caplog.set_level("DEBUG")
    body = alert_body(deployment_key_a1[1], crypto.generate_key("global"))

    post_alert(client, body, github)
    post_alert(client, body, GitHubSigner.generate("unknown"))  # refused, and logged as such

    assert "refused" in caplog.text
    assert not FULL_KEY.search(caplog.text)
