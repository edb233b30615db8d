"""The whole life of a key in a real browser, at 1280 px: an org admin creates, uses, rotates and revokes a global key.

Drives Debian's Chromium (`apt-get install chromium`) through Playwright's sync
API against pytest-django's live server; Playwright never downloads a browser.
Without Chromium the test is skipped, loudly; under CI=true it fails instead.
A full-page screenshot of each admin page lands in var/test-artifacts/ (looked at by
the developer, uploaded nowhere); every page is checked for sideways scrolling.
"""

from __future__ import annotations

import os
import shutil
import warnings
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from django.conf import settings
from django.db import connections

from deployments.tests.factories import DeploymentFactory
from keys import crypto
from keys.models import AuditEvent, GlobalApiDeploymentKey
from keys.tests.helpers import FULL_KEY
from organizations.models import Membership
from organizations.tests.factories import TEST_PASSWORD, MembershipFactory, OrganizationFactory, UserFactory

pytestmark = pytest.mark.browser

ARTIFACTS = Path(settings.BASE_DIR) / "var" / "test-artifacts"
WIDTH = 1280  # the narrowest screen the admin is made for
CHROMIUM_ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking"]


def chromium_path() -> str:
    path = shutil.which("chromium")
    if path is None:
        message = "CHROMIUM NOT FOUND: the admin browser test did not run (install Debian's `chromium` package)."
        if os.environ.get("CI") == "true":
            pytest.fail(message + " Under CI=true this is an error.")
        warnings.warn(message, stacklevel=2)
        pytest.skip(message)
    return path


@pytest.fixture
def page(monkeypatch) -> Iterator:
    executable = chromium_path()
    # Playwright's sync API runs an event loop in this thread; the ORM calls
    # the test makes between browser steps are synchronous and safe.
    monkeypatch.setenv("DJANGO_ALLOW_ASYNC_UNSAFE", "true")
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=executable, args=CHROMIUM_ARGS)
        context = browser.new_context(viewport={"width": WIDTH, "height": 900})
        page = context.new_page()
        page.set_default_timeout(15_000)
        try:
            yield page
        finally:
            context.close()
            browser.close()
            # Queries made while Playwright's loop runs get a connection of their
            # own; left open, it blocks the test database's teardown.
            connections.close_all()


def execute(base_url: str, deployment_slug: str, full_key: str) -> httpx.Response:
    return httpx.post(
        f"{base_url}/api/v1/deployments/lab/{deployment_slug}/execute/",
        json={"hello": "world"},
        headers={"Authorization": f"Bearer {full_key}"},
        timeout=10,
    )


def read_one_time_key(page) -> str:
    # The page answers the form's POST: wait for it to load, a loaded machine may take seconds.
    page.locator(".one-time-key-page").wait_for(timeout=30_000)
    assert page.locator(".one-time-key-page").count() == 1
    assert "will not be shown again" in page.locator("#one-time-warning").inner_text()
    codes = page.locator("code.full-key")
    assert codes.count() == 1
    full_key = codes.inner_text().strip()
    assert FULL_KEY.fullmatch(full_key) and crypto.key_kind(full_key) == "global"
    assert page.content().count(full_key) == 1
    return full_key


def assert_not_in_cookies(page, full_key: str) -> None:
    for cookie in page.context.cookies():
        assert full_key not in cookie["value"]


def shot(page, name: str) -> None:
    """Save the page, whole, and check that nothing on it scrolls sideways at WIDTH."""
    page.wait_for_load_state()
    overflowing = page.evaluate(
        """() => [document.documentElement, ...document.querySelectorAll('.results, .module, table, #content-main')]
            .filter(e => e.scrollWidth > e.clientWidth + 1)
            .map(e => (e.id || e.className || e.tagName) + ': ' + e.scrollWidth + ' > ' + e.clientWidth)"""
    )
    assert overflowing == [], f"{name} scrolls sideways at {WIDTH} px: {overflowing}"
    page.screenshot(path=str(ARTIFACTS / f"{name}.png"), full_page=True)


def todays_requests(page) -> int:
    """Today's count, from the table behind the usage chart (its last row)."""
    return int(page.locator("#key-usage-table tbody tr").last.locator("td").text_content())  # in a closed <details>


