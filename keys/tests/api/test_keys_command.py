"""`manage.py keys`: the operators' command line, over the same services as the API."""

import json
import re
from datetime import UTC
from io import StringIO

import pytest
from django.core.management import call_command
from django.core.management.base import CommandError
from django.utils import timezone

from deployments.services import group_create
from deployments.tests.factories import DeploymentFactory
from keys import crypto
from keys.lookup import LOOKUPS
from keys.models import AuditEvent, DeploymentKey, GlobalApiDeploymentKey

FULL_KEY = re.compile(r"ks[dg]_[0-9A-Za-z]{38}")


def run(*args):
    out, err = StringIO(), StringIO()
    call_command("keys", *args, stdout=out, stderr=err)
    return out.getvalue(), err.getvalue()


def works(full_key):
    kind = crypto.key_kind(full_key)
    found = LOOKUPS[kind].run(crypto.digest(full_key))[0] if kind else None
    return found is not None and found.failure_at(timezone.now()) is None


def test_issue_a_deployment_key_prints_it_once(deployment_a1):
    out, err = run("issue", "--org", "org-a", "--deployment", "a-one", "--name", "CI")
    full_key = FULL_KEY.search(out).group()
    assert full_key.startswith("ksd_") and works(full_key)
    assert "only time" in err
    key = DeploymentKey.objects.get(name="CI")
    assert key.deployment == deployment_a1
    event = AuditEvent.objects.get(key_id=key.pk)
    assert (event.action, event.actor_id) == ("created", None)


def test_issue_a_global_key_as_json(deployment_a1, deployment_a2):
    out, _ = run("issue", "--org", "org-a", "--global", "--deployment", "a-two", "--deployment", "a-one",
                 "--name", "Two", "--json")
    data = json.loads(out)
    assert data["kind"] == "global" and data["organization"] == "org-a"
    assert (data["allow_all_deployments"], data["deployments"]) == (False, ["a-one", "a-two"])
    assert works(data["key"])
    out, _ = run("issue", "--org", "org-a", "--global", "--all-deployments", "--name", "All", "--json")
    assert json.loads(out)["allow_all_deployments"] is True


@pytest.mark.parametrize(
    "args",
    [
        ["--org", "nope", "--deployment", "a-one", "--name", "x"],
        ["--org", "org-a", "--deployment", "nope", "--name", "x"],
        ["--org", "org-a", "--name", "x"],
        ["--org", "org-a", "--global", "--name", "x"],
        ["--org", "org-a", "--global", "--all-deployments", "--deployment", "a-one", "--name", "x"],
        ["--org", "org-a", "--global", "--deployment", "b-one", "--name", "x"],
        ["--org", "org-a", "--deployment", "a-one", "--name", "  "],
        ["--org", "org-a", "--deployment", "a-one", "--name", "x", "--expires-at", "2001-01-01T00:00:00Z"],
    ],
)
def test_issue_refuses_bad_input_with_a_message(deployment_a1, deployment_b1, args):
    with pytest.raises(CommandError):
        run("issue", *args)
    assert not DeploymentKey.objects.exists() and not GlobalApiDeploymentKey.objects.exists()


def test_issue_a_global_key_bound_to_groups(group_a, deployment_a1, deployment_a2):
    group_create(organization=group_a.organization, slug="staging", name="Staging", actor=None)
    out, _ = run("issue", "--org", "org-a", "--global", "--group", "staging", "--group", "production",
                 "--group", "production", "--deployment", "a-two", "--name", "Grouped", "--json")
    data = json.loads(out)
    assert (data["groups"], data["deployments"]) == (["production", "staging"], ["a-two"])
    assert works(data["key"])
    key = GlobalApiDeploymentKey.objects.get(name="Grouped")
    assert sorted(key.groups.values_list("slug", flat=True)) == ["production", "staging"]
    out, _ = run("list", "--org", "org-a", "--kind", "global")
    assert "group:production" in out


@pytest.mark.parametrize(
    "args",
    [
        pytest.param(["--global", "--group", "nope"], id="unknown-group"),
        pytest.param(["--global", "--group", "b-production"], id="another-organizations-group"),
        pytest.param(["--global", "--all-deployments", "--group", "production"], id="allow-all-with-a-group"),
        pytest.param(["--deployment", "a-one", "--group", "production"], id="a-deployment-key-with-a-group"),
    ],
)
def test_issue_refuses_a_bad_group(group_a, group_b, deployment_a1, args):
    group_b.slug = "b-production"  # so only the organization tells them apart
    group_b.save(update_fields=["slug"])

    with pytest.raises(CommandError):
        run("issue", "--org", "org-a", "--name", "x", *args)
    assert not GlobalApiDeploymentKey.objects.exists() and not DeploymentKey.objects.exists()


