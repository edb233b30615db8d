"""`manage.py seed_demo` creates what is missing of the demo, and prints only what it creates."""

import io
import os
import re
import subprocess
import sys

import pytest
from django.contrib.auth import authenticate, get_user_model
from django.core.management import call_command

from deployments.models import Deployment
from organizations.models import Membership, Organization

pytestmark = pytest.mark.django_db

LOGIN_LINE = re.compile(r"^Admin login: (?P<username>\S+) / (?P<password>\S+)$", re.MULTILINE)


def seed_demo(*args: str) -> str:
    out = io.StringIO()
    call_command("seed_demo", *args, stdout=out)
    return out.getvalue()


def printed_login(output: str) -> tuple[str, str]:
    match = LOGIN_LINE.search(output)
    assert match, output
    return match["username"], match["password"]


def demo_state() -> dict:
    user_model = get_user_model()
    return {
        "organizations": list(Organization.objects.values_list("slug", flat=True)),
        "users": list(user_model.objects.values_list("username", "password")),
        "memberships": list(Membership.objects.values_list("organization__slug", "user__username", "role")),
        "deployments": sorted(Deployment.objects.values_list("organization__slug", "slug")),
    }


def test_first_run_creates_the_demo_and_prints_a_login_that_works(client):
    output = seed_demo()

    username, password = printed_login(output)
    demo = Organization.objects.get(slug="demo")
    assert demo.deployments.count() == 3
    user = authenticate(username=username, password=password)
    assert user is not None and user.is_staff
    assert Membership.objects.get(organization=demo, user=user).role == "admin"
    assert client.login(username=username, password=password)
    assert client.get("/admin/").status_code == 200


def test_second_run_creates_and_prints_nothing_new():
    first_output = seed_demo()
    username, password = printed_login(first_output)
    before = demo_state()

    second_output = seed_demo()

    assert second_output == ""
    assert demo_state() == before
    assert authenticate(username=username, password=password) is not None


def test_a_run_recreates_only_what_is_missing():
    seed_demo()
    Deployment.objects.get(organization__slug="demo", slug="classify").delete()

    output = seed_demo()

    assert "demo/classify" in output
    assert LOGIN_LINE.search(output) is None
    assert Deployment.objects.filter(organization__slug="demo").count() == 3


def test_reset_prints_a_new_password_that_works_and_the_old_one_stops():
    username, old_password = printed_login(seed_demo())

    username_after_reset, new_password = printed_login(seed_demo("--reset"))

    assert username_after_reset == username
    assert new_password != old_password
    assert authenticate(username=username, password=new_password) is not None
    assert authenticate(username=username, password=old_password) is None
    assert get_user_model().objects.filter(username=username).count() == 1


def test_reset_reactivates_a_disabled_demo_login():
    username, _ = printed_login(seed_demo())
    get_user_model().objects.filter(username=username).update(is_active=False, is_staff=False)

    _, password = printed_login(seed_demo("--reset"))

    user = authenticate(username=username, password=password)
    assert user is not None and user.is_staff


def test_demo_password_comes_from_the_environment_when_set(settings):
    settings.KEYSCOPE_DEMO_PASSWORD = "a-demo-password-from-env"

    username, password = printed_login(seed_demo())

    assert password == "a-demo-password-from-env"
    assert authenticate(username=username, password=password) is not None


def test_passwords_are_random_per_database():
    _, first = printed_login(seed_demo())
    get_user_model().objects.all().delete()

    _, second = printed_login(seed_demo())

    assert first != second


def test_the_printed_curl_lines_use_the_port_of_make_run(settings):
    env = {**os.environ, "PORT": "9123", "DEBUG": "true", "KEYSCOPE_ENV_FILE": ""}
    read = subprocess.run(
        [sys.executable, "-c", "import django; django.setup(); from django.conf import settings; print(settings.KEYSCOPE_DEMO_PORT)"],
        env={**env, "DJANGO_SETTINGS_MODULE": "backend.settings"}, capture_output=True, text=True, check=True, cwd=settings.BASE_DIR,
    )  # fmt: skip
    assert read.stdout.strip() == "9123"  # PORT, as `make run` reads it

    settings.KEYSCOPE_DEMO_PORT = 9123
    curls = [line for line in seed_demo().splitlines() if "curl" in line]
    assert curls and all("http://127.0.0.1:9123/api/v1/" in line for line in curls)
