"""Which upstream URLs, timeouts and headers a deployment may be saved with."""

import socket

import pytest
from django.core.exceptions import ValidationError
from django.db import IntegrityError, transaction

from deployments.models import Deployment
from deployments.tests.factories import DeploymentFactory
from deployments.upstream import resolve_upstream, validate_upstream_headers, validate_upstream_url

PUBLIC_IP = "93.184.215.14"


@pytest.fixture
def fake_dns(monkeypatch):
    """Host names resolve to whatever the test says; IP literals never reach DNS."""
    answers: dict[str, list[str]] = {}

    def getaddrinfo(host, port, *args, **kwargs):
        if host not in answers:
            raise socket.gaierror(socket.EAI_NONAME, "Name or service not known")
        return [(socket.AF_INET6 if ":" in ip else socket.AF_INET, socket.SOCK_STREAM, 6, "", (ip, port)) for ip in answers[host]]

    monkeypatch.setattr(socket, "getaddrinfo", getaddrinfo)
    return answers


def url_errors(url: str) -> list[str]:
    try:
        validate_upstream_url(url)
    except ValidationError as error:
        return error.messages
    return []


@pytest.mark.parametrize(
    "url",
    [
        "http://127.0.0.1/",
        "http://127.1.2.3:8000/run",
        "http://10.0.0.1/",
        "http://172.16.5.4/",
        "http://192.168.1.10/",
        "http://100.64.0.1/",
        "http://169.254.169.254/latest/meta-data/",
        "http://0.0.0.0/",
        "http://224.0.0.1/",
        "http://240.0.0.1/",
        "http://[::1]/",
        "http://[::ffff:127.0.0.1]/",
        "http://[fe80::1]/",
        "http://[fd00::1]/",
        "http://localhost:8000/",
    ],
)
def test_internal_addresses_are_refused(url):
    assert any("internal address" in message for message in url_errors(url))


@pytest.mark.parametrize(
    "address",
    [
        "2002:7f00:1::1",  # 6to4 of 127.0.0.1
        "2002:a9fe:a9fe::",  # 6to4 of 169.254.169.254 (cloud metadata)
        "2002:a00:1::1",  # 6to4 of 10.0.0.1
        "64:ff9b::7f00:1",  # NAT64 of 127.0.0.1
        "64:ff9b::a9fe:a9fe",  # NAT64 of 169.254.169.254
        "2001:0:4136:e378:8000:63bf:80ff:fffe",  # Teredo, client 127.0.0.1
        "2001:0:a00:1:8000:63bf:a2db:1bf1",  # Teredo, server 10.0.0.1
        "::7f00:1",  # IPv4-compatible 127.0.0.1
        "::ffff:a9fe:a9fe",  # IPv4-mapped 169.254.169.254
    ],
)
def test_an_internal_ipv4_address_inside_an_ipv6_address_is_refused(fake_dns, address):
    fake_dns["tunnel.example.com"] = [address]
    assert any("internal address" in message for message in url_errors(f"http://[{address}]/"))
    assert any("internal address" in message for message in url_errors("http://tunnel.example.com/"))


@pytest.mark.parametrize("address", ["2002:5db8:d70e::1", f"64:ff9b::{PUBLIC_IP}", "2001:4860:4860::8888"])
def test_an_ipv6_address_leading_to_a_public_address_is_accepted(address):
    assert url_errors(f"http://[{address}]/") == []


@pytest.mark.parametrize(
    "url", ["ftp://example.com/file", "file:///etc/passwd", "gopher://example.com/", "example.com/run", ""]
)
def test_only_http_and_https_are_allowed(url):
    if not url:
        assert url_errors(url) == []  # blank is the model's business: only the http runner needs a URL
    else:
        assert url_errors(url) == ["Only http and https upstream URLs are allowed."]


def test_credentials_in_the_url_are_refused():
    assert url_errors(f"https://user:secret@{PUBLIC_IP}/") == [
        "Put upstream credentials in the upstream headers, not in the URL."
    ]


@pytest.mark.parametrize("url", [f"http://{PUBLIC_IP}/run", f"https://{PUBLIC_IP}:8443/run?x=1"])
def test_public_addresses_are_accepted(url):
    assert url_errors(url) == []


def test_host_name_is_judged_by_every_address_it_resolves_to(fake_dns):
    fake_dns["models.example.com"] = [PUBLIC_IP]
    fake_dns["sneaky.example.com"] = [PUBLIC_IP, "10.1.2.3"]

    assert url_errors("https://models.example.com/run") == []
    assert "internal address" in url_errors("https://sneaky.example.com/run")[0]


@pytest.mark.parametrize("internal", ["10.1.2.3", "fd12:3456::7", "::ffff:10.1.2.3"])
def test_a_refusal_never_names_the_internal_address_a_name_resolves_to(fake_dns, admin_client, internal):
    fake_dns["db.internal.example.com"] = [internal]
    url = "https://db.internal.example.com/run"
    [message] = url_errors(url)
    response = admin_client.post(
        "/api/v1/orgs/org-a/deployments/",
        {"slug": "probe", "name": "probe", "runner": "http", "upstream_url": url},
        format="json",
    )
    assert response.status_code == 400
    assert response.json() == {"upstream_url": [message]}
    for text in (message, response.content.decode()):
        assert "internal address" in text
        assert internal not in text and "10.1.2.3" not in text


def test_unresolvable_host_is_refused(fake_dns):
    assert url_errors("https://nowhere.example.com/") == ["The upstream host 'nowhere.example.com' could not be resolved."]


