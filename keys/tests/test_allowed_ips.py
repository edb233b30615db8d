"""A key's allowed client addresses: canonical form, matching, proxies, and what a refusal costs."""

import logging

import pytest
from django.core.exceptions import ValidationError

from keys.allowed_ips import address_allowed, clean_allowed_ips, clean_allowed_ips_lines, compile_networks
from keys.tests.factories import issue_deployment_key, issue_global_key
from keys.tests.helpers import assert_error, execute

LIMIT = 60  # KEYSCOPE_FAILED_AUTH_PER_MINUTE's default


# Canonical form ----------------------------------------------------------------------


@pytest.mark.parametrize(
    "given, stored",
    [
        pytest.param(["203.0.113.7"], ["203.0.113.7/32"], id="an-ipv4-address"),
        pytest.param(["10.0.0.0/8"], ["10.0.0.0/8"], id="an-ipv4-network"),
        pytest.param(["2001:DB8::1"], ["2001:db8::1/128"], id="an-ipv6-address"),
        pytest.param(["2001:db8:0:0::/32"], ["2001:db8::/32"], id="an-ipv6-network"),
        pytest.param(["192.0.2.0/255.255.255.0"], ["192.0.2.0/24"], id="a-netmask"),
        pytest.param(["0.0.0.0/0", "::/0"], ["0.0.0.0/0", "::/0"], id="everything"),
        pytest.param(["10.0.0.0/8", "203.0.113.7", "10.0.0.0/8", "203.0.113.7/32"], ["10.0.0.0/8", "203.0.113.7/32"],
                     id="in-the-order-given-repeats-dropped"),
        pytest.param([f"198.51.100.{n}" for n in range(100)], [f"198.51.100.{n}/32" for n in range(100)], id="100-entries"),
        pytest.param([], [], id="empty"),
    ],
)
def test_entries_are_stored_in_canonical_network_form(given, stored):
    assert clean_allowed_ips(given) == stored


@pytest.mark.parametrize(
    "given, message",
    [
        pytest.param("10.0.0.0/8", "Expected a list", id="a-string"),
        pytest.param({"10.0.0.0/8": True}, "Expected a list", id="an-object"),
        pytest.param(None, "Expected a list", id="null"),
        pytest.param([7], "must be a string", id="a-number"),
        pytest.param([["10.0.0.1"]], "must be a string", id="a-nested-list"),
        pytest.param(["10.0.0.300"], "is not an IPv4 or IPv6 address or network", id="out-of-range"),
        pytest.param(["10.0.0.1/33"], "is not an IPv4 or IPv6 address or network", id="prefix-too-long"),
        pytest.param(["example.com"], "is not an IPv4 or IPv6 address or network", id="a-host-name"),
        pytest.param([" 10.0.0.1"], "is not an IPv4 or IPv6 address or network", id="spaces"),
        pytest.param(["010.0.0.1"], "is not an IPv4 or IPv6 address or network", id="leading-zeros"),
        pytest.param([""], "is not an IPv4 or IPv6 address or network", id="empty-string"),
        pytest.param(["10.0.0.5/8"], "host bits set: write the address alone, or the network 10.0.0.0/8", id="host-bits"),
        pytest.param(["2001:db8::1/32"], "the network 2001:db8::/32", id="ipv6-host-bits"),
        pytest.param(["::ffff:203.0.113.7"], "write 203.0.113.7 instead", id="ipv4-mapped"),
        pytest.param(["::ffff:203.0.113.0/120"], "write 203.0.113.0/24 instead", id="ipv4-mapped-network"),
        pytest.param(["fe80::1%eth0"], "zone", id="an-ipv6-zone"),
        pytest.param([f"198.51.100.{n}" for n in range(101)], "At most 100", id="101-entries"),
    ],
)
def test_bad_entries_are_refused_with_a_sentence(given, message):
    with pytest.raises(ValidationError) as raised:
        clean_allowed_ips(given)
    assert any(message in text for text in raised.value.messages), raised.value.messages


def test_a_long_bad_entry_is_shortened_in_its_message():
    with pytest.raises(ValidationError) as raised:
        clean_allowed_ips(["x" * 10_000])
    assert len(raised.value.messages[0]) < 200


def test_the_admins_lines_name_the_bad_line():
    with pytest.raises(ValidationError) as raised:
        clean_allowed_ips_lines("203.0.113.7\n\n10.0.0.300\n2001:db8::/32\nnope\n")
    assert raised.value.messages == [
        "Line 3: “10.0.0.300” is not an IPv4 or IPv6 address or network.",
        "Line 5: “nope” is not an IPv4 or IPv6 address or network.",
    ]
    assert clean_allowed_ips_lines(" 203.0.113.7 \r\n\r\n10.0.0.0/8\n") == ["203.0.113.7/32", "10.0.0.0/8"]


# Matching ----------------------------------------------------------------------------


@pytest.mark.parametrize(
    "address, allowed",
    [
        ("203.0.113.7", True),
        ("203.0.113.8", False),
        ("10.255.0.1", True),
        ("11.0.0.1", False),
        ("2001:db8:ffff::1", True),
        ("2001:db9::1", False),
        ("::ffff:203.0.113.7", True),  # IPv4-mapped: matched as its IPv4
        ("::ffff:10.1.2.3", True),
        ("::ffff:198.51.100.1", False),
        ("::203.0.113.7", False),  # IPv4-compatible (deprecated) is an IPv6 address of its own
        ("not an address", False),
        (None, False),
    ],
)
def test_an_address_matches_the_networks_of_its_family(address, allowed):
    networks = compile_networks(["203.0.113.7/32", "10.0.0.0/8", "2001:db8::/32"])
    assert address_allowed(address, networks) is allowed


