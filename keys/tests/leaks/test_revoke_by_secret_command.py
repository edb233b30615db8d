"""`manage.py keys revoke --secret-stdin`: the operator who finds a key in a log revokes it by its secret.

The secret comes from standard input, never from an argument (which would land in the shell's history).
"""

import json
import subprocess
import sys
from io import StringIO

import pytest
from django.core import mail
from django.core.management import call_command
from django.core.management.base import CommandError

from backend.tests.subprocesses import BASE_DIR, clean_env
from keys import crypto
from keys.services import key_revoke
from keys.tests.factories import import_deployment_key

from .helpers import FULL_KEY, assert_no_full_key_in_any_email, last_event, works

pytestmark = pytest.mark.django_db


def revoke_from_stdin(text: str, *args: str) -> tuple[str, str]:
    out, err = StringIO(), StringIO()
    call_command("keys", "revoke", "--secret-stdin", *args, stdin=StringIO(text), stdout=out, stderr=err)
    return out.getvalue(), err.getvalue()


@pytest.mark.parametrize("persona", ["deployment_key_a1", "global_all_key_a"])
def test_the_key_whose_secret_is_read_is_revoked_as_leaked(request, admin_a, persona):
    key, full_key = request.getfixturevalue(persona)

    out, err = revoke_from_stdin(full_key + "\n")

    assert f"Revoked {key.name!r} ({key.key_masked})" in out
    assert not FULL_KEY.search(out + err)
    key.refresh_from_db()
    assert key.revocation_reason == "leaked" and not works(full_key)
    event = last_event(key)
    assert (event.action, event.actor_id, event.changes["reason"]) == ("revoked", None, [None, "reported as leaked"])
    assert "manage.py keys revoke --secret-stdin" in mail.outbox[0].body
    assert_no_full_key_in_any_email()


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("", "No key on standard input."),
        ("   \n", "No key on standard input."),
        ("some-token-123\n", "is not a key"),
        ("ksd_" + "0" * 38, "is not a key"),  # the checksum is wrong
    ],
    ids=["empty", "blank", "junk", "bad-checksum"],
)
def test_what_is_not_a_key_is_an_error_that_does_not_echo_it(deployment_key_a1, text, message):
    with pytest.raises(CommandError, match=message) as refused:
        revoke_from_stdin(text)

    assert text.strip() == "" or text.strip() not in str(refused.value)
    assert works(deployment_key_a1[1])


def test_an_unknown_key_is_an_error(deployment_key_a1):
    with pytest.raises(CommandError, match="No key has, or had, this secret"):
        revoke_from_stdin(crypto.generate_key("deployment"))
    assert not mail.outbox


def test_an_already_revoked_key_is_said_so_and_nothing_changes(admin_a, deployment_key_a1):
    key, full_key = deployment_key_a1
    key_revoke(key=key, actor=None)

    out, _ = revoke_from_stdin(full_key)

    assert "already revoked" in out and key.key_masked in out
    assert not mail.outbox


def test_a_secret_that_a_rotation_replaced_ends_its_grace_only(admin_a, in_grace_key_a):
    key, old_key, new_key = in_grace_key_a

    out, _ = revoke_from_stdin(old_key)

    assert "a rotation replaced" in out and "stopped working now" in out
    assert not works(old_key) and works(new_key)


def test_the_secret_cannot_be_picked_with_other_options(deployment_key_a1):
    key, full_key = deployment_key_a1
    with pytest.raises(CommandError, match="by its secret alone"):
        revoke_from_stdin(full_key, "--id", str(key.pk))
    assert works(full_key)


def test_the_secret_is_not_taken_as_an_argument(deployment_key_a1):
    _, full_key = deployment_key_a1
    with pytest.raises(CommandError):
        call_command("keys", "revoke", "--secret-stdin", full_key, stdin=StringIO(""))
    assert works(full_key)


@pytest.mark.slow
def test_the_command_exits_non_zero_with_a_clear_message(tmp_path):
    result = subprocess.run(
        [sys.executable, "manage.py", "keys", "revoke", "--secret-stdin"],
        input="ksd_not-a-real-key\n",
        cwd=BASE_DIR,
        env=clean_env(DEBUG="true", DATABASE_URL=f"sqlite:///{tmp_path / 'db.sqlite3'}"),
        capture_output=True,
        text=True,
        timeout=120,
    )

    assert result.returncode == 1
    assert "is not a key" in result.stderr
    assert "ksd_not-a-real-key" not in result.stderr + result.stdout


def test_with_json_stdout_holds_only_the_keys_json(admin_a, deployment_key_a1):
    key, full_key = deployment_key_a1

    out, err = revoke_from_stdin(full_key, "--json")

    data = json.loads(out)
    assert (data["id"], data["status"], data["key_masked"]) == (str(key.pk), "revoked", key.key_masked)
    assert "Revoked" in err and "key" not in data


def test_an_imported_uuid_key_is_revoked_by_its_uuid(admin_a, deployment_a1):
    key, uuid_key = import_deployment_key(deployment_a1)

    out, _ = revoke_from_stdin(uuid_key.upper())

    assert f"Revoked {key.name!r} ({key.key_masked})" in out and uuid_key not in out.lower()
    key.refresh_from_db()
    assert key.revocation_reason == "leaked"
