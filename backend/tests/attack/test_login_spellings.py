"""Password guesses spelled every way DRF's Basic parser and Django's login form accept.

Each wrong guess must be a 401 (or the login form again), never a 500, and must
count against the throttle of the username that Django authenticates, as
Django's user model normalizes it: whatever the header or the form spelled,
once the limit is reached the right password, spelled plainly, is refused.
"""

from __future__ import annotations

import base64

import pytest

from backend.tests.clock import FrozenClock
from keys.tests.helpers import ORG_A
from lib import counters
from organizations.tests.factories import TEST_PASSWORD

pytestmark = pytest.mark.django_db

LIMIT = 3
MANAGEMENT_API = f"{ORG_A}/deployments/"


def b64(raw: bytes) -> str:
    return base64.b64encode(raw).decode("ascii")


def credentials(username: str, password: str, encoding: str = "utf-8") -> str:
    return b64(f"{username}:{password}".encode(encoding))


# Ways to spell `Authorization: Basic` for a username and password that DRF's
# BasicAuthentication accepts: it splits on any whitespace, drops characters outside
# the base64 alphabet, and decodes as latin-1 what is not UTF-8.
SPELLINGS = {
    "plain": lambda u, p: "Basic " + credentials(u, p),
    "tab-after-scheme": lambda u, p: "Basic\t" + credentials(u, p),
    "spaces-after-scheme": lambda u, p: "Basic    " + credentials(u, p),
    "scheme-in-capitals": lambda u, p: "BASIC " + credentials(u, p),
    "junk-in-base64": lambda u, p: "Basic " + "*".join(credentials(u, p)),
    "latin-1-password": lambda u, p: "Basic " + credentials(u, p + "é", "latin-1"),
    "latin-1-username": lambda u, p: "Basic " + credentials("ä" + u, p, "latin-1"),
    "nul-in-username": lambda u, p: "Basic " + credentials(u + "\x00", p),
    "nul-in-password": lambda u, p: "Basic " + credentials(u, p + "\x00"),
    "zero-width-space": lambda u, p: "Basic " + credentials(u + "\u200b", p),
    "leading-space": lambda u, p: "Basic " + credentials(" " + u, p),
    "trailing-space": lambda u, p: "Basic " + credentials(u + " ", p),
    "fullwidth": lambda u, p: "Basic " + credentials(u.translate(FULLWIDTH), p),
    "capitals": lambda u, p: "Basic " + credentials(u.upper(), p),
}
FULLWIDTH: dict[int, int] = {ord(c): ord(c) + 0xFEE0 for c in "abcdefghijklmnopqrstuvwxyz-"}
# The spellings that name another user than the one Django authenticates from them.
NOT_THE_SAME_USER = {"latin-1-username"}


def basic_get(client, authorization: str, address: str):
    return client.get(MANAGEMENT_API, HTTP_AUTHORIZATION=authorization, REMOTE_ADDR=address)


def admin_login(client, username: str, password: str, address: str = "198.51.100.1"):
    return client.post("/admin/login/", {"username": username, "password": password}, REMOTE_ADDR=address)


@pytest.fixture(autouse=True)
def _one_minute_window(monkeypatch):
    # A test's guesses must all land in one window, or a slow machine lets a lock lapse mid-test.
    monkeypatch.setattr(counters, "time", FrozenClock())


@pytest.fixture
def low_limits(settings):
    settings.KEYSCOPE_LOGIN_FAILURES_PER_MINUTE = LIMIT
    settings.KEYSCOPE_LOGIN_FAILURES_PER_ADDRESS_PER_MINUTE = 1000


SAME_USER = sorted(set(SPELLINGS) - NOT_THE_SAME_USER)


@pytest.mark.parametrize("spelling", SAME_USER)
def test_each_basic_spelling_counts_against_the_user_it_names(client, admin_a, low_limits, spelling):
    # Every guess from another address: only the per-username limit can lock.
    wrong = SPELLINGS[spelling]("admin-a", "wrong")
    answers = [basic_get(client, wrong, f"203.0.113.{n}").status_code for n in range(LIMIT)]

    right = basic_get(client, SPELLINGS["plain"]("admin-a", TEST_PASSWORD), "198.51.100.7")

    assert answers == [401] * LIMIT
    assert right.status_code == 429, right.content
    assert right.json()["code"] == "rate_limited"
    assert int(right["Retry-After"]) > 0


@pytest.mark.parametrize("spelling", SAME_USER)
def test_a_locked_user_is_refused_in_each_basic_spelling(client, admin_a, low_limits, spelling):
    for n in range(LIMIT):
        assert basic_get(client, SPELLINGS["plain"]("admin-a", "wrong"), f"203.0.113.{n}").status_code == 401

    # The right password where the spelling can carry it; either way, no password is checked.
    attempt = basic_get(client, SPELLINGS[spelling]("admin-a", TEST_PASSWORD), "198.51.100.7")

    assert attempt.status_code == 429, attempt.content
    assert attempt.json()["code"] == "rate_limited"


@pytest.mark.parametrize("spelling", sorted(SPELLINGS))
def test_each_basic_spelling_counts_against_the_address(client, admin_a, member_a, settings, spelling):
    settings.KEYSCOPE_LOGIN_FAILURES_PER_MINUTE = 1000
    settings.KEYSCOPE_LOGIN_FAILURES_PER_ADDRESS_PER_MINUTE = LIMIT
    wrong = SPELLINGS[spelling]("admin-a", "wrong")
    answers = [basic_get(client, wrong, "203.0.113.9").status_code for _ in range(LIMIT)]

    another_user = basic_get(client, SPELLINGS["plain"]("member-a", TEST_PASSWORD), "203.0.113.9")

    assert answers == [401] * LIMIT
    assert another_user.status_code == 429, another_user.content


LOOK_ALIKES = ["admin-a ", " admin-a", "ａdmin-a", "ＡＤＭＩＮ－ａ", "ADMIN-A"]


@pytest.mark.parametrize("look_alike", LOOK_ALIKES)
def test_a_locked_user_stays_locked_under_a_look_alike_name_on_the_login_form(client, admin_a, low_limits, look_alike):
    for n in range(LIMIT):
        assert admin_login(client, "admin-a", "wrong", address=f"203.0.113.{n}").status_code == 200

    dodge = admin_login(client, look_alike, TEST_PASSWORD)

    assert dodge.status_code == 429
    assert "_auth_user_id" not in client.session


@pytest.mark.parametrize("look_alike", LOOK_ALIKES)
def test_guesses_under_a_look_alike_name_lock_the_user_on_the_login_form(client, admin_a, low_limits, look_alike):
    for n in range(LIMIT):
        assert admin_login(client, look_alike, "wrong", address=f"203.0.113.{n}").status_code == 200

    right = admin_login(client, "admin-a", TEST_PASSWORD)

    assert right.status_code == 429
    assert "_auth_user_id" not in client.session


def test_a_nul_on_the_login_form_is_the_form_again(client, admin_a):
    response = admin_login(client, "admin-a\x00", TEST_PASSWORD)

    assert response.status_code == 200
    assert "_auth_user_id" not in client.session
