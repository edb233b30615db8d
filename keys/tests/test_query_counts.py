"""How many queries a request costs (the issue's query-count test).

Junk keys cost none. A verified execute costs a small fixed number whatever the
number of keys in the table and of deployments linked to a global key.
Measured on PostgreSQL: see the constants below. "Cold" means this worker's
verification cache is empty, as after any key write; warm requests cost less.
"""

import ipaddress
import secrets
import time
from datetime import timedelta
from unittest import mock

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.utils import timezone

from deployments.models import Deployment
from keys import crypto, verification_cache
from keys.models import DeploymentKey, GlobalKeyDeployment
from keys.tests.factories import import_deployment_key, import_global_key, issue_deployment_key, issue_global_key
from keys.tests.helpers import bad_checksum, bearer, execute
from keys.usage import flush_usage
from keys.verification_cache import local_cache

# One lookup (the key, its organization, the deployment the URL names and, for a global key
# with a list, its link to that deployment), execution insert. last_used_at and usage are written
# by the worker's flush, once a second, never by the request (keys/usage.py).
COLD_EXECUTE_QUERIES = 2
# The same request again with the cache cleared; with the cache warm, no lookup either.
WARM_EXECUTE_QUERIES = 2


def _mangled(full_key: str) -> list[str]:
    return [
        full_key[:-1],
        bad_checksum(full_key),
        full_key[:10] + ("0" if full_key[10] != "0" else "1") + full_key[11:],
        "ksx_" + full_key[4:],
        full_key * 500,
        "",
        "not a key at all",
    ]


def test_junk_keys_make_no_query(client, deployment_key_a1, django_assert_num_queries):
    _, full_key = deployment_key_a1
    for junk in _mangled(full_key):
        with django_assert_num_queries(0):
            assert execute(client, "org-a", "a-one", HTTP_AUTHORIZATION=f"Bearer {junk}").status_code == 401
        with django_assert_num_queries(0):
            assert client.get("/api/v1/key/", HTTP_X_API_KEY=junk or "x").status_code == 401


def test_no_key_makes_no_query(client, deployment_a1, django_assert_num_queries):
    with django_assert_num_queries(0):
        assert execute(client, "org-a", "a-one").status_code == 401


def test_an_unknown_well_formed_key_makes_one_indexed_lookup(client, deployment_a1, django_assert_num_queries):
    # One query over the current digests and the retired ones (so a rotated-out secret can answer key_revoked).
    with django_assert_num_queries(1):
        response = cold_execute(client, crypto.generate_key("global"))
    assert response.json()["code"] == "invalid_key"


def bulk_keys(deployment: Deployment, count: int) -> None:
    DeploymentKey.objects.bulk_create(
        [
            DeploymentKey(deployment=deployment, name=f"bulk {i}", digest=secrets.token_hex(32), last4="abcd")
            for i in range(count)
        ],
        batch_size=2000,
    )


def link_many(key, organization, count: int) -> None:
    deployments = Deployment.objects.bulk_create(
        [Deployment(organization=organization, slug=f"many-{i}", name=f"Many {i}") for i in range(count)], batch_size=1000
    )
    GlobalKeyDeployment.objects.bulk_create(
        [GlobalKeyDeployment(key=key, deployment=deployment) for deployment in deployments], batch_size=1000
    )


def cold_execute(client, full_key: str, slug: str = "a-one"):
    local_cache.clear()
    return execute(client, "org-a", slug, full_key)


def count_execute(client, full_key: str, slug: str = "a-one") -> int:
    local_cache.clear()
    with CaptureQueriesContext(connection) as queries:
        response = execute(client, "org-a", slug, full_key)
    assert response.status_code == 200, response.content
    return len(queries)


def test_a_cold_execute_with_a_deployment_key_makes_a_fixed_number(
    client, deployment_key_a1, django_assert_num_queries, django_assert_max_num_queries
):
    _, full_key = deployment_key_a1
    with django_assert_num_queries(COLD_EXECUTE_QUERIES):
        assert cold_execute(client, full_key).status_code == 200
    with django_assert_num_queries(WARM_EXECUTE_QUERIES):
        assert cold_execute(client, full_key).status_code == 200
    with django_assert_max_num_queries(WARM_EXECUTE_QUERIES):
        assert execute(client, "org-a", "a-one", full_key).status_code == 200


def test_a_cold_execute_with_an_allow_all_key_makes_a_fixed_number(client, global_all_key_a, deployment_a1, django_assert_num_queries):
    _, full_key = global_all_key_a
    with django_assert_num_queries(COLD_EXECUTE_QUERIES):
        assert cold_execute(client, full_key).status_code == 200


