"""Status reads as a coloured badge; rotation offers Stripe-like grace presets and says until when the old key works."""

from __future__ import annotations

from datetime import timedelta

import pytest
from django.test import Client
from django.utils import timezone
from django.utils.formats import date_format

from keys.models import GlobalApiDeploymentKey, RetiredSecret
from keys.services import key_deactivate, key_revoke, key_rotate
from keys.tests.factories import issue_global_key
from keys.tests.helpers import GLOBAL, admin_url, execute

pytestmark = pytest.mark.django_db


def row_of(page: str, name: str) -> str:
    start = page.index(f">{name}</a></th>")
    return page[start : page.index("</tr>", start)]


def test_each_status_has_its_badge_in_the_list(client_a, org_a):
    names = {}
    for status in ("active", "inactive", "expired", "revoked"):
        names[status], _ = issue_global_key(org_a, name=f"{status} key", allow_all_deployments=True)
    key_deactivate(key=names["inactive"], actor=None)
    GlobalApiDeploymentKey.objects.filter(pk=names["expired"].pk).update(expires_at=timezone.now() - timedelta(hours=1))
    key_revoke(key=names["revoked"], actor=None)

    page = client_a.get(admin_url(GLOBAL, "changelist")).content.decode()

    for status in names:
        assert f'<span class="key-status key-status-{status}">{status.capitalize()}</span>' in row_of(page, f"{status} key")
    assert "icon-yes.svg" not in page  # no tick anywhere to contradict a badge


def test_a_running_grace_shows_in_the_list_and_on_the_page(client_a, global_all_key_a):
    key, _ = global_all_key_a
    rotated, _ = key_rotate(key=key, actor=None, grace_period_seconds=3600)
    shown = date_format(timezone.localtime(rotated.previous_key_expires_at), "DATETIME_FORMAT")
    assert shown.endswith(" UTC")

    row = row_of(client_a.get(admin_url(GLOBAL, "changelist")).content.decode(), key.name)
    assert 'class="key-status key-status-grace"' in row and f"old key works until {shown}" in row
    page = client_a.get(admin_url(GLOBAL, "change", key.pk)).content.decode()
    assert 'id="key-grace"' in page and f"The old key still works until <strong>{shown}</strong>" in page

    key_rotate(key=rotated, actor=None)  # no grace: it ends
    assert 'id="key-grace"' not in client_a.get(admin_url(GLOBAL, "change", key.pk)).content.decode()


def test_the_rotate_form_offers_presets_and_defaults_to_a_day(client_a, global_all_key_a):
    key, _ = global_all_key_a
    form = client_a.get(admin_url(GLOBAL, "rotate", key.pk)).context["form"]

    assert [value for value, _ in form.fields["grace_period_seconds"].choices] == ["0", "3600", "86400", "604800", "custom"]
    assert form["grace_period_seconds"].value() == "86400"
    labels = dict(form.fields["grace_period_seconds"].choices)
    assert labels["3600"].startswith("1 hour (until ") and labels["3600"].endswith(" UTC)")


@pytest.mark.parametrize(
    ("posted", "seconds"),
    [
        ({"grace_period_seconds": "3600"}, 3600),
        ({"grace_period_seconds": "604800"}, 604800),
        ({"grace_period_seconds": "custom", "custom_grace": "2", "custom_grace_unit": "3600"}, 7200),
        ({"grace_period_seconds": "custom", "custom_grace": "90", "custom_grace_unit": "60"}, 5400),
    ],
)
def test_a_preset_or_a_custom_grace_keeps_the_old_key_that_long(client_a, global_all_key_a, deployment_a1, posted, seconds):
    key, old_key = global_all_key_a
    before = timezone.now()

    response = client_a.post(admin_url(GLOBAL, "rotate", key.pk), {"post": "yes", **posted})

    assert response.status_code == 200 and 'id="grace-note"' in response.content.decode()
    valid_until = RetiredSecret.objects.get(key_id=key.pk).valid_until
    assert before + timedelta(seconds=seconds - 5) < valid_until <= timezone.now() + timedelta(seconds=seconds)
    assert execute(Client(), "org-a", "a-one", old_key).status_code == 200


@pytest.mark.parametrize(
    ("posted", "error"),
    [
        ({"grace_period_seconds": "custom", "custom_grace": "8", "custom_grace_unit": "86400"}, "7 days at most"),
        ({"grace_period_seconds": "custom", "custom_grace": ""}, "Enter how long"),
        ({"grace_period_seconds": "12"}, "Select a valid choice"),
    ],
)
def test_a_bad_grace_is_a_form_error_and_rotates_nothing(client_a, global_all_key_a, posted, error):
    key, _ = global_all_key_a
    digest = key.digest

    response = client_a.post(admin_url(GLOBAL, "rotate", key.pk), {"post": "yes", **posted})

    assert response.status_code == 200 and error in response.content.decode()
    key.refresh_from_db()
    assert key.digest == digest


def test_the_confirmation_speaks_of_one_key_or_of_several(client_a, org_a, global_all_key_a):
    key, _ = global_all_key_a
    other, _ = issue_global_key(org_a, name="second", allow_all_deployments=True)

    one = client_a.get(admin_url(GLOBAL, "rotate", key.pk)).content.decode()
    assert "Rotate key" in one and "Each of these" not in one and f"<strong>{key.name}</strong>" in one
    several = client_a.post(
        admin_url(GLOBAL, "changelist"), {"action": "rotate_keys", "_selected_action": [str(key.pk), str(other.pk)]}
    ).content.decode()
    assert "Each of these 2 keys" in several and 'value="Rotate keys"' in several
    # The way back is a button of the same row and size, as Django's own closelink.
    assert '<a href="#" class="closelink cancel-link">No, take me back</a>' in one


def test_the_deployment_page_lists_its_keys_with_their_badges(client_a, deployment_key_a1):
    key, _ = deployment_key_a1
    page = client_a.get(admin_url("deployment", "change", key.deployment.pk, app="deployments")).content.decode()

    assert '<span class="key-status key-status-active">Active</span>' in page and "keys/admin.css" in page


def test_the_status_filter_finds_the_keys_in_grace(client_a, org_a, global_all_key_a):
    key, _ = global_all_key_a
    issue_global_key(org_a, name="never rotated", allow_all_deployments=True)
    key_rotate(key=key, actor=None, grace_period_seconds=3600)

    listed = client_a.get(admin_url(GLOBAL, "changelist"), {"status": "grace"}).context["cl"].result_list

    assert [row.name for row in listed] == [key.name]