def test_issue_refuses_a_taken_name(deployment_key_a1):
    with pytest.raises(CommandError, match="already exists"):
        run("issue", "--org", "org-a", "--deployment", "a-one", "--name", "A-ONE KEY")


def test_list_shows_masked_keys_only(deployment_key_a1, global_all_key_a, global_all_key_b):
    out, _ = run("list")
    assert "a-one key" in out and "all of A" in out and "all of B" in out
    assert not FULL_KEY.search(out)
    assert deployment_key_a1[0].key_masked in out
    out, _ = run("list", "--org", "org-a", "--json")
    rows = json.loads(out)
    assert {row["name"] for row in rows} == {"a-one key", "all of A"}
    assert all("key" not in row for row in rows)
    out, _ = run("list", "--org", "org-a", "--deployment", "a-one")
    assert "a-one key" in out and "all of A" not in out


def test_rotate_by_id_with_grace_prints_the_new_key(deployment_key_a1):
    key, old_key = deployment_key_a1
    out, _ = run("rotate", "--id", str(key.pk), "--grace", "60", "--json")
    new_key = json.loads(out)["key"]
    assert new_key != old_key and works(new_key) and works(old_key)


def test_rotate_by_name_without_grace(global_all_key_a):
    key, old_key = global_all_key_a
    out, _ = run("rotate", "--org", "org-a", "--name", "ALL OF A")
    new_key = FULL_KEY.search(out).group()
    assert works(new_key) and not works(old_key)


@pytest.mark.parametrize("grace", ["-1", "604801"])
def test_rotate_refuses_a_bad_grace(deployment_key_a1, grace):
    with pytest.raises(CommandError, match="grace_period_seconds"):
        run("rotate", "--id", str(deployment_key_a1[0].pk), "--grace", grace)


def test_revoke_deactivate_activate_print_no_full_key(deployment_key_a1):
    key, full_key = deployment_key_a1
    find = ["--org", "org-a", "--deployment", "a-one", "--name", "a-one key"]
    out, _ = run("deactivate", *find)
    assert "inactive" in out and not FULL_KEY.search(out)
    out, _ = run("activate", *find, "--json")
    assert json.loads(out)["status"] == "active" and "key" not in json.loads(out)
    out, _ = run("revoke", *find)
    assert "revoked" in out and not FULL_KEY.search(out)
    run("revoke", *find)  # again: no-op
    assert AuditEvent.objects.filter(key_id=key.pk, action="revoked").count() == 1
    assert [e.action for e in AuditEvent.objects.filter(key_id=key.pk).order_by("created_at")] == [
        "created", "deactivated", "activated", "revoked"
    ]
    with pytest.raises(CommandError, match="revoked"):
        run("activate", *find)
    with pytest.raises(CommandError, match="revoked"):
        run("rotate", *find)


@pytest.mark.parametrize(
    "args",
    [["--id", "not-a-uuid"], ["--id", "00000000-0000-0000-0000-000000000000"], ["--org", "org-a"],
     ["--org", "org-a", "--name", "ghost"], []],
)
def test_finding_a_key_that_is_not_there_is_an_error(org_a, args):
    with pytest.raises(CommandError):
        run("revoke", *args)


def test_help_lists_the_actions(capsys):
    with pytest.raises(SystemExit):
        call_command("keys", "--help")
    help_text = capsys.readouterr().out
    for action in ("list", "issue", "rotate", "revoke", "deactivate", "activate", "deactivate-unused"):
        assert action in help_text
    assert "only by `issue` and `rotate`" in help_text


# What a key may do, and from where ----------------------------------------------------------


def test_issue_with_scopes_and_addresses(deployment_a1):
    out, _ = run("issue", "--org", "org-a", "--deployment", "a-one", "--name", "reader", "--scope", "executions:read",
                 "--allow-ip", "203.0.113.7", "--allow-ip", "2001:DB8::/32", "--json")
    data = json.loads(out)
    assert (data["scopes"], data["allowed_ips"]) == (["executions:read"], ["203.0.113.7/32", "2001:db8::/32"])
    key = DeploymentKey.objects.get(name="reader")
    assert (key.scopes, key.allowed_ips) == (["executions:read"], ["203.0.113.7/32", "2001:db8::/32"])
    changes = AuditEvent.objects.get(key_id=key.pk, action="created").changes
    assert (changes["scopes"], changes["allowed_ips"]) == ([None, ["executions:read"]], [None, ["203.0.113.7/32", "2001:db8::/32"]])


