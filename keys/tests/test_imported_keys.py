"""Clients present imported UUID keys as before and get the answers a keyscope key of their kind gets."""

from __future__ import annotations

import json
import secrets
import uuid
from datetime import timedelta
from io import StringIO

import pytest
from django.core.management import call_command
from django.db import connection
from django.test import override_settings
from django.utils import timezone

from deployments.tests.factories import DeploymentFactory
from keys import crypto
from keys.lookup import UUID_LOOKUP
from keys.models import DeploymentKey, GlobalApiDeploymentKey
from keys.services import key_revoke, key_rotate, key_update
from keys.tests.factories import import_deployment_key, import_global_key
from keys.tests.helpers import assert_error, bearer, execute, x_api_key
from keys.tests.test_authentication_status_table import later
from keys.tests.test_query_counts import (
    COLD_EXECUTE_QUERIES,
    WARM_EXECUTE_QUERIES,
    bulk_keys,
    cold_execute,
)
from keys.verification_cache import local_cache

SPELLINGS = [pytest.param(str.lower, id="lowercase"), pytest.param(str.upper, id="uppercase")]


@pytest.fixture
def imported_dep(deployment_a1, deployment_a2):
    """An imported deployment key for a-one."""
    return import_deployment_key(deployment_a1, name="old a-one key")


@pytest.fixture
def imported_selected(org_a, deployment_a1, deployment_a2, deployment_a3):
    """An imported global key for a-one and a-two."""
    return import_global_key(org_a, name="old selected", deployments=[deployment_a1, deployment_a2])


@pytest.fixture
def imported_all(org_a, deployment_a1, deployment_a2):
    return import_global_key(org_a, name="old all", allow_all_deployments=True)


@pytest.mark.parametrize("spelling", SPELLINGS)
def test_an_imported_deployment_key_opens_its_deployment_only(client, imported_dep, spelling):
    _, key = imported_dep
    key = spelling(key)
    assert execute(client, "org-a", "a-one", key, body={"n": 1}).json()["result"] == {"n": 1}
    assert client.post("/api/v1/deployments/org-a/a-one/execute/", {}, content_type="application/json",
                       **x_api_key(key)).status_code == 200
    assert_error(execute(client, "org-a", "a-two", key), 403, "deployment_not_in_scope")
    assert_error(execute(client, "org-a", "nowhere", key), 404, "not_found")


@pytest.mark.parametrize("spelling", SPELLINGS)
def test_an_imported_global_key_opens_its_list(client, imported_selected, spelling):
    _, key = imported_selected
    key = spelling(key)
    assert execute(client, "org-a", "a-one", key).status_code == 200
    assert execute(client, "org-a", "a-two", key).status_code == 200
    assert_error(execute(client, "org-a", "a-three", key), 403, "deployment_not_in_scope")


def test_an_imported_allow_all_key_opens_every_deployment_of_its_organization_only(client, imported_all, deployment_b1):
    _, key = imported_all
    assert execute(client, "org-a", "a-one", key).status_code == 200
    assert execute(client, "org-a", "a-two", key).status_code == 200
    assert_error(execute(client, "org-b", "b-one", key), 404, "not_found")


@pytest.mark.parametrize("fixture", ["imported_dep", "imported_selected"])
def test_an_imported_key_answers_every_status_rule_as_a_keyscope_key(client, request, fixture):
    row, key = request.getfixturevalue(fixture)
    model = type(row)
    key_update(key=row, actor=None, is_active=False)
    assert_error(execute(client, "org-a", "a-one", key.upper()), 401, "key_inactive")
    # A past expiry cannot be set through the service: straight to the row, then forget what was cached.
    model.objects.filter(pk=row.pk).update(is_active=True, expires_at=timezone.now() - timedelta(seconds=1))
    local_cache.clear()
    assert_error(execute(client, "org-a", "a-one", key), 401, "key_expired")
    key_revoke(key=model.objects.get(pk=row.pk), actor=None)
    assert_error(execute(client, "org-a", "a-one", key), 401, "key_revoked")


