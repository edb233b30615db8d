"""The organization's key policy as the key service and `manage.py keys` apply it.

The API's side is in keys/tests/api/test_organization_policy.py, the admin's in
keys/tests/admin/test_restrictions_admin.py.
"""

import uuid
from datetime import timedelta
from io import StringIO

import pytest
from django.core.exceptions import ValidationError
from django.core.management import call_command
from django.core.management.base import CommandError
from django.utils import timezone

from keys.models import AuditEvent, DeploymentKey, GlobalApiDeploymentKey
from keys.policy import key_policy_update
from keys.services import key_revoke, key_rotate, key_update
from keys.tests.factories import issue_deployment_key, issue_global_key
from organizations.models import Organization


def run(*args: str) -> str:
    out = StringIO()
    call_command("keys", *args, stdout=out, stderr=StringIO())
    return out.getvalue()


# max_key_lifetime_days ---------------------------------------------------------------


@pytest.fixture
def thirty_days(org_a):
    key_policy_update(organization=org_a, actor=None, max_key_lifetime_days=30)
    org_a.refresh_from_db()
    return org_a


def test_the_service_gives_a_new_key_the_lifetimes_end(thirty_days, deployment_a1):
    row, _ = issue_deployment_key(deployment_a1)
    assert timedelta(days=30) - timedelta(seconds=5) < row.expires_at - timezone.now() <= timedelta(days=30)
    assert AuditEvent.objects.get(key_id=row.pk, action="created").changes["expires_at"][1] is not None


@pytest.mark.parametrize("kind", ["deployment", "global"])
def test_the_service_refuses_a_later_expiry_or_clearing_it(thirty_days, deployment_a1, kind):
    later = timezone.now() + timedelta(days=31)
    issue = {
        "deployment": lambda **f: issue_deployment_key(deployment_a1, **f),
        "global": lambda **f: issue_global_key(thirty_days, allow_all_deployments=True, **f),
    }[kind]
    with pytest.raises(ValidationError) as raised:
        issue(name="too long", expires_at=later)
    assert list(raised.value.message_dict) == ["expires_at"]

    row, _ = issue(name="fine")
    for expires_at in (later, None):
        with pytest.raises(ValidationError) as raised:
            key_update(key=row, actor=None, expires_at=expires_at)
        assert list(raised.value.message_dict) == ["expires_at"]


def test_rotation_keeps_the_expiry_under_the_policy(thirty_days, deployment_a1):
    row, _ = issue_deployment_key(deployment_a1)
    rotated, _ = key_rotate(key=row, actor=None, grace_period_seconds=60)
    assert rotated.expires_at == row.expires_at


def test_the_command_line_issues_within_the_lifetime(thirty_days, deployment_a1):
    run("issue", "--org", "org-a", "--deployment", "a-one", "--name", "cli")
    assert DeploymentKey.objects.get(name="cli").expires_at is not None
    later = (timezone.now() + timedelta(days=40)).strftime("%Y-%m-%dT%H:%M:%SZ")
    with pytest.raises(CommandError, match="expires_at: This organization's key policy limits keys to 30 days"):
        run("issue", "--org", "org-a", "--deployment", "a-one", "--name", "too long", "--expires-at", later)


def test_an_imported_key_keeps_the_expiry_it_had(thirty_days, deployment_a1):
    from keys.importing import import_keys

    document = {
        "deployment_keys": [{"key": str(uuid.uuid4()), "deployment": "a-one", "name": "from Unstract", "description": "",
                             "is_active": True}],
        "global_keys": [{"key": str(uuid.uuid4()), "name": "global from Unstract", "description": "", "is_active": True,
                         "allow_all_deployments": True, "deployments": []}],
    }
    import_keys(organization=thirty_days, document=document)

    assert DeploymentKey.objects.get(name="from Unstract").expires_at is None
    assert GlobalApiDeploymentKey.objects.get(name="global from Unstract").expires_at is None
    # Rotating it later keeps that expiry too; what is new under the policy is a new key.
    rotated, _ = key_rotate(key=DeploymentKey.objects.get(name="from Unstract"), actor=None)
    assert rotated.expires_at is None


def test_setting_the_policy_leaves_existing_keys_alone(org_a, deployment_a1):
    row, _ = issue_deployment_key(deployment_a1)
    key_policy_update(organization=org_a, actor=None, max_key_lifetime_days=1)
    row.refresh_from_db()
    assert row.expires_at is None