def test_issue_without_scopes_gives_them_all_and_says_so(deployment_a1):
    out, _ = run("issue", "--org", "org-a", "--global", "--all-deployments", "--name", "Ops",
                 "--scope", "deployments:execute", "--scope", "executions:read")
    assert "scopes:       deployments:execute,executions:read" in out
    assert "allowed_ips:  any address" in out
    out, _ = run("issue", "--org", "org-a", "--deployment", "a-one", "--name", "plain", "--json")
    assert json.loads(out)["scopes"] == ["deployments:execute", "executions:read"]


@pytest.mark.parametrize(
    "args, message",
    [
        (["--scope", "deployments:delete"], "invalid choice"),
        (["--allow-ip", "10.0.0.5/8"], "allowed_ips: “10.0.0.5/8” has host bits set"),
        (["--allow-ip", "nope"], "allowed_ips: “nope” is not an IPv4 or IPv6 address"),
        ([arg for n in range(101) for arg in ("--allow-ip", f"198.51.100.{n}")], "allowed_ips: At most 100"),
    ],
)
def test_issue_refuses_bad_restrictions_naming_the_field(deployment_a1, args, message):
    with pytest.raises(CommandError, match=message):
        run("issue", "--org", "org-a", "--deployment", "a-one", "--name", "bad", *args)
    assert not DeploymentKey.objects.exists()


def test_list_shows_what_each_key_may_do_and_from_where(deployment_a1, org_a):
    DeploymentKey.objects.issue(deployment=deployment_a1, name="reader", scopes=["executions:read"],
                                allowed_ips=["203.0.113.7", "10.0.0.0/8"])
    GlobalApiDeploymentKey.objects.issue(organization=org_a, name="anything", allow_all_deployments=True)

    out, _ = run("list", "--org", "org-a")
    lines = {line.rsplit("  ", 1)[-1]: line for line in out.splitlines()[1:]}
    assert "executions:read" in lines["reader"] and "2 networks" in lines["reader"]
    assert "  all  " in lines["anything"] and "anywhere" in lines["anything"]
    rows = {row["name"]: row for row in json.loads(run("list", "--org", "org-a", "--json")[0])}
    assert rows["reader"]["allowed_ips"] == ["203.0.113.7/32", "10.0.0.0/8"]
    assert rows["anything"]["scopes"] == ["deployments:execute", "executions:read"]


def test_rotate_with_grace_says_until_when_the_old_secret_works(deployment_key_a1):
    out, _ = run("rotate", "--id", str(deployment_key_a1[0].pk), "--grace", "600")
    assert "previous key: works until 20" in out
    out, _ = run("rotate", "--id", str(deployment_key_a1[0].pk), "--json")
    assert json.loads(out)["previous_key_expires_at"] is None


def test_list_names_a_long_scope_by_its_first_slugs_and_cuts_visibly(org_a):
    slugs = [f"a-deployment-with-a-long-slug-{n}" for n in range(5)]
    deployments = [DeploymentFactory(organization=org_a, slug=slug) for slug in slugs]
    GlobalApiDeploymentKey.objects.issue(organization=org_a, name="wide", deployments=deployments)

    out, _ = run("list", "--org", "org-a")

    header, row = out.splitlines()[:2]
    scope = row[header.index("SCOPE") : header.index("STATUS")].strip()
    assert scope.startswith("a-deployment-with-a-long-slug-0") and scope.endswith("…")
    assert row.rstrip().endswith("wide")  # the name, whole, after the cut column
    short = run("list", "--org", "org-a", "--json")[0]
    assert sorted(json.loads(short)[0]["deployments"]) == sorted(slugs)  # --json has them all


def test_list_says_how_many_more_deployments_a_scope_has(org_a, deployment_a1, deployment_a2, deployment_a3):
    extra = DeploymentFactory(organization=org_a, slug="a-four")
    GlobalApiDeploymentKey.objects.issue(
        organization=org_a, name="four", deployments=[deployment_a1, deployment_a2, deployment_a3, extra]
    )

    out, _ = run("list", "--org", "org-a")

    assert "a-four, a-one and 2 more" in out  # three would not fit the column


def test_rotate_with_grace_prints_when_the_old_key_stops(deployment_key_a1):
    key, _ = deployment_key_a1
    out, _ = run("rotate", "--id", str(key.pk), "--grace", "3600")

    key.refresh_from_db()
    until = key.previous_key_expires_at.astimezone(UTC)
    assert f"previous key: works until {until:%Y-%m-%d %H:%M:%S} UTC" in out