@pytest.mark.parametrize(
    ("allowed", "url", "ok"),
    [
        (["127.0.0.1"], "http://127.0.0.1:8001/", True),
        (["127.0.0.0/8"], "http://127.9.9.9/", True),
        (["10.0.0.0/8"], "http://127.0.0.1/", False),
        (["127.0.0.1:8001"], "http://127.0.0.1:8001/", True),
        (["127.0.0.1:8001"], "http://127.0.0.1:8000/", False),
        (["[::1]:8001"], "http://[::1]:8001/", True),
        (["::1"], "http://[::1]/", True),
        (["models.internal"], "http://models.internal/", True),
        (["models.internal:443"], "https://models.internal/", True),
        (["models.internal:443"], "http://models.internal/", False),
        (["other.internal"], "http://models.internal/", False),
    ],
)
def test_allowed_hosts_open_internal_addresses(settings, fake_dns, allowed, url, ok):
    fake_dns["models.internal"] = ["10.20.30.40"]
    settings.KEYSCOPE_UPSTREAM_ALLOWED_HOSTS = allowed
    assert (url_errors(url) == []) is ok


def test_resolve_upstream_gives_the_addresses_to_connect_to(fake_dns):
    fake_dns["models.example.com"] = [PUBLIC_IP, "2606:2800:21f:cb07:6820:80da:af6b:8b2c"]

    upstream = resolve_upstream("https://models.example.com/run")

    assert (upstream.scheme, upstream.host, upstream.port) == ("https", "models.example.com", 443)
    assert upstream.addresses == (PUBLIC_IP, "2606:2800:21f:cb07:6820:80da:af6b:8b2c")


def test_full_clean_refuses_an_internal_upstream_url(org_a):
    deployment = Deployment(organization=org_a, slug="x", name="X", runner="http", upstream_url="http://10.0.0.1/")
    with pytest.raises(ValidationError) as error:
        deployment.full_clean()
    assert "upstream_url" in error.value.message_dict


def test_full_clean_accepts_an_allowed_upstream(org_a, settings):
    settings.KEYSCOPE_UPSTREAM_ALLOWED_HOSTS = ["10.0.0.0/8"]
    deployment = Deployment(organization=org_a, slug="x", name="X", runner="http", upstream_url="http://10.0.0.1/")
    deployment.full_clean()


def test_http_runner_needs_an_upstream_url(org_a):
    deployment = Deployment(organization=org_a, slug="x", name="X", runner="http")
    with pytest.raises(ValidationError) as error:
        deployment.full_clean()
    assert error.value.message_dict["upstream_url"] == ["The http runner needs an upstream URL."]


def test_echo_deployments_keep_working_with_only_the_contract_fields(org_a):
    deployment = Deployment.objects.create(organization=org_a, slug="plain", name="Plain")
    deployment.full_clean()
    assert (deployment.runner, deployment.upstream_url, deployment.timeout_seconds) == ("echo", "", 30)
    assert deployment.upstream_header_names == []
    assert not deployment.has_upstream_headers


@pytest.mark.parametrize(("timeout", "ok"), [(0, False), (1, True), (30, True), (300, True), (301, False)])
def test_timeout_is_between_1_and_300_seconds(org_a, timeout, ok):
    deployment = Deployment(organization=org_a, slug="x", name="X", timeout_seconds=timeout)
    if ok:
        deployment.full_clean()
    else:
        with pytest.raises(ValidationError) as error:
            deployment.full_clean()
        assert "timeout_seconds" in error.value.message_dict


def test_database_refuses_a_timeout_out_of_range(org_a):
    deployment = DeploymentFactory(organization=org_a)
    with pytest.raises(IntegrityError), transaction.atomic():
        Deployment.objects.filter(pk=deployment.pk).update(timeout_seconds=301)


VALUE_RULE = "The value of X-Token must be one line of at most 8192 visible ASCII characters, spaces or tabs."


@pytest.mark.parametrize(
    ("headers", "message"),
    [
        (["Authorization"], "Enter a JSON object of header name to value."),
        ({"Bad Name": "x"}, "'Bad Name' is not a valid header name."),
        ({"Host": "evil.example.com"}, "Host is set by keyscope and cannot be configured."),
        ({"X-Keyscope-Organization": "other"}, "X-Keyscope-Organization is set by keyscope and cannot be configured."),
        ({"X-Token": 5}, "The value of X-Token must be a string."),
        ({"X-Token": "a\r\nX-Injected: 1"}, VALUE_RULE),
        ({"X-Token": "café"}, VALUE_RULE),
        ({"X-Token": "line\u2028separator"}, VALUE_RULE),
        ({"X-Token": "nbsp\u00a0"}, VALUE_RULE),
        ({"X-Token": "del\x7f"}, VALUE_RULE),
        ({"X-Token": "nul\x00"}, VALUE_RULE),
        ({"X-Token": "x" * 8193}, VALUE_RULE),
        ({"X-Token": "a", "x-token": "b"}, "x-token is given more than once."),
    ],
)
def test_bad_upstream_headers_are_refused(headers, message):
    with pytest.raises(ValidationError) as error:
        validate_upstream_headers(headers)
    assert error.value.message_dict["upstream_headers"] == [message]


def test_visible_ascii_spaces_and_tabs_are_a_valid_value():
    value = "".join(chr(code) for code in range(0x20, 0x7F)) + "\t"
    assert validate_upstream_headers({"X-Token": value}) == {"X-Token": value}


def test_header_errors_never_show_the_value():
    with pytest.raises(ValidationError) as error:
        validate_upstream_headers({"X-Token": "top-secret\n"})
    assert "top-secret" not in str(error.value)
