"""seed_demo's keys: one of each kind, printed once with a curl line that works; --reset rotates them,
and what it prints works even after the demo keys were deactivated, revoked, narrowed or expired."""

import json
import re
import shlex
from datetime import timedelta
from io import StringIO
from urllib.parse import urlsplit

import pytest
from django.core.management import call_command
from django.utils import timezone

from deployments.models import Deployment
from keys import crypto
from keys.models import AuditEvent, DeploymentKey, GlobalApiDeploymentKey
from keys.services import key_deactivate, key_revoke, key_update
from keys.tests.helpers import assert_error, execute

# Built from the format's constants, so no key-shaped literal is committed.
KEY_PATTERN = re.compile(f"ks[dg]_[0-9A-Za-z]{{{crypto.BODY_LENGTH + crypto.CHECKSUM_LENGTH}}}")


def seed(*args: str) -> str:
    out = StringIO()
    call_command("seed_demo", *args, stdout=out)
    return out.getvalue()


def printed_keys(output: str) -> list[str]:
    return list(dict.fromkeys(KEY_PATTERN.findall(output)))


def curl_lines(output: str) -> list[list[str]]:
    return [shlex.split(line) for line in output.splitlines() if line.strip().startswith("curl ")]


def run_curl(client, argv: list[str]):
    """Replays a printed curl command through the test client."""
    headers, data, url, method = {}, b"", None, "GET"
    arguments = iter(argv[1:])
    for argument in arguments:
        if argument == "-X":
            method = next(arguments)
        elif argument == "-H":
            name, value = next(arguments).split(":", 1)
            headers[name.strip()] = value.strip()
        elif argument in ("-d", "--data"):
            data = next(arguments).encode()
        elif argument.startswith("http"):
            url = argument
        elif argument in ("-s", "--silent"):
            continue
    content_type = headers.pop("Content-Type", "application/json")
    meta = {"HTTP_" + name.upper().replace("-", "_"): value for name, value in headers.items()}
    return client.generic(method, urlsplit(url).path, data, content_type=content_type, **meta)


def assert_curl_lines_work(client, output: str) -> None:
    lines = curl_lines(output)
    assert lines
    for argv in lines:
        response = run_curl(client, argv)
        slug = urlsplit(next(a for a in argv if a.startswith("http"))).path.split("/")[-3]
        runner = Deployment.objects.get(organization__slug="demo", slug=slug).runner
        if runner == Deployment.Runner.ECHO:
            assert response.status_code == 200, response.content
            assert response.json()["result"] == json.loads(argv[argv.index("-d") + 1])
        else:
            # An upstream that is not running in the tests: the key got through, the call did not.
            assert response.status_code in (200, 502, 504), response.content
            assert "execution_id" in response.json()


@pytest.mark.django_db
def test_seed_demo_creates_one_key_of_each_kind_and_prints_working_curl_lines(client):
    output = seed()

    keys = printed_keys(output)
    assert sorted(crypto.key_kind(key) for key in keys) == ["deployment", "global"]
    assert DeploymentKey.objects.filter(deployment__organization__slug="demo").count() == 1
    assert GlobalApiDeploymentKey.objects.filter(organization__slug="demo").count() == 1
    assert_curl_lines_work(client, output)
    for argv in curl_lines(output):
        assert any(key in " ".join(argv) for key in keys)


@pytest.mark.django_db
def test_a_second_run_prints_no_key_and_creates_none(client):
    first = printed_keys(seed())

    second_output = seed()

    assert printed_keys(second_output) == []
    assert "curl" not in second_output
    assert DeploymentKey.objects.count() == 1
    assert GlobalApiDeploymentKey.objects.count() == 1
    for key in first:  # the first keys still work
        slug = "summarize" if crypto.key_kind(key) == "deployment" else "classify"
        assert execute(client, "demo", slug, key).status_code == 200


@pytest.mark.django_db
def test_reset_rotates_the_demo_keys(client):
    old_keys = printed_keys(seed())
    ids = {DeploymentKey.objects.get().pk, GlobalApiDeploymentKey.objects.get().pk}

    output = seed("--reset")

    new_keys = printed_keys(output)
    assert sorted(crypto.key_kind(key) for key in new_keys) == ["deployment", "global"]
    assert not set(new_keys) & set(old_keys)
    assert {DeploymentKey.objects.get().pk, GlobalApiDeploymentKey.objects.get().pk} == ids
    assert_curl_lines_work(client, output)
    for key in old_keys:
        slug = "summarize" if crypto.key_kind(key) == "deployment" else "classify"
        assert_error(execute(client, "demo", slug, key), 401, "key_revoked")


# --reset prints keys that work, whatever happened to the demo keys since.


def demo_keys() -> tuple[DeploymentKey, GlobalApiDeploymentKey]:
    return DeploymentKey.objects.get(name="Demo summarize key"), GlobalApiDeploymentKey.objects.get(name="Demo global key")


