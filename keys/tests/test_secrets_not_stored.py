"""No full key, and no key body, in any stored row, any log line or any SQL sent to the database."""

import logging
import uuid

import pytest
from django.apps import apps
from django.db import connection
from django.test.utils import CaptureQueriesContext

from backend.logging import redact
from keys.services import key_deactivate, key_revoke, key_rotate, key_update
from keys.tests.factories import issue_deployment_key, issue_global_key
from keys.tests.helpers import bearer, execute, execution_url


def secrets_of(full_keys: list[str]) -> list[str]:
    """What must never be stored: each full key, and its 32-character random body."""
    return [part for key in full_keys for part in (key, key[4:36])]


def every_stored_text() -> str:
    """Every column of every row of every table, as text."""
    chunks = []
    for model in apps.get_models(include_auto_created=True):
        for row in model._base_manager.values_list():
            chunks.append(repr(row))
    return "\n".join(chunks)


@pytest.fixture
def lifecycle(client, org_a, org_b, deployment_a1, deployment_a2, deployment_b1, admin_a):
    """Keys of each kind taken through the whole lifecycle, and used, successfully and not."""
    keys: list[str] = []
    dep_row, dep_key = issue_deployment_key(deployment_a1, name="dep")
    glob_row, glob_key = issue_global_key(org_a, name="glob", deployments=[deployment_a1, deployment_a2])
    all_row, all_key = issue_global_key(org_b, name="all", allow_all_deployments=True)
    keys += [dep_key, glob_key, all_key]

    for full_key in keys:
        execute(client, "org-a", "a-one", full_key, body={"note": "hello"})
        execute(client, "org-a", "a-two", full_key)
        execute(client, "org-a", "missing", full_key)
        execute(client, "org-a", "a-one", full_key[:-1])
        client.get("/api/v1/key/", **bearer(full_key))
    response = execute(client, "org-a", "a-one", dep_key)
    client.get(execution_url("org-a", "a-one", response.json()["execution_id"]), **bearer(glob_key))

    dep_row, rotated = key_rotate(key=dep_row, actor=admin_a, grace_period_seconds=600)
    keys.append(rotated)
    execute(client, "org-a", "a-one", dep_key)
    execute(client, "org-a", "a-one", rotated)
    key_update(key=glob_row, actor=admin_a, name="renamed", description="desc")
    key_deactivate(key=glob_row, actor=admin_a)
    execute(client, "org-a", "a-one", glob_key)
    key_revoke(key=all_row, actor=admin_a)
    execute(client, "org-b", "b-one", all_key)
    return keys


def test_no_stored_row_holds_a_key_or_its_body(lifecycle):
    stored = every_stored_text()
    assert stored  # the scan did read the tables
    for secret in secrets_of(lifecycle):
        assert secret not in stored


def test_no_log_line_holds_a_key_or_its_body(client, org_a, deployment_a1, deployment_a2, caplog, capsys):
    django_logger = logging.getLogger("django")  # it does not propagate to the root logger caplog watches
    django_logger.addHandler(caplog.handler)
    caplog.set_level(logging.DEBUG)
    try:
        _, dep_key = issue_deployment_key(deployment_a1, name="dep")
        _, glob_key = issue_global_key(org_a, name="glob", deployments=[deployment_a2])
        keys = [dep_key, glob_key]
        for full_key in keys:
            execute(client, "org-a", "a-one", full_key)
            execute(client, "org-a", "a-two", full_key)
            execute(client, "org-a", "nowhere", full_key)
            execute(client, "org-a", "a-one", full_key[:-1])
            execute(client, "org-a", "a-one", full_key[:-1] + "0" * 20_000)
            client.get("/api/v1/key/", HTTP_X_API_KEY=full_key)
            client.generic("POST", "/api/v1/deployments/org-a/a-one/execute/", b"[", content_type="application/json", **bearer(full_key))
            client.generic("POST", "/api/v1/deployments/org-a/a-one/execute/", b"x", content_type="text/plain", **bearer(full_key))
    finally:
        django_logger.removeHandler(caplog.handler)

    captured = capsys.readouterr()
    logged = caplog.text + "\n".join(str(record.args) for record in caplog.records) + captured.out + captured.err
    assert "Not Found" in caplog.text or caplog.records  # something was logged, and it was scanned
    for secret in secrets_of(keys):
        assert secret not in logged