@pytest.mark.parametrize("linked", [1, 1000])
def test_a_cold_execute_with_a_selected_key_does_not_grow_with_its_deployments(
    client, org_a, deployment_a1, linked, django_assert_num_queries
):
    row, full_key = issue_global_key(org_a, name="selected", deployments=[deployment_a1])
    link_many(row, org_a, linked - 1)
    assert row.deployments.count() == linked

    with django_assert_num_queries(COLD_EXECUTE_QUERIES):
        assert cold_execute(client, full_key).status_code == 200
    # The same again, on any deployment of the list.
    with django_assert_num_queries(WARM_EXECUTE_QUERIES):
        assert cold_execute(client, full_key, "many-0" if linked > 1 else "a-one").status_code == 200


@pytest.mark.parametrize(
    "slug, status, code",
    [
        pytest.param("a-one", 200, None, id="in-scope"),
        pytest.param("a-two", 403, "deployment_not_in_scope", id="not-in-scope"),
        pytest.param("a-off", 403, "deployment_inactive", id="inactive"),
        pytest.param("no-such-deployment", 404, "not_found", id="missing"),
    ],
)
def test_a_cold_request_answers_every_deployment_rule_from_its_one_lookup(
    client, org_a, deployment_a1, slug, status, code, django_assert_num_queries
):
    Deployment.objects.create(organization=org_a, slug="a-two", name="A two")
    off = Deployment.objects.create(organization=org_a, slug="a-off", name="A off", is_active=False)
    # The scope lists a-one and a-off, not a-two.
    _, full_key = issue_global_key(org_a, name="selected", deployments=[deployment_a1, off])
    cold_execute(client, full_key, "a-one")

    with django_assert_num_queries(1 if status != 200 else WARM_EXECUTE_QUERIES):
        response = cold_execute(client, full_key, slug)

    assert response.status_code == status
    assert code is None or response.json()["code"] == code


def test_a_deployment_fetched_beside_a_refused_key_stays_unknown_to_it(client, org_a, deployment_a1, admin_a):
    """The lookup reads the named deployment beside the key; a revoked key still learns nothing of it."""
    from keys.services import key_revoke

    row, full_key = issue_global_key(org_a, name="selected", deployments=[deployment_a1])
    key_revoke(key=row, actor=admin_a)

    existing = cold_execute(client, full_key, "a-one")
    missing = cold_execute(client, full_key, "no-such-deployment")

    assert (existing.status_code, existing.json()) == (missing.status_code, missing.json())
    assert existing.json()["code"] == "key_revoked"


def test_ten_thousand_keys_in_the_table_change_nothing(client, org_a, deployment_a1, django_assert_max_num_queries):
    bulk_keys(deployment_a1, 10_000)
    _, deployment_key = issue_deployment_key(deployment_a1, name="needle")
    _, all_key = issue_global_key(org_a, name="everything", allow_all_deployments=True)
    row, selected_key = issue_global_key(org_a, name="selected", deployments=[deployment_a1])
    link_many(row, org_a, 999)
    assert DeploymentKey.objects.count() == 10_001

    measured = {
        "deployment key": count_execute(client, deployment_key),
        "allow-all key": count_execute(client, all_key),
        "selected key, 1,000 deployments": count_execute(client, selected_key),
    }
    assert measured == {
        "deployment key": COLD_EXECUTE_QUERIES,
        "allow-all key": COLD_EXECUTE_QUERIES,
        "selected key, 1,000 deployments": COLD_EXECUTE_QUERIES,
    }
    local_cache.clear()
    with django_assert_max_num_queries(COLD_EXECUTE_QUERIES):
        assert client.get("/api/v1/key/", **bearer(deployment_key)).status_code == 200


def test_the_key_lookup_uses_the_digest_index(client, deployment_a1):
    """On PostgreSQL, the lookup among 10,000 keys is an index scan, not a sequential scan."""
    if connection.vendor != "postgresql":
        pytest.skip("EXPLAIN's output is PostgreSQL's")
    bulk_keys(deployment_a1, 10_000)
    with connection.cursor() as cursor:
        cursor.execute("ANALYZE keys_deploymentkey")
    plan = DeploymentKey.objects.filter(digest=secrets.token_hex(32)).explain()
    assert "Index" in plan and "Seq Scan" not in plan


def test_last_used_at_is_written_at_most_once_a_minute(client, deployment_key_a1):
    row, full_key = deployment_key_a1
    start = timezone.now()

    def at(seconds: int):
        return mock.patch("django.utils.timezone.now", return_value=start + timedelta(seconds=seconds))

    def last_used_at():
        return DeploymentKey.objects.get(pk=row.pk).last_used_at

    def writes(seconds: int) -> int:
        local_cache.clear()
        with at(seconds), CaptureQueriesContext(connection) as queries:
            assert execute(client, "org-a", "a-one", full_key).status_code == 200
            flush_usage()  # what the worker's flusher does within a second
        return sum('UPDATE "keys_deploymentkey"' in query["sql"] for query in queries)

    assert last_used_at() is None
    assert writes(0) == 1
    assert last_used_at() == start
    assert [writes(seconds) for seconds in (1, 30, 59)] == [0, 0, 0]
    assert last_used_at() == start
    assert writes(61) == 1
    assert last_used_at() == start + timedelta(seconds=61)
    assert [writes(seconds) for seconds in (62, 100)] == [0, 0]


