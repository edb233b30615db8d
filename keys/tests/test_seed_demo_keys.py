"""seed_demo's keys: one of each kind, printed once with a curl line that works; --reset rotates them."""

import json
import re
import shlex
from io import StringIO
from urllib.parse import urlsplit

import pytest
from django.core.management import call_command

from deployments.models import Deployment
from keys import crypto
from keys.models import DeploymentKey, GlobalApiDeploymentKey
from keys.tests.conftest import assert_error, execute

# Built from the format's constants, so no key-shaped literal is committed.
KEY_PATTERN = re.compile(
    "ks[dg]_[%s]{%d}" % ("0-9A-Za-z", crypto.BODY_LENGTH + crypto.CHECKSUM_LENGTH)
)


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