def scope_of(key: GlobalApiDeploymentKey) -> list[str]:
    return sorted(key.deployments.values_list("slug", flat=True))


@pytest.mark.django_db
@pytest.mark.parametrize("deleted", ["classify", "extract", "summarize"])
def test_reset_after_a_demo_deployment_was_deleted_prints_keys_that_open_it_again(client, deleted):
    seed()
    Deployment.objects.get(organization__slug="demo", slug=deleted).delete()

    output = seed("--reset")

    assert f"demo/{deleted}" in output
    assert sorted(crypto.key_kind(key) for key in printed_keys(output)) == ["deployment", "global"]
    assert_curl_lines_work(client, output)
    assert scope_of(demo_keys()[1]) == ["classify", "extract", "summarize"]


@pytest.mark.django_db
def test_a_plain_run_that_remakes_a_demo_deployment_puts_it_back_in_the_global_keys_scope(client):
    global_full_key = next(key for key in printed_keys(seed()) if crypto.key_kind(key) == "global")
    Deployment.objects.get(organization__slug="demo", slug="classify").delete()

    output = seed()

    assert printed_keys(output) == []
    assert execute(client, "demo", "classify", global_full_key).status_code == 200
    _, global_key = demo_keys()
    assert scope_of(global_key) == ["classify", "extract", "summarize"]
    assert AuditEvent.objects.filter(key_id=global_key.pk, action=AuditEvent.Action.CHANGED, actor=None).exists()


@pytest.mark.django_db
def test_reset_restores_a_narrowed_global_scope_through_the_service(client):
    seed()
    _, global_key = demo_keys()
    key_update(key=global_key, actor=None, deployments=list(Deployment.objects.filter(slug="summarize")))

    output = seed("--reset")

    assert_curl_lines_work(client, output)
    assert scope_of(demo_keys()[1]) == ["classify", "extract", "summarize"]
    changes = AuditEvent.objects.filter(key_id=global_key.pk, action=AuditEvent.Action.CHANGED)
    assert [["summarize"], ["classify", "extract", "summarize"]] in [event.changes.get("deployments") for event in changes]


@pytest.mark.django_db
def test_reset_reactivates_deactivated_demo_keys(client):
    seed()
    for key in demo_keys():
        key_deactivate(key=key, actor=None)

    output = seed("--reset")

    assert sorted(crypto.key_kind(key) for key in printed_keys(output)) == ["deployment", "global"]
    assert_curl_lines_work(client, output)
    for key in demo_keys():
        assert key.is_active
        assert AuditEvent.objects.filter(key_id=key.pk, action=AuditEvent.Action.ACTIVATED).exists()


@pytest.mark.django_db
def test_reset_clears_a_passed_expiry_of_the_demo_keys(client):
    seed()
    past = timezone.now() - timedelta(days=1)
    DeploymentKey.objects.update(expires_at=past)
    GlobalApiDeploymentKey.objects.update(expires_at=past)

    output = seed("--reset")

    assert_curl_lines_work(client, output)
    assert all(key.expires_at is None for key in demo_keys())


@pytest.mark.django_db
def test_a_plain_run_leaves_revoked_demo_keys_alone_and_prints_nothing():
    seed()
    revoked = [key_revoke(key=key, actor=None) for key in demo_keys()]

    output = seed()

    assert output == ""
    assert [key.pk for key in demo_keys()] == [key.pk for key in revoked]
    assert all(key.is_revoked for key in demo_keys())


@pytest.mark.django_db
def test_reset_replaces_revoked_demo_keys_with_fresh_ones_that_work(client):
    old_keys = printed_keys(seed())
    revoked = [key_revoke(key=key, actor=None) for key in demo_keys()]

    output = seed("--reset")

    new_keys = printed_keys(output)
    assert sorted(crypto.key_kind(key) for key in new_keys) == ["deployment", "global"]
    assert not set(new_keys) & set(old_keys)
    assert_curl_lines_work(client, output)
    for key in new_keys:
        slug = "summarize" if crypto.key_kind(key) == "deployment" else "classify"
        assert execute(client, "demo", slug, key).status_code == 200
    assert DeploymentKey.objects.count() == 1 and GlobalApiDeploymentKey.objects.count() == 1
    assert not {key.pk for key in demo_keys()} & {key.pk for key in revoked}
    for key in revoked:
        assert AuditEvent.objects.filter(key_id=key.pk, action=AuditEvent.Action.DELETED).exists()
    assert scope_of(demo_keys()[1]) == ["classify", "extract", "summarize"]


@pytest.mark.django_db
def test_a_reported_demo_key_emails_the_demo_admin(client, mailoutbox):
    """The demo shows the leak path end to end: its admin has an address, so make run's console prints the email."""
    keys = printed_keys(seed())
    response = client.post("/api/v1/credentials/revoke/", {"credentials": keys[:1]}, content_type="application/json")
    assert response.status_code == 202
    (message,) = mailoutbox
    assert message.to == ["demo-admin@example.com"]
    assert keys[0] not in message.body