def prepared_key_lookups() -> int:
    with connection.cursor() as cursor:
        cursor.execute("SELECT count(*) FROM pg_prepared_statements WHERE statement LIKE %s", ['%"digest" = $%'])
        return cursor.fetchone()[0]


def test_the_cold_lookup_is_planned_once_per_connection_on_postgresql(client, deployment_key_a1, global_all_key_a):
    """Planning the lookup's joins costs more than running them: PostgreSQL keeps its plan (KEYSCOPE_PREPARED_KEY_LOOKUP)."""
    if connection.vendor != "postgresql":
        pytest.skip("prepared statements are PostgreSQL's")
    _, imported_deployment_key = import_deployment_key(deployment_key_a1[0].deployment, name="imported")
    _, imported_global_key = import_global_key(deployment_key_a1[0].deployment.organization, allow_all_deployments=True)
    before = prepared_key_lookups()

    for _ in range(3):
        assert cold_execute(client, deployment_key_a1[1]).status_code == 200
        assert cold_execute(client, global_all_key_a[1]).status_code == 200
        assert cold_execute(client, imported_deployment_key).status_code == 200
        assert cold_execute(client, imported_global_key.upper()).status_code == 200

    # One statement per key kind, and one for imported UUIDs of either kind, however many cold requests ran.
    assert prepared_key_lookups() == before + 3


def test_the_lookup_reads_in_the_query_log_with_its_values(client, deployment_key_a1):
    """DEBUG's query log and assertNumQueries show the prepared lookup as SQL, not as an empty entry."""
    with CaptureQueriesContext(connection) as captured:
        cold_execute(client, deployment_key_a1[1])

    lookup_sql = next(q["sql"] for q in captured.captured_queries if '"digest" = ' in (q["sql"] or ""))
    assert deployment_key_a1[0].digest in lookup_sql


def test_without_prepared_lookups_a_cold_request_still_makes_one_lookup(
    client, deployment_key_a1, settings, django_assert_num_queries
):
    settings.KEYSCOPE_PREPARED_KEY_LOOKUP = False
    postgresql = connection.vendor == "postgresql"
    before = prepared_key_lookups() if postgresql else 0

    with django_assert_num_queries(COLD_EXECUTE_QUERIES):
        assert cold_execute(client, deployment_key_a1[1]).status_code == 200

    assert (prepared_key_lookups() if postgresql else 0) == before


@pytest.mark.parametrize("persona", ["deployment_key_a1", "global_all_key_a", "global_selected_key_a"])
def test_with_the_cache_off_a_request_reads_the_deployment_only_in_the_key_lookup(
    client, request, persona, deployment_a1, settings, django_assert_num_queries
):
    settings.KEYSCOPE_VERIFICATION_CACHE_SECONDS = 0
    _, full_key = request.getfixturevalue(persona)
    assert execute(client, "org-a", "a-one", full_key).status_code == 200

    with django_assert_num_queries(WARM_EXECUTE_QUERIES):  # the lookup and the Execution insert
        assert execute(client, "org-a", "a-one", full_key).status_code == 200


def test_a_key_with_one_scope_and_ten_networks_costs_what_any_key_costs(client, deployment_a1, django_assert_num_queries):
    """Scopes and networks travel in the verification record: parsed once per lookup, never per request."""
    networks = [f"198.51.100.{n}/32" for n in range(9)] + ["127.0.0.0/8"]  # the test client's address, last
    _, full_key = issue_deployment_key(deployment_a1, scopes=["deployments:execute"], allowed_ips=networks)
    deadline = time.monotonic() + 5
    while not verification_cache._bus.healthy():  # answers are cached once this process hears flushes
        assert time.monotonic() < deadline, "the cache invalidation listener did not subscribe"
        time.sleep(0.01)

    with mock.patch.object(ipaddress, "ip_network", wraps=ipaddress.ip_network) as parsed:
        with django_assert_num_queries(COLD_EXECUTE_QUERIES):
            assert cold_execute(client, full_key).status_code == 200
        assert parsed.call_count == len(networks)  # the cold lookup compiles them
        client.get("/api/v1/key/", **bearer(full_key))  # caches the slugs it lists
        parsed.reset_mock()
        with django_assert_num_queries(0):  # warm: the key check makes no query at all
            assert client.get("/api/v1/key/", **bearer(full_key)).status_code == 200
        with django_assert_num_queries(1):  # the Execution insert
            assert execute(client, "org-a", "a-one", full_key).status_code == 200
        assert parsed.call_count == 0