def test_an_imported_key_keeps_to_its_rate_limit(client, imported_dep):
    row, key = imported_dep
    key_update(key=row, actor=None, rate_limit_per_minute=1)
    first = execute(client, "org-a", "a-one", key)
    assert first.status_code == 200 and first["RateLimit-Policy"] == '"key";q=1;w=60'
    assert_error(execute(client, "org-a", "a-one", key.upper()), 429, "rate_limited")


def test_an_imported_key_describes_itself_as_imported(client, imported_selected):
    row, key = imported_selected
    body = client.get("/api/v1/key/", **bearer(key.upper())).json()
    assert body["id"] == str(row.pk) and body["kind"] == "global"
    assert body["format"] == "uuid"
    assert body["key_masked"] == f"uuid\u2026{key[-4:]}"
    assert body["deployments"] == ["a-one", "a-two"]


def test_the_management_api_shows_the_format(org_admin_client, imported_dep, deployment_key_a1):
    listed = org_admin_client.get("/api/v1/orgs/org-a/deployments/a-one/keys/").json()["results"]
    formats = {item["name"]: (item["format"], item["key_masked"][:5]) for item in listed}
    assert formats == {"old a-one key": ("uuid", "uuid\u2026"), "a-one key": ("keyscope", "ksd_\u2026")}


@pytest.fixture
def org_admin_client(client, admin_a):
    client.force_login(admin_a)
    return client


def test_deployment_keys_are_tried_before_global_keys(client, org_a, deployment_a1, deployment_a2):
    dep, key = import_deployment_key(deployment_a1, name="dep")
    glob, _ = import_global_key(org_a, name="glob", allow_all_deployments=True)
    # The same UUID in both tables (the import refuses it; a shell session could do it).
    GlobalApiDeploymentKey.objects.filter(pk=glob.pk).update(digest=dep.digest)
    assert client.get("/api/v1/key/", **bearer(key)).json()["kind"] == "deployment"
    assert_error(execute(client, "org-a", "a-two", key), 403, "deployment_not_in_scope")


@pytest.mark.parametrize("fixture", ["imported_dep", "imported_all"])
def test_rotation_gives_a_keyscope_secret_and_phases_the_uuid_out(client, request, fixture):
    row, key = request.getfixturevalue(fixture)
    row, new_key = key_rotate(key=row, actor=None, grace_period_seconds=300)
    assert crypto.key_kind(new_key) == row.KIND and row.format == "keyscope"
    assert row.key_masked == f"{new_key[:4]}\u2026{new_key[-4:]}"

    assert execute(client, "org-a", "a-one", key.upper()).status_code == 200
    assert execute(client, "org-a", "a-one", new_key).status_code == 200
    assert client.get("/api/v1/key/", **bearer(new_key)).json()["format"] == "keyscope"
    with later(301):
        assert_error(execute(client, "org-a", "a-one", key), 401, "key_revoked")
        assert_error(execute(client, "org-a", "a-one", key.upper()), 401, "key_revoked")
        assert execute(client, "org-a", "a-one", new_key).status_code == 200


@pytest.mark.parametrize(
    "shape",
    [
        pytest.param(lambda key: key.replace("-", ""), id="bare hex"),
        pytest.param(lambda key: f"{{{key}}}", id="braces"),
        pytest.param(lambda key: f"urn:uuid:{key}", id="urn"),
        pytest.param(lambda key: key[:-1], id="short"),
        pytest.param(lambda key: key[:8] + key[9:] + "0", id="hyphen missing"),
    ],
)
def test_other_spellings_of_an_imported_key_are_invalid_without_a_query(
    client, imported_dep, shape, django_assert_num_queries
):
    _, key = imported_dep
    with django_assert_num_queries(0):
        assert_error(execute(client, "org-a", "a-one", shape(key)), 401, "invalid_key")


def test_uuid_keys_can_be_refused_without_a_query(client, imported_dep, django_assert_num_queries):
    _, key = imported_dep
    with override_settings(KEYSCOPE_ACCEPT_UUID_KEYS=False):
        for _ in range(2):
            with django_assert_num_queries(0):
                assert_error(execute(client, "org-a", "a-one", key), 401, "invalid_key")
                assert_error(client.get("/api/v1/key/", **bearer(key.upper())), 401, "invalid_key")
    assert execute(client, "org-a", "a-one", key).status_code == 200