def test_the_database_never_receives_a_key_only_its_digest(client, deployment_key_a1):
    _, full_key = deployment_key_a1
    with CaptureQueriesContext(connection) as queries:
        execute(client, "org-a", "a-one", full_key)
        execute(client, "org-a", "a-one", full_key[:-1])
        client.get("/api/v1/key/", **bearer(full_key))
    sql = "\n".join(query["sql"] for query in queries)
    assert sql
    for secret in secrets_of([full_key]):
        assert secret not in sql


def test_no_cache_entry_is_named_after_a_key(client, deployment_key_a1):
    from django.core.cache import cache

    _, full_key = deployment_key_a1
    execute(client, "org-a", "a-one", full_key)
    execute(client, "org-a", "a-one", full_key[:-1])
    client_ = getattr(cache, "_cache", None)
    get_client = getattr(client_, "get_client", None)
    if get_client is None:
        pytest.skip("only Redis can list its keys")
    names = b"\n".join(get_client().keys("*")).decode(errors="replace")
    for secret in secrets_of([full_key]):
        assert secret not in names


def test_error_responses_never_echo_the_key(client, deployment_key_a1, deployment_a2):
    row, full_key = deployment_key_a1
    responses = [
        execute(client, "org-a", "a-two", full_key),
        execute(client, "org-a", "nowhere", full_key),
        execute(client, "org-a", "a-one", full_key[:-1]),
    ]
    key_revoke(key=row, actor=None)
    responses.append(execute(client, "org-a", "a-one", full_key))
    for response in responses:
        text = response.content.decode() + str(dict(response.headers))
        for secret in secrets_of([full_key]):
            assert secret not in text


@pytest.mark.parametrize("where", ["path", "query"])
def test_a_key_put_in_a_url_is_never_logged(client, global_all_key_a, stdout_log, where):
    _, full_key = global_all_key_a
    if where == "path":
        response = client.get(f"/api/v1/key/{full_key}/")
        assert response.status_code == 404
    else:
        response = client.get(f"/api/v1/key/?key={full_key}")
        assert response.status_code == 401  # a key in the URL is ignored
    client.post(f"/api/v1/deployments/org-a/{full_key}/execute/", content_type="application/json")
    output = stdout_log.getvalue()
    assert full_key not in output
    assert full_key[4:36] not in output


# An imported key is a UUID: no log line holds one either.


@pytest.mark.parametrize("spelling", [str.lower, str.upper])
def test_a_uuid_put_in_a_url_is_never_logged(client, db, stdout_log, spelling):
    key = spelling(str(uuid.uuid4()))
    assert client.get(f"/api/v1/key/{key}/").status_code == 404
    client.post(f"/api/v1/deployments/org-a/{key}/execute/", content_type="application/json")
    output = stdout_log.getvalue()
    assert "Not Found" in output  # Django did log the paths
    assert key not in output and key.lower() not in output.lower()
    assert "[redacted uuid]" in output


def test_keyscopes_own_lines_keep_the_key_ids_they_name(stdout_log):
    key_id = str(uuid.uuid4())
    logging.getLogger("keyscope.test").warning("key %s refused", key_id)
    logging.getLogger("django.request").warning("Not Found: /x/%s/", key_id)
    lines = stdout_log.getvalue().splitlines()
    assert key_id in lines[0]
    assert key_id not in lines[1] and "[redacted uuid]" in lines[1]


def test_redaction_leaves_other_hex_and_ids_alone():
    bare = uuid.uuid4().hex
    assert redact(f"execution {bare} took 3 ms") == f"execution {bare} took 3 ms"
    assert redact(f"key={uuid.uuid4()}&x=1") == "key=[redacted uuid]&x=1"
