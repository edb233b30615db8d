"""After keys of both kinds are created, rotated and used (API and admin) and upstream credentials
saved, a pg_dump of the whole database and everything logged hold no key, no key body, no credential.

Complements keys/tests/test_secrets_not_stored.py (every ORM row) with what the
ORM does not show: indexes, sequences, the raw dump, and the logs of all of it.
"""

from __future__ import annotations

import logging
import os
import secrets
import subprocess

import pytest
from cryptography.fernet import Fernet
from django.db import connection
from django.test import Client

from backend.tests.log_capture import written
from deployments.models import Deployment
from keys import crypto
from keys.models import DeploymentKey, GlobalApiDeploymentKey
from keys.tests.helpers import (
    DEPLOYMENT,
    GLOBAL,
    ORG_A,
    admin_url,
    bad_checksum,
    basic,
    bearer,
    deployment_key_form,
    execute,
    full_keys_in,
    global_key_form,
    logged_in,
    needs,
    pg_binary,
)

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.slow]


def pg_dump_of_the_test_database() -> str:
    pg_dump = pg_binary("pg_dump")
    needs("SECRETS IN A PG_DUMP", connection.vendor == "postgresql" and pg_dump is not None,
          "needs PostgreSQL and its pg_dump (run through scripts/with-services.sh)")
    db = connection.settings_dict
    env = {**os.environ, "PGPASSWORD": db.get("PASSWORD") or ""}
    result = subprocess.run(
        [str(pg_dump), "-h", db["HOST"] or "127.0.0.1", "-p", str(db["PORT"] or 5432), "-U", db["USER"],
         "--no-owner", db["NAME"]],
        capture_output=True, text=True, env=env, timeout=120,
    )
    assert result.returncode == 0, result.stderr
    assert "keys_deploymentkey" in result.stdout  # the dump is of the right database
    return result.stdout


def api_issue(admin, url: str, body: dict) -> str:
    response = Client().post(url, body, content_type="application/json", HTTP_AUTHORIZATION=basic(admin.username))
    assert response.status_code in (200, 201), response.content
    return response.json()["key"]


def test_no_key_and_no_credential_in_a_database_dump_or_the_logs(
    admin_a, org_a, deployment_a1, deployment_a2, settings, caplog, capsys, debug_log
):
    caplog.set_level(logging.DEBUG)
    connection.force_debug_cursor = True  # SQL of this thread is logged too (django.db.backends, DEBUG)
    settings.KEYSCOPE_ENCRYPTION_KEYS = [Fernet.generate_key().decode()]
    full_keys: list[str] = []

    # Management API: create and rotate one key of each kind.
    for url, body in [(f"{ORG_A}/deployments/a-one/keys/", {"name": "api dk"}),
                      (f"{ORG_A}/global-keys/", {"name": "api gk", "deployments": ["a-one", "a-two"]})]:
        created = api_issue(admin_a, url, body)
        key_id = Client().get(f"{url}?search=api", HTTP_AUTHORIZATION=basic(admin_a.username)).json()["results"][0]["id"]
        rotated = api_issue(admin_a, f"{url}{key_id}/rotate/", {"grace_period_seconds": 600})
        full_keys += [created, rotated]

    # Admin: create and rotate one key of each kind.
    admin = logged_in(admin_a)
    dk_form = deployment_key_form(deployment_a1, "admin dk")
    for model, form in [(DEPLOYMENT, dk_form), (GLOBAL, global_key_form(org_a, "admin gk", [deployment_a1]))]:
        [created] = full_keys_in(admin.post(admin_url(model, "add"), form))
        pk = model_of(model).objects.get(digest=crypto.digest(created)).pk
        [rotated] = full_keys_in(admin.post(admin_url(model, "rotate", pk), {"post": "yes", "grace_period_seconds": "3600"}))
        full_keys += [created, rotated]

    # Use them all, working (new) and in grace (old), and some garbage made of them.
    client = Client()
    for full_key in full_keys:
        assert execute(client, "org-a", "a-one", full_key, body={"note": "hi"}).status_code == 200
        client.get("/api/v1/key/", **bearer(full_key))
        execute(client, "org-a", "a-one", bad_checksum(full_key))

    # Upstream credentials, through the model's encrypting setter.
    credential = secrets.token_urlsafe(24)
    deployment = Deployment.objects.get(pk=deployment_a2.pk)
    deployment.set_upstream_headers({"Authorization": f"Bearer {credential}", "X-Token": credential})
    deployment.save()

    assert len(set(full_keys)) == 8
    forbidden = {f"key {i}": key for i, key in enumerate(full_keys)}
    forbidden |= {f"body of key {i}": key[crypto.PREFIX_LENGTH:crypto.PREFIX_LENGTH + crypto.BODY_LENGTH]
                  for i, key in enumerate(full_keys)}
    forbidden["upstream credential"] = credential

    captured = capsys.readouterr()
    logged = caplog.text + "\n".join(repr(record.args) for record in caplog.records)
    assert "keys_" in logged or caplog.records, "nothing was logged: the log check would prove nothing"
    recording, stdout = debug_log
    # The configured handlers saw the template engine's DEBUG tracebacks, which hold the page's context.
    assert any("VariableDoesNotExist" in (record.exc_text or "") for record in recording.records)
    places = [("logs", logged), ("the configured log handlers at DEBUG", written(recording, stdout)),
              ("stdout", captured.out), ("stderr", captured.err)]
    for where, text in places:
        leaks = [name for name, secret in forbidden.items() if secret in text]
        assert not leaks, f"{where} holds {leaks}"
    leaks = [name for name, secret in forbidden.items() if secret in pg_dump_of_the_test_database()]
    assert not leaks, f"pg_dump holds {leaks}"


def model_of(admin_model: str) -> type:
    return DeploymentKey if admin_model == DEPLOYMENT else GlobalApiDeploymentKey