def test_a_cold_imported_key_costs_what_a_keyscope_key_costs(client, imported_dep, imported_selected,
                                                            django_assert_num_queries):
    for _, key in (imported_dep, imported_selected):
        with django_assert_num_queries(COLD_EXECUTE_QUERIES):
            assert cold_execute(client, key).status_code == 200
        with django_assert_num_queries(WARM_EXECUTE_QUERIES):
            assert cold_execute(client, key.upper()).status_code == 200  # cold again: last_used_at is fresh


def test_a_uuid_shaped_unknown_key_costs_one_lookup_then_none(client, deployment_a1, django_assert_num_queries):
    local_cache.clear()
    junk = str(uuid.uuid4())
    with django_assert_num_queries(1):
        assert_error(execute(client, "org-a", "a-one", junk), 401, "invalid_key")
    for spelling in (junk, junk.upper()):
        with django_assert_num_queries(0):
            assert_error(execute(client, "org-a", "a-one", spelling), 401, "invalid_key")


def test_an_imported_key_of_another_organization_stays_there(client, deployment_b1, deployment_a1):
    _, key = import_deployment_key(deployment_b1, name="B's")
    assert_error(execute(client, "org-a", "a-one", key), 404, "not_found")
    assert execute(client, "org-b", "b-one", key).status_code == 200


def test_a_deployment_added_later_opens_to_an_imported_allow_all_key(client, imported_all, org_a):
    _, key = imported_all
    DeploymentFactory(organization=org_a, slug="a-new", name="A new")
    assert execute(client, "org-a", "a-new", key).status_code == 200
    assert DeploymentKey.objects.count() == 0


def test_with_the_cache_off_an_imported_key_makes_the_lookup_and_the_insert(
    client, imported_selected, settings, django_assert_num_queries
):
    settings.KEYSCOPE_VERIFICATION_CACHE_SECONDS = 0
    _, key = imported_selected
    assert execute(client, "org-a", "a-one", key).status_code == 200  # writes last_used_at
    with django_assert_num_queries(WARM_EXECUTE_QUERIES):
        assert execute(client, "org-a", "a-one", key).status_code == 200
    with django_assert_num_queries(WARM_EXECUTE_QUERIES - 1):  # the lookup reads the scope too: no insert
        assert_error(execute(client, "org-a", "a-three", key), 403, "deployment_not_in_scope")


def test_the_uuid_lookup_uses_both_digest_indexes(client, org_a, deployment_a1):
    """On PostgreSQL, looking a UUID up among 10,000 keys of each kind scans indexes only."""
    if connection.vendor != "postgresql":
        pytest.skip("EXPLAIN's output is PostgreSQL's")
    bulk_keys(deployment_a1, 10_000)
    GlobalApiDeploymentKey.objects.bulk_create(
        [GlobalApiDeploymentKey(organization=org_a, name=f"bulk {i}", digest=secrets.token_hex(32), last4="abcd")
         for i in range(10_000)],
        batch_size=2000,
    )
    with connection.cursor() as cursor:
        cursor.execute("ANALYZE keys_deploymentkey")
        cursor.execute("ANALYZE keys_globalapideploymentkey")
        sql, _ = UUID_LOOKUP._prepare(with_target=True)
        digest = crypto.digest(str(uuid.uuid4()))
        cursor.execute("EXPLAIN " + sql, ["a-one", digest, "a-one", digest, "deployment", "a-one", digest, "a-one", digest, "global"])
        plan = "\n".join(row[0] for row in cursor.fetchall())
    assert "Index" in plan
    assert "Seq Scan on keys_deploymentkey" not in plan and "Seq Scan on keys_globalapideploymentkey" not in plan


def test_a_uuid_refused_before_its_import_works_right_after(client, deployment_a1, tmp_path):
    """The import flushes what workers cached, the "unknown key" answer included (CONTRACT §4)."""
    key = str(uuid.uuid4())
    assert_error(execute(client, "org-a", "a-one", key), 401, "invalid_key")  # now cached as unknown
    path = tmp_path / "keys.json"
    path.write_text(json.dumps({"deployment_keys": [{"key": key, "deployment": "a-one", "name": "moved"}]}))
    call_command("import_keys", "--org", "org-a", str(path), stdout=StringIO())
    assert execute(client, "org-a", "a-one", key).status_code == 200
