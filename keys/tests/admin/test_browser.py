"""The whole key lifecycle in a real browser: an org admin creates, uses, rotates and revokes a global key.

Drives Debian's Chromium (`apt-get install chromium`) through Playwright's sync
API against pytest-django's live server; Playwright never downloads a browser.
Without Chromium the test is skipped, loudly; under CI=true it fails instead.
Screenshots land in var/test-artifacts/.
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
        context = browser.new_context(viewport={"width": 1440, "height": 900})
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


def test_an_org_admin_runs_a_global_keys_lifecycle_in_the_browser(live_server, page):
    lab = OrganizationFactory(slug="lab", name="Lab")
    other = OrganizationFactory(slug="other", name="Other")
    for slug in ("alpha", "beta", "gamma"):
        DeploymentFactory(organization=lab, slug=slug, name=slug.title())
    DeploymentFactory(organization=other, slug="secret", name="Secret")
    admin = UserFactory(username="lab-admin", is_staff=True)
    MembershipFactory(organization=lab, user=admin, role=Membership.Role.ADMIN)
    base = live_server.url
    ARTIFACTS.mkdir(parents=True, exist_ok=True)

    # Log in.
    page.goto(f"{base}/admin/login/?next=/admin/")
    page.fill("#id_username", "lab-admin")
    page.fill("#id_password", TEST_PASSWORD)
    page.click("input[type=submit]")
    page.wait_for_url(f"{base}/admin/")

    # Create a global key for alpha and beta with the deployment picker.
    page.goto(f"{base}/admin/keys/globalapideploymentkey/add/")
    assert page.locator("#id_organization option").all_inner_texts() == ["---------", "Lab"]
    available = page.locator("#id_deployments_from option").all_inner_texts()
    assert sorted(available) == ["lab/alpha", "lab/beta", "lab/gamma"]  # nothing of "other"
    page.select_option("#id_organization", label="Lab")
    page.fill("#id_name", "browser key")
    page.select_option("#id_deployments_from", label=["lab/alpha", "lab/beta"])
    page.click("#id_deployments_add")
    assert sorted(page.locator("#id_deployments_to option").all_inner_texts()) == ["lab/alpha", "lab/beta"]
    page.screenshot(path=str(ARTIFACTS / "admin-add-global-key.png"), full_page=True)
    page.click("input[name=_save]")

    # The one-time page answers the POST.
    full_key = read_one_time_key(page)
    assert page.locator("button.copy-key").is_visible()
    page.screenshot(path=str(ARTIFACTS / "admin-one-time-key.png"), full_page=True)
    page.click("button.copy-key")
    page.wait_for_function("document.querySelector('.copy-status').textContent !== ''")
    assert_not_in_cookies(page, full_key)

    # The key opens alpha, and not gamma.
    assert execute(base, "alpha", full_key).status_code == 200
    outside = execute(base, "gamma", full_key)
    assert outside.status_code == 403 and outside.json()["code"] == "deployment_not_in_scope"

    # The list shows it masked, with its scope; the full key is gone.
    page.click("#done")
    page.wait_for_url(f"{base}/admin/keys/globalapideploymentkey/")
    key = GlobalApiDeploymentKey.objects.get(name="browser key")
    row = page.locator("#result_list tbody tr", has_text="browser key")
    assert key.key_masked in row.inner_text() and "Alpha, Beta" in row.inner_text()
    assert full_key not in page.content()
    page.screenshot(path=str(ARTIFACTS / "admin-key-list.png"), full_page=True)

    # Rotate it from its page: the new key is shown once; the old one stops.
    row.locator("th a").click()
    page.screenshot(path=str(ARTIFACTS / "admin-key-page.png"), full_page=True)
    page.click("#rotate-key")
    page.fill("#id_grace_period_seconds", "0")
    page.click("#confirm-rotate")
    new_key = read_one_time_key(page)
    assert new_key != full_key
    page.screenshot(path=str(ARTIFACTS / "admin-rotated-key.png"), full_page=True)
    assert execute(base, "beta", new_key).status_code == 200
    assert execute(base, "beta", full_key).json()["code"] == "key_revoked"

    # Revoke it with the list's action and its confirmation page.
    page.goto(f"{base}/admin/keys/globalapideploymentkey/")
    page.locator("#result_list tbody tr", has_text="browser key").locator("input.action-select").check()
    page.select_option("select[name=action]", "revoke_keys")
    page.click("button[name=index]")
    # The confirmation answers a POST to the same URL: wait for it, not for a URL change.
    page.wait_for_selector("#confirm-revoke")
    assert "Revocation is final" in page.content()
    page.click("#confirm-revoke")
    page.wait_for_url(f"{base}/admin/keys/globalapideploymentkey/")
    assert "Revoked 1 key." in page.locator(".messagelist").inner_text()
    assert execute(base, "alpha", new_key).json()["code"] == "key_revoked"

    actions = list(AuditEvent.objects.filter(key_id=key.pk).order_by("created_at").values_list("action", "actor_username"))
    assert actions == [("created", "lab-admin"), ("rotated", "lab-admin"), ("revoked", "lab-admin")]
    assert_not_in_cookies(page, new_key)