# Deployment groups: the lookup joins through them, so a grouped scope costs no extra query.


def bind_groups(key, organization, groups: int, deployments_each: int) -> None:
    """Bind `key` to `groups` new groups of `deployments_each` new deployments; a-one is in the last group only."""
    from deployments.models import DeploymentGroup, GroupDeployment
    from keys.models import GlobalKeyGroup

    made = DeploymentGroup.objects.bulk_create(
        [DeploymentGroup(organization=organization, slug=f"group-{g}", name=f"Group {g}") for g in range(groups)]
    )
    members = Deployment.objects.bulk_create(
        [Deployment(organization=organization, slug=f"g{g}-d{d}", name="M") for g in range(groups) for d in range(deployments_each)],
        batch_size=1000,
    )
    links = [GroupDeployment(group=made[i // deployments_each], deployment=member) for i, member in enumerate(members)]
    links.append(GroupDeployment(group=made[-1], deployment=Deployment.objects.get(organization=organization, slug="a-one")))
    GroupDeployment.objects.bulk_create(links, batch_size=1000)
    GlobalKeyGroup.objects.bulk_create([GlobalKeyGroup(key=key, group=group) for group in made])


@pytest.mark.parametrize(("groups", "deployments_each"), [(1, 1), (10, 1000), (100, 10)])
def test_a_cold_execute_with_a_grouped_key_makes_a_fixed_number(
    client, org_a, deployment_a1, groups, deployments_each, django_assert_num_queries
):
    row, full_key = issue_global_key(org_a, name="grouped", deployments=[])
    GlobalKeyDeployment.objects.filter(key=row).delete()
    bind_groups(row, org_a, groups, deployments_each)

    Deployment.objects.create(organization=org_a, slug="outside", name="Outside")

    with django_assert_num_queries(COLD_EXECUTE_QUERIES):  # the lookup (key, deployment, scope), the insert
        assert cold_execute(client, full_key).status_code == 200
    # The key cached, a deployment not yet asked for: the deployment, one EXISTS for the scope, the insert.
    with django_assert_num_queries(3):
        assert execute(client, "org-a", "g0-d0", full_key).status_code == 200
    with django_assert_num_queries(WARM_EXECUTE_QUERIES):
        assert cold_execute(client, full_key, "g0-d0").status_code == 200
    with django_assert_num_queries(1):  # a deployment outside the scope is refused from the lookup alone
        assert cold_execute(client, full_key, "outside").status_code == 403


def test_with_the_cache_off_a_grouped_key_reads_its_scope_only_in_the_key_lookup(
    client, org_a, deployment_a1, grouped_key_a, settings, django_assert_num_queries
):
    settings.KEYSCOPE_VERIFICATION_CACHE_SECONDS = 0
    _, full_key = grouped_key_a
    assert execute(client, "org-a", "a-one", full_key).status_code == 200

    with django_assert_num_queries(WARM_EXECUTE_QUERIES):  # the lookup and the Execution insert
        assert execute(client, "org-a", "a-one", full_key).status_code == 200


def test_introspection_of_a_grouped_key_costs_a_fixed_number(client, org_a, deployment_a1, django_assert_max_num_queries):
    row, full_key = issue_global_key(org_a, name="grouped", deployments=[deployment_a1])
    bind_groups(row, org_a, 10, 100)

    local_cache.clear()
    with django_assert_max_num_queries(COLD_EXECUTE_QUERIES):  # the lookup, its deployments and groups, last_used_at
        body = client.get("/api/v1/key/", **bearer(full_key)).json()
    assert len(body["deployments"]) == 1001 and len(body["groups"]) == 10


def test_the_grouped_scope_check_uses_indexes(client, org_a, deployment_a1):
    """On PostgreSQL, the in-scope test through groups probes indexes; it never scans the membership table."""
    if connection.vendor != "postgresql":
        pytest.skip("EXPLAIN's output is PostgreSQL's")
    from keys.lookup import LOOKUPS

    row, full_key = issue_global_key(org_a, name="grouped", deployments=[])
    bind_groups(row, org_a, 10, 1000)
    with connection.cursor() as cursor:
        cursor.execute("ANALYZE")
        sql, _ = LOOKUPS["global"]._prepare(True)
        cursor.execute("EXPLAIN " + sql, ["a-one", row.digest, "a-one", row.digest, "global"])
        plan = "\n".join(line for (line,) in cursor.fetchall())
    # 10,000 memberships: reached by the named deployment's index, never read through.
    assert "Seq Scan on deployments_groupdeployment" not in plan, plan
    assert "on deployments_groupdeployment" in plan, plan