@pytest.mark.parametrize(
    "changes, field",
    [
        ({"max_key_lifetime_days": 0}, "max_key_lifetime_days"),
        ({"max_key_lifetime_days": 3651}, "max_key_lifetime_days"),
        ({"deactivate_unused_keys_after_days": 0}, "deactivate_unused_keys_after_days"),
        ({"deactivate_unused_keys_after_days": 3651}, "deactivate_unused_keys_after_days"),
        ({"default_rate_limit_per_minute": -1}, "default_rate_limit_per_minute"),
        ({"max_key_lifetime_days": True}, "max_key_lifetime_days"),
        ({"slug": "taken"}, "slug"),
    ],
)
def test_the_policy_service_refuses_what_the_api_refuses(org_a, changes, field):
    with pytest.raises(ValidationError) as raised:
        key_policy_update(organization=org_a, actor=None, **changes)
    assert list(raised.value.message_dict) == [field]
    assert not AuditEvent.objects.exists()


# deactivate_unused_keys_after_days ------------------------------------------------------


def _age(model, row, *, created_days_ago: int, used_days_ago: int | None) -> None:
    now = timezone.now()
    model.objects.filter(pk=row.pk).update(
        created_at=now - timedelta(days=created_days_ago),
        last_used_at=None if used_days_ago is None else now - timedelta(days=used_days_ago),
    )


@pytest.fixture
def keys_of_every_age(org_a, org_b, deployment_a1, deployment_b1):
    """org A deactivates keys unused for 30 days; org B has no such policy."""
    Organization.objects.filter(pk=org_a.pk).update(deactivate_unused_keys_after_days=30)
    keys = {}
    for name, created, used in [
        ("used yesterday", 400, 1),
        ("used 31 days ago", 400, 31),
        ("never used, made 31 days ago", 31, None),
        ("never used, made yesterday", 1, None),
    ]:
        keys[name], _ = issue_deployment_key(deployment_a1, name=name)
        _age(DeploymentKey, keys[name], created_days_ago=created, used_days_ago=used)
    keys["global, used 40 days ago"], _ = issue_global_key(org_a, name="global old", allow_all_deployments=True)
    _age(GlobalApiDeploymentKey, keys["global, used 40 days ago"], created_days_ago=90, used_days_ago=40)
    for name, change in [("revoked", "revoke"), ("already inactive", "deactivate"), ("expired", "expire")]:
        keys[name], _ = issue_deployment_key(deployment_a1, name=name)
        _age(DeploymentKey, keys[name], created_days_ago=100, used_days_ago=None)
        if change == "revoke":
            key_revoke(key=keys[name], actor=None)
        elif change == "deactivate":
            DeploymentKey.objects.filter(pk=keys[name].pk).update(is_active=False)
        else:
            DeploymentKey.objects.filter(pk=keys[name].pk).update(expires_at=timezone.now() - timedelta(days=1))
    keys["org B, unused for a year"], _ = issue_deployment_key(deployment_b1, name="b")
    _age(DeploymentKey, keys["org B, unused for a year"], created_days_ago=400, used_days_ago=365)
    return keys


STALE = ["used 31 days ago", "never used, made 31 days ago", "global, used 40 days ago"]


def test_deactivate_unused_deactivates_each_stale_key_audited_by_the_system(keys_of_every_age):
    out = run("deactivate-unused")

    for name, row in keys_of_every_age.items():
        row.refresh_from_db()
        expected_active = name not in STALE and name != "already inactive"
        assert row.is_active is expected_active, name
        if name in STALE:
            event = AuditEvent.objects.get(key_id=row.pk, action="deactivated")
            assert (event.actor_id, event.actor_username, event.changes) == (None, "", {"is_active": [True, False]})
            assert f"deactivated {row.pk}" in out
    assert "Deactivated 3 keys." in out
    assert AuditEvent.objects.filter(action="deactivated").count() == 3
    # A second run finds nothing left to do.
    assert run("deactivate-unused").strip() == "Deactivated 0 keys."


def test_dry_run_lists_what_it_would_do_and_changes_nothing(keys_of_every_age):
    events = AuditEvent.objects.count()

    out = run("deactivate-unused", "--dry-run")

    assert "Would deactivate 3 keys." in out
    assert all(f"would deactivate {keys_of_every_age[name].pk}" in out for name in STALE)
    assert "never (created" in out
    assert DeploymentKey.objects.filter(is_active=False).count() == 1  # only the one that already was
    assert AuditEvent.objects.count() == events
    assert "ks" + "d_" not in out.replace("ksd_\u2026", "")  # masked keys only


def test_a_deactivated_unused_key_is_refused(client, keys_of_every_age):
    from keys.tests.helpers import assert_error, execute

    row = keys_of_every_age["used 31 days ago"]
    rotated, full_key = key_rotate(key=row, actor=None)
    assert execute(client, "org-a", "a-one", full_key).status_code == 200
    DeploymentKey.objects.filter(pk=row.pk).update(last_used_at=timezone.now() - timedelta(days=31))

    run("deactivate-unused")

    assert_error(execute(client, "org-a", "a-one", full_key), 401, "key_inactive")