def test_the_life_of_a_key_in_the_browser(live_server, page):
    lab = OrganizationFactory(slug="lab", name="Lab")
    other = OrganizationFactory(slug="other", name="Other")
    for slug in ("alpha", "beta", "gamma"):
        DeploymentFactory(organization=lab, slug=slug, name=slug.title())
    DeploymentFactory(organization=other, slug="secret", name="Secret")
    admin = UserFactory(username="lab-admin", is_staff=True)
    MembershipFactory(organization=lab, user=admin, role=Membership.Role.ADMIN)
    base = live_server.url
    ARTIFACTS.mkdir(parents=True, exist_ok=True)

    # Log in: the admin is keyscope's.
    page.goto(f"{base}/admin/login/?next=/admin/")
    assert page.locator("#site-name").inner_text() == "keyscope"
    shot(page, "life-01-login")
    page.fill("#id_username", "lab-admin")
    page.fill("#id_password", TEST_PASSWORD)
    page.click("input[type=submit]")
    page.wait_for_url(f"{base}/admin/")
    assert "Key hygiene: Lab" in page.locator("#key-hygiene").inner_text()
    shot(page, "life-02-index")

    # Create a global key for alpha and beta that may only execute.
    page.goto(f"{base}/admin/keys/globalapideploymentkey/add/")
    assert page.locator("#id_organization option").all_inner_texts() == ["Lab"]  # the only one: chosen
    available = page.locator("#id_deployments_from option").all_inner_texts()
    assert sorted(available) == ["lab/alpha", "lab/beta", "lab/gamma"]  # nothing of "other"
    page.fill("#id_name", "browser key")
    page.select_option("#id_deployments_from", label=["lab/alpha", "lab/beta"])
    page.click("#id_deployments_add")
    page.uncheck("input[name=scopes][value='executions:read']")
    shot(page, "life-03-add-key")
    page.click("input[name=_save]")

    # The one-time page answers the POST, with the key's scope.
    full_key = read_one_time_key(page)
    issued = page.locator("#issued-1").inner_text()
    assert "Alpha, Beta" in page.locator("#issued-scope-1").inner_text() and "deployments:execute" in issued
    assert "executions:read" not in issued
    shot(page, "life-04-one-time-page")
    page.click("button.copy-key")
    page.wait_for_function("document.querySelector('.copy-status').textContent !== ''")
    assert_not_in_cookies(page, full_key)

    # Its page before any use: today's bar is at zero.
    page.click("#issued-1 dd a")
    key = GlobalApiDeploymentKey.objects.get(name="browser key")
    page.wait_for_url(f"{base}/admin/keys/globalapideploymentkey/{key.pk}/change/")
    assert todays_requests(page) == 0
    assert full_key not in page.content()

    # Use it: alpha three times; gamma is out of its scope.
    for _ in range(3):
        assert execute(base, "alpha", full_key).status_code == 200
    outside = execute(base, "gamma", full_key)
    assert outside.status_code == 403 and outside.json()["code"] == "deployment_not_in_scope"

    # The chart moves: today's bar counts the four requests the key authenticated, the refused one included.
    page.reload()
    assert todays_requests(page) == 4
    assert page.locator("rect.key-usage-today title").text_content().endswith(": 4 requests")
    assert page.locator(".field-status .key-status-active").is_visible()
    assert page.locator(".field-last_used_at .readonly").inner_text().endswith(" UTC")  # as fresh as the chart
    shot(page, "life-05-key-page-used")

    # The list: masked, its scope by name, its badge; the full key is gone.
    page.goto(f"{base}/admin/keys/globalapideploymentkey/")
    row = page.locator("#result_list tbody tr", has_text="browser key")
    assert key.key_masked in row.inner_text() and "Alpha, Beta" in row.inner_text()
    assert row.locator(".key-status-active").count() == 1
    assert full_key not in page.content()
    shot(page, "life-06-key-list")

    # Rotate it from its page with the 1-hour preset: the new key is shown once, the old one keeps working.
    row.locator("th a").click()
    page.click("#rotate-key")
    assert page.locator("input[name=grace_period_seconds][value='86400']").is_checked()  # a day unless chosen
    page.check("input[name=grace_period_seconds][value='3600']")
    shot(page, "life-07-rotate")
    page.click("#confirm-rotate")
    new_key = read_one_time_key(page)
    assert new_key != full_key
    assert "The old key keeps working until" in page.locator("#grace-note").inner_text()
    shot(page, "life-08-rotated")
    assert execute(base, "beta", new_key).status_code == 200
    assert execute(base, "beta", full_key).status_code == 200  # in its grace

    # The key's page and the list say until when the old key works.
    page.goto(f"{base}/admin/keys/globalapideploymentkey/{key.pk}/change/")
    grace = page.locator("#key-grace").inner_text()
    assert "The old key still works until" in grace and " UTC" in grace
    assert page.locator(".field-status .key-status-grace").is_visible()
    assert new_key not in page.content() and full_key not in page.content()
    shot(page, "life-09-key-page-in-grace")
    page.goto(f"{base}/admin/keys/globalapideploymentkey/")
    listed = page.locator("#result_list tbody tr", has_text="browser key").inner_text()
    assert "In grace" in listed and "old key works until" in listed
    shot(page, "life-10-key-list-in-grace")

    # Revoke it from its page, through the confirmation.
    page.goto(f"{base}/admin/keys/globalapideploymentkey/{key.pk}/change/")
    page.click("#revoke-key")
    page.wait_for_selector("#confirm-revoke")
    assert "Revocation is final" in page.content()
    shot(page, "life-11-revoke")
    page.click("#confirm-revoke")
    page.wait_for_url(f"{base}/admin/keys/globalapideploymentkey/{key.pk}/change/")
    assert page.locator(".field-status .key-status-revoked").inner_text() == "Revoked"
    assert page.locator(".field-is_active").count() == 0  # no "enabled" tick beside "revoked"
    shot(page, "life-12-key-page-revoked")
    assert execute(base, "alpha", new_key).json()["code"] == "key_revoked"
    page.goto(f"{base}/admin/keys/globalapideploymentkey/")
    assert page.locator("#result_list tbody tr", has_text="browser key").locator(".key-status-revoked").count() == 1
    shot(page, "life-13-key-list-revoked")

    # The index's hygiene panel names the revoked key that a client still uses.
    page.goto(f"{base}/admin/")
    refused = page.locator("#key-hygiene-refusals").inner_text()
    assert "browser key" in refused and "revoked" in refused
    shot(page, "life-14-index-after")

    # Its history is its audit trail; the audit events and executions link back to it.
    page.goto(f"{base}/admin/keys/globalapideploymentkey/{key.pk}/history/")
    assert [cell.inner_text() for cell in page.locator("#change-history tbody tr td:first-of-type").all()] == [
        "Revoked", "Rotated", "Created",
    ]  # fmt: skip
    shot(page, "life-15-history")
    page.goto(f"{base}/admin/keys/auditevent/")
    assert page.locator("#result_list a", has_text="browser key").count() == 3
    shot(page, "life-16-audit-events")
    page.goto(f"{base}/admin/deployments/execution/")
    page.locator("#result_list a", has_text="browser key").first.wait_for()
    shot(page, "life-17-executions")
    page.locator("#result_list a", has_text="alpha").first.click()
    assert page.locator("#id_name").input_value() == "Alpha"
    shot(page, "life-18-deployment")

    # The other lists fit too, and `/` (where "View site" leads) says where to go.
    for number, path in enumerate(
        ["deployments/deployment", "deployments/deploymentgroup", "organizations/organization", "organizations/membership"], 19
    ):
        page.goto(f"{base}/admin/{path}/")
        assert page.locator("#changelist").count() == 1
        shot(page, f"life-{number}-{path.split('/')[1]}-list")
    page.click("text=View site")
    page.wait_for_url(f"{base}/")
    assert page.locator("#home-admin").is_visible() and page.locator("#home-api-docs").is_visible()
    shot(page, "life-23-landing-page")

    actions = list(AuditEvent.objects.filter(key_id=key.pk).order_by("created_at").values_list("action", "actor_username"))
    assert actions == [("created", "lab-admin"), ("rotated", "lab-admin"), ("revoked", "lab-admin")]
    assert_not_in_cookies(page, new_key)
