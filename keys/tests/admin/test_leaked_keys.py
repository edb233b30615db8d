"""The admin says which keys were revoked as leaked: a badge on their page and in the list, and a filter."""

import pytest
from django.contrib.staticfiles import finders

from keys.models import RevocationReason
from keys.services import key_revoke
from keys.tests.helpers import DEPLOYMENT, GLOBAL, admin_url
from keys.tests.leaks.helpers import report

pytestmark = pytest.mark.django_db

# One badge system for every status (keys/admin.py status_badges): "Revoked", then this one.
BADGE = '<span class="key-status key-status-revoked">Revoked</span> <span class="key-status key-status-leaked">Reported as leaked</span>'


@pytest.fixture
def leaked_and_not(client, deployment_key_a1, global_all_key_a, global_selected_key_a):
    """all-of-A reported as leaked; a-one and a-two revoked by an admin; a-one key untouched."""
    report(client, global_all_key_a[1])
    key_revoke(key=global_selected_key_a[0], actor=None)
    return global_all_key_a[0], global_selected_key_a[0], deployment_key_a1[0]


def test_a_leaked_keys_page_says_so(client_a, leaked_and_not):
    leaked, revoked, _ = leaked_and_not

    page = client_a.get(admin_url(GLOBAL, "change", leaked.pk)).content.decode()
    other = client_a.get(admin_url(GLOBAL, "change", revoked.pk)).content.decode()

    assert BADGE in page and "keys/admin.css" in page
    assert BADGE not in other and "by an admin or the command line" in other


def test_the_list_shows_the_badge_and_filters_on_it(client_a, leaked_and_not):
    leaked, revoked, _ = leaked_and_not

    listing = client_a.get(admin_url(GLOBAL, "changelist")).content.decode()
    filtered = client_a.get(admin_url(GLOBAL, "changelist"), {"revocation": RevocationReason.REPORTED_AS_LEAKED})

    assert listing.count(BADGE) == 1
    assert "reported as leaked" in listing  # the filter's choice
    names = [key.name for key in filtered.context["cl"].result_list]
    assert names == [leaked.name]


def test_the_deployment_key_list_filters_on_it_too(client_a, client, deployment_key_a1):
    key, full_key = deployment_key_a1
    assert client_a.get(admin_url(DEPLOYMENT, "changelist"), {"revocation": "leaked"}).context["cl"].result_count == 0

    report(client, full_key)

    filtered = client_a.get(admin_url(DEPLOYMENT, "changelist"), {"revocation": "leaked"})
    assert [row.pk for row in filtered.context["cl"].result_list] == [key.pk]
    assert BADGE in filtered.content.decode()


def test_a_key_revoked_by_its_holder_says_that_on_its_page(client_a, client, deployment_key_a1):
    key, full_key = deployment_key_a1
    client.post("/api/v1/key/revoke/", HTTP_AUTHORIZATION=f"Bearer {full_key}")

    page = client_a.get(admin_url(DEPLOYMENT, "change", key.pk)).content.decode()

    assert "revoked by its holder" in page and BADGE not in page


def test_the_badge_styles_ship_with_the_app():
    path = finders.find("keys/admin.css")
    assert path and ".key-status-leaked" in open(path).read()
