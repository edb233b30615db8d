"""`manage.py keys notify-expiring`: a daily email to each organization's admins of keys that expire soon."""

from datetime import timedelta
from io import StringIO
from unittest import mock

import pytest
from django.core import mail
from django.core.management import call_command
from django.core.management.base import CommandError
from django.utils import timezone

from keys.models import ExpiryNotice
from keys.services import key_deactivate, key_revoke
from keys.tests.factories import issue_deployment_key, issue_global_key

from .helpers import assert_no_full_key_in_any_email

pytestmark = pytest.mark.django_db


def notify(*args: str) -> str:
    out = StringIO()
    call_command("keys", "notify-expiring", *args, stdout=out, stderr=StringIO())
    return out.getvalue()


def in_days(days: float):
    return timezone.now() + timedelta(days=days)


@pytest.fixture
def expiring_a(org_a, deployment_a1):
    """Org A's keys: two expire within 7 days; the others are later, revoked or inactive."""
    soon = issue_deployment_key(deployment_a1, name="soon", expires_at=in_days(3))[0]
    sooner = issue_global_key(org_a, name="sooner", allow_all_deployments=True, expires_at=in_days(1))[0]
    issue_global_key(org_a, name="later", allow_all_deployments=True, expires_at=in_days(10))
    issue_global_key(org_a, name="never", allow_all_deployments=True)
    key_revoke(key=issue_deployment_key(deployment_a1, name="revoked", expires_at=in_days(2))[0], actor=None)
    key_deactivate(key=issue_deployment_key(deployment_a1, name="off", expires_at=in_days(2))[0], actor=None)
    return soon, sooner


def test_the_admins_get_one_email_listing_the_keys_that_expire_within_7_days(admin_a, member_a, expiring_a):
    soon, sooner = expiring_a

    out = notify()

    (message,) = mail.outbox
    assert message.to == [admin_a.email]
    assert "2 keys expire within 7 days" in message.subject
    assert message.body.index("sooner") < message.body.index("soon (")  # soonest first
    assert soon.key_masked in message.body and sooner.key_masked in message.body
    for name in ("later", "never", "revoked", "off"):
        assert f"\n{name} (" not in message.body
    assert "org-a: 2 expiring keys, emailed to 1 admins." in out
    assert_no_full_key_in_any_email()


def test_nothing_is_sent_twice_for_the_same_key_and_day(admin_a, expiring_a):
    notify()
    mail.outbox.clear()

    out = notify()

    assert not mail.outbox
    assert "No key expires within 7 days" in out
    assert ExpiryNotice.objects.count() == 2


def test_the_next_day_the_keys_are_listed_again(admin_a, expiring_a):
    notify()
    ExpiryNotice.objects.update(sent_on=timezone.now().date() - timedelta(days=1))
    mail.outbox.clear()

    notify()

    assert len(mail.outbox) == 1


def test_days_widens_the_window(admin_a, expiring_a):
    notify("--days", "14")

    assert "3 keys expire within 14 days" in mail.outbox[0].subject
    assert "later (" in mail.outbox[0].body


def test_each_organization_gets_its_own_email(admin_a, admin_b, expiring_a, org_b):
    issue_global_key(org_b, name="b soon", allow_all_deployments=True, expires_at=in_days(2))

    notify()

    assert sorted(message.to[0] for message in mail.outbox) == [admin_a.email, admin_b.email]
    (to_b,) = [message for message in mail.outbox if message.to == [admin_b.email]]
    assert "b soon" in to_b.body and "sooner" not in to_b.body


def test_a_failed_send_records_nothing_so_the_next_run_retries(admin_a, expiring_a):
    with mock.patch("django.core.mail.EmailMessage.send", side_effect=ConnectionRefusedError):
        with pytest.raises(CommandError, match="Could not email org-a"):
            notify()
    assert not ExpiryNotice.objects.exists()

    notify()

    assert len(mail.outbox) == 1


def test_an_organization_whose_admins_have_no_email_is_tried_again_later(admin_a, expiring_a):
    admin_a.email = ""
    admin_a.save()

    notify()

    assert not mail.outbox and not ExpiryNotice.objects.exists()


@pytest.mark.parametrize("days", ["0", "-1", "3651"])
def test_days_out_of_range_is_an_error(days):
    with pytest.raises(CommandError, match="--days"):
        notify("--days", days)