def test_an_ipv4_network_does_not_match_the_same_bits_in_ipv6():
    assert not address_allowed("::a00:1", compile_networks(["10.0.0.0/8"]))
    assert not address_allowed("10.0.0.1", compile_networks(["::a00:0/104"]))


def test_a_stored_entry_that_does_not_parse_matches_nothing_but_still_restricts():
    networks = compile_networks(["garbage"])
    assert networks  # a non-empty list: the key is restricted
    assert not address_allowed("203.0.113.7", networks)


# Through the client API ------------------------------------------------------------


@pytest.mark.parametrize(
    "remote_addr, status",
    [
        ("2001:db8:1::42", 200),
        ("2001:db8:2::42", 403),
        ("::ffff:192.0.2.77", 200),
        ("::ffff:192.0.3.77", 403),
        ("192.0.2.77", 200),
    ],
)
def test_ipv6_and_mapped_ipv4_clients(client, deployment_a1, remote_addr, status):
    _, full_key = issue_deployment_key(deployment_a1, allowed_ips=["2001:db8:1::/48", "192.0.2.0/24"])
    response = execute(client, "org-a", "a-one", full_key, REMOTE_ADDR=remote_addr)
    assert response.status_code == status
    if status == 403:
        assert_error(response, 403, "ip_not_allowed")


PROXY = "10.0.0.2"
CLIENT = "203.0.113.7"


@pytest.mark.parametrize(
    "trusted, forwarded_for, status",
    [
        pytest.param([], f"{CLIENT}", 403, id="untrusted-peer-its-header-ignored"),
        pytest.param(["10.0.0.0/8"], f"{CLIENT}", 200, id="trusted-proxy"),
        pytest.param(["10.0.0.0/8"], f"198.51.100.9, {CLIENT}, 10.0.0.9", 200, id="chain-rightmost-untrusted-entry"),
        pytest.param(["10.0.0.0/8"], f"{CLIENT}, 198.51.100.9", 403, id="chain-a-spoofed-left-entry-does-not-help"),
        pytest.param(["10.0.0.2"], f"{CLIENT}, 10.0.0.9", 403, id="chain-through-an-untrusted-hop"),
        pytest.param(["10.0.0.0/8"], f"::ffff:{CLIENT}", 200, id="trusted-proxy-mapped-client"),
    ],
)
def test_the_address_is_the_failed_auth_throttles_client_address(
    client, settings, deployment_a1, trusted, forwarded_for, status
):
    settings.KEYSCOPE_TRUSTED_PROXIES = trusted
    _, full_key = issue_deployment_key(deployment_a1, allowed_ips=[CLIENT])
    response = execute(client, "org-a", "a-one", full_key, REMOTE_ADDR=PROXY, HTTP_X_FORWARDED_FOR=forwarded_for)
    assert response.status_code == status, response.content


def test_a_proxy_is_refused_when_the_key_allows_only_its_clients(client, settings, deployment_a1):
    settings.KEYSCOPE_TRUSTED_PROXIES = []
    _, full_key = issue_deployment_key(deployment_a1, allowed_ips=[CLIENT])
    assert_error(execute(client, "org-a", "a-one", full_key, REMOTE_ADDR=PROXY), 403, "ip_not_allowed")
    assert execute(client, "org-a", "a-one", full_key, REMOTE_ADDR=CLIENT).status_code == 200


def test_a_refusal_counts_as_a_failed_authentication_of_that_address(client, org_a, deployment_a1):
    _, fenced = issue_global_key(org_a, allowed_ips=["192.0.2.0/24"], allow_all_deployments=True)

    statuses = [execute(client, "org-a", "a-one", fenced, REMOTE_ADDR="198.51.100.1").status_code for _ in range(LIMIT)]
    assert statuses == [403] * LIMIT
    assert_error(execute(client, "org-a", "a-one", fenced, REMOTE_ADDR="198.51.100.1"), 429, "rate_limited")
    assert_error(execute(client, "org-a", "a-one", "junk", REMOTE_ADDR="198.51.100.1"), 429, "rate_limited")
    # Another address, and the key from where it is allowed, are unaffected.
    assert_error(execute(client, "org-a", "a-one", "junk", REMOTE_ADDR="198.51.100.2"), 401, "invalid_key")
    assert execute(client, "org-a", "a-one", fenced, REMOTE_ADDR="192.0.2.1").status_code == 200


def test_a_refusal_is_logged_with_the_key_id_and_the_address_never_the_key(client, deployment_a1, caplog):
    row, full_key = issue_deployment_key(deployment_a1, allowed_ips=["192.0.2.0/24"])

    with caplog.at_level(logging.DEBUG):
        assert_error(execute(client, "org-a", "a-one", full_key, REMOTE_ADDR="2001:db8::77"), 403, "ip_not_allowed")

    refusals = [record.getMessage() for record in caplog.records if "ip_not_allowed" in record.getMessage()]
    assert refusals == [f"key {row.pk} refused from 2001:db8::77: ip_not_allowed"]
    assert all(full_key not in record.getMessage() and full_key[4:] not in record.getMessage() for record in caplog.records)
