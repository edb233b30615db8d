"""The bench's own database: created, seeded with one organization, its deployments and many keys, dropped."""

from __future__ import annotations

import json
import os
import secrets
import sys
import time
import uuid
from dataclasses import dataclass
from typing import Any

RATE_LIMIT_ON = 1_000_000_000  # high enough never to answer 429: we measure the counting, not the refusal
SCOPE_SIZE = 1_000
POPULATION_LINKS = 3  # deployments each global key of the known population lists
# The `scoped` key's allowed networks: nine that the bench's client is not in, then the loopback
# it connects from (in-process and over HTTP), so every request compares against all ten.
ALLOWED_NETWORKS = [f"198.51.100.{16 * n}/28" for n in range(5)] + [f"2001:db8:{n}::/48" for n in range(4)] + ["127.0.0.0/8"]
GROUPS = 10  # the group rows' key is bound to this many groups (BENCH_GROUPS)
GROUP_SIZE = 1_000  # of at most this many deployments each


def admin_connection() -> Any:
    import psycopg

    return psycopg.connect(os.environ["DATABASE_URL"], autocommit=True)


def create_database(name: str) -> None:
    with admin_connection() as conn:
        conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        conn.execute(f'CREATE DATABASE "{name}"')
        # Statements counted at the server (bench/over_http.py), where scripts/with-services.sh preloads it.
        try:
            conn.execute("CREATE EXTENSION IF NOT EXISTS pg_stat_statements")
        except Exception as exc:
            print(f"note: no pg_stat_statements ({type(exc).__name__}): statements are not counted at the server", file=sys.stderr)


def drop_database(name: str) -> None:
    with admin_connection() as conn:
        conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


def _expect_columns(model: Any, expected: list[str]) -> None:
    columns = [f.column for f in model._meta.concrete_fields]
    if sorted(columns) != sorted(expected):
        raise SystemExit(
            f"bench/seed.py seeds {model._meta.db_table} with raw SQL and knows the columns {sorted(expected)}, "
            f"but the model now has {sorted(columns)}: update the seeding SQL."
        )


KEY_COMMON_COLUMNS = [
    "id", "name", "description", "digest", "last4", "is_active", "expires_at", "revoked_at", "last_used_at",
    "rate_limit_per_minute", "created_by_id", "modified_by_id", "created_at", "modified_at", "format", "scopes",
    "allowed_ips", "revocation_reason",
]  # fmt: skip


def seed_groups(org: Any, deployments: list[Any], groups: int) -> list[Any]:
    """`groups` groups of up to GROUP_SIZE deployments, dealt round the organization's deployments.

    The bench's target deployment (the first) is dealt last, so it sits in the last group (and, when
    the groups outnumber what the deployments fill, in every group that wraps round to it): a check
    that tried the key's groups one by one would find it last.
    """
    from deployments.models import DeploymentGroup, GroupDeployment

    size = min(GROUP_SIZE, max(1, len(deployments) // groups))
    dealt = deployments[1:] + deployments[:1]
    start = (len(dealt) - groups * size) % len(dealt)  # so that the last group ends on the target
    made = DeploymentGroup.objects.bulk_create(
        DeploymentGroup(organization=org, slug=f"group-{g:03d}", name=f"Group {g}") for g in range(groups)
    )
    GroupDeployment.objects.bulk_create(
        (
            GroupDeployment(group=group, deployment=dealt[(start + g * size + i) % len(dealt)])
            for g, group in enumerate(made)
            for i in range(size)
        ),
        batch_size=5000,
        ignore_conflicts=True,  # with a single deployment, every group holds the same one
    )
    return made


@dataclass(frozen=True)
class PopulationKey:
    """One of the many keys whose secrets the bench knows: the path it calls and its full key (memory only)."""

    path: str
    key: str


def seed_population(org: Any, deployments: list[Any], count: int) -> list[PopulationKey]:
    """`count` active keys with secrets made here (never written anywhere): alternately deployment keys and
    global keys listing POPULATION_LINKS deployments, every other one of each kind narrowed to the execute scope.

    Each calls a deployment it opens (its own; one of its list), so every request passes. Keys are made in
    this process (a checksum the server cannot compute) and copied in with COPY, links likewise.
    """
    from django.db import connection
    from django.utils import timezone

    from keys import crypto
    from keys.models import DeploymentKey, GlobalApiDeploymentKey, GlobalKeyDeployment
    from keys.scopes import DEPLOYMENTS_EXECUTE, EXECUTIONS_READ

    both = json.dumps([DEPLOYMENTS_EXECUTE, EXECUTIONS_READ])
    narrow = json.dumps([DEPLOYMENTS_EXECUTE])
    now = timezone.now()
    population: list[PopulationKey] = []
    dep_rows, global_rows, links = [], [], []
    for i in range(count):
        kind: Any = "deployment" if i % 2 == 0 else "global"
        full_key = crypto.generate_key(kind)
        key_id = uuid.uuid4()
        scopes = narrow if (i // 2) % 2 else both
        values = {
            "id": key_id, "name": f"population-{i:07d}", "description": "", "digest": crypto.digest(full_key),
            "last4": crypto.last4(full_key), "is_active": True, "expires_at": None, "revoked_at": None,
            "last_used_at": None, "rate_limit_per_minute": 0, "created_by_id": None, "modified_by_id": None,
            "created_at": now, "modified_at": now, "format": crypto.KEYSCOPE_FORMAT, "scopes": scopes,
            "allowed_ips": "[]", "revocation_reason": "",
        }  # fmt: skip
        common = [values[column] for column in KEY_COMMON_COLUMNS]  # a new column: a KeyError naming it here
        if kind == "deployment":
            deployment = deployments[(i // 2) % len(deployments)]
            dep_rows.append([*common, deployment.id])
        else:
            opened = [deployments[(i * 7 + n * 13) % len(deployments)] for n in range(POPULATION_LINKS)]
            global_rows.append([*common, org.id, False])
            links += [(key_id, d.id) for d in {d.id: d for d in opened}.values()]
            deployment = opened[0]
        population.append(PopulationKey(path=f"/bench/keyscope/{org.slug}/{deployment.slug}/", key=full_key))
    raw = connection.connection
    with raw.cursor() as cursor:
        for model, extra, rows in (
            (DeploymentKey, ["deployment_id"], dep_rows),
            (GlobalApiDeploymentKey, ["organization_id", "allow_all_deployments"], global_rows),
        ):
            with cursor.copy(f"COPY {model._meta.db_table} ({', '.join([*KEY_COMMON_COLUMNS, *extra])}) FROM STDIN") as copy:
                for row in rows:
                    copy.write_row(row)
        with cursor.copy(f"COPY {GlobalKeyDeployment._meta.db_table} (key_id, deployment_id) FROM STDIN") as copy:
            for link in links:
                copy.write_row(link)
    return population


def seed(keys_total: int, deployments_total: int, peer: bool, groups: int = GROUPS, population: int = 0) -> dict[str, Any]:
    """Empty the app tables, then seed one organization, its deployments and groups, the bench keys, `population`
    keys whose secrets the bench knows (at most half the keys) and filler keys."""
    from django.apps import apps
    from django.db import connection

    from deployments.models import Deployment
    from keys import crypto
    from keys.models import DeploymentKey, GlobalApiDeploymentKey
    from keys.scopes import DEPLOYMENTS_EXECUTE
    from keys.worker_state import forget_worker_state
    from organizations.models import Organization

    labels = ["organizations", "deployments", "keys"] + (["rest_framework_api_key"] if peer else [])
    tables = [m._meta.db_table for label in labels for m in apps.get_app_config(label).get_models()]
    with connection.cursor() as cursor:
        cursor.execute("TRUNCATE " + ", ".join(f'"{t}"' for t in tables) + " CASCADE")

    started = time.perf_counter()
    org = Organization.objects.create(slug="bench", name="Bench")
    Deployment.objects.bulk_create(
        Deployment(organization=org, slug=f"d{i:05d}", name=f"Deployment {i}") for i in range(deployments_total)
    )
    deployments = list(Deployment.objects.filter(organization=org).order_by("slug"))
    target = deployments[0]
    phases = {"deployments": time.perf_counter() - started}
    scope = deployments[: min(SCOPE_SIZE, len(deployments))]

    keys: dict[str, str] = {}
    _, keys["dep"] = DeploymentKey.objects.issue(deployment=target, name="bench", rate_limit_per_minute=0)
    _, keys["dep_limit"] = DeploymentKey.objects.issue(
        deployment=target, name="bench-limit", rate_limit_per_minute=RATE_LIMIT_ON
    )
    _, keys["scoped"] = DeploymentKey.objects.issue(
        deployment=target,
        name="bench-scoped",
        rate_limit_per_minute=0,
        scopes=[DEPLOYMENTS_EXECUTE],
        allowed_ips=ALLOWED_NETWORKS,
    )
    _, keys["global_all"] = GlobalApiDeploymentKey.objects.issue(
        organization=org, name="bench-all", allow_all_deployments=True, rate_limit_per_minute=0
    )
    _, keys["global_scope"] = GlobalApiDeploymentKey.objects.issue(
        organization=org, name="bench-scope", deployments=scope, rate_limit_per_minute=0
    )
    _, keys["global_wide"] = GlobalApiDeploymentKey.objects.issue(
        organization=org, name="bench-wide", deployments=deployments, rate_limit_per_minute=0
    )
    bound = seed_groups(org, deployments, groups)
    _, keys["group"] = GlobalApiDeploymentKey.objects.issue(
        organization=org, name="bench-groups", groups=bound, rate_limit_per_minute=0
    )
    # Well formed but for its checksum: refused before any query.
    valid = keys["dep"]
    keys["junk"] = valid[:-1] + ("0" if valid[-1] != "0" else "1")
    assert crypto.key_kind(keys["junk"]) is None

    phases["bench keys"] = time.perf_counter() - started - sum(phases.values())
    population = min(population, keys_total // 2)
    known = seed_population(org, deployments, population)
    phases["known keys"] = time.perf_counter() - started - sum(phases.values())
    filler = max(0, keys_total - 7 - population)
    filler_deployment_keys = filler // 2
    filler_global_keys = filler - filler_deployment_keys
    salt = secrets.token_hex(8)
    _expect_columns(DeploymentKey, [*KEY_COMMON_COLUMNS, "deployment_id"])
    _expect_columns(GlobalApiDeploymentKey, [*KEY_COMMON_COLUMNS, "organization_id", "allow_all_deployments"])
    common = ", ".join(KEY_COMMON_COLUMNS)
    # Random digests made by the server, inserted in digest order with ids and names in the same order:
    # every index grows at its end, so a million rows take seconds, with no round trip per row.
    filler_sql = (
        "INSERT INTO {table} ({common}, {extra_columns})"
        " SELECT (%(id_prefix)s || lpad(to_hex(rn), 20, '0'))::uuid, 'filler-' || lpad(rn::text, 9, '0'), '', digest,"
        " 'xxxx', true, NULL, NULL, NULL, NULL, NULL, NULL, now(), now(), 'keyscope',"
        " '[\"deployments:execute\", \"executions:read\"]'::jsonb, '[]'::jsonb, '', {extra_values}"
        " FROM (SELECT row_number() OVER (ORDER BY digest) AS rn, digest FROM ("
        "   SELECT encode(sha256(convert_to(%(salt)s || '-' || i, 'UTF8')), 'hex') AS digest"
        "   FROM generate_series(1, %(n)s) AS i) AS raw) AS sorted"
    )
    with connection.cursor() as cursor:
        cursor.execute(
            filler_sql.format(
                table=DeploymentKey._meta.db_table,
                common=common,
                extra_columns="deployment_id",
                extra_values="(%(ids)s::bigint[])[1 + rn %% %(count)s]",
            ),
            {
                "salt": salt + "d",
                "id_prefix": secrets.token_hex(6),
                "ids": [d.id for d in deployments],
                "count": len(deployments),
                "n": filler_deployment_keys,
            },
        )
        cursor.execute(
            filler_sql.format(
                table=GlobalApiDeploymentKey._meta.db_table,
                common=common,
                extra_columns="organization_id, allow_all_deployments",
                extra_values="%(org)s, true",
            ),
            {"salt": salt + "g", "id_prefix": secrets.token_hex(6), "org": org.id, "n": filler_global_keys},
        )
        phases["filler keys"] = time.perf_counter() - started - sum(phases.values())
        if peer:
            from rest_framework_api_key.models import APIKey

            _expect_columns(APIKey, ["id", "prefix", "hashed_key", "created", "name", "revoked", "expiry_date"])
            # Prefixes "~" + 7 hex digits, in order: never one the package makes (letters and digits only),
            # and the indexes grow at their end. The package looks keys up by prefix only, so the filler's
            # hash (never verified) is a short md5 to keep the seeding fast.
            cursor.execute(
                f"INSERT INTO {APIKey._meta.db_table} (id, prefix, hashed_key, created, name, revoked, expiry_date)"
                " SELECT p || '.' || h, p, h, now(), 'filler-' || i, false, NULL FROM ("
                "   SELECT i, '~' || lpad(to_hex(i), 7, '0') AS p, md5(%(salt)s || i) AS h"
                "   FROM generate_series(1, %(n)s) AS i) AS filler",
                {"salt": salt + "p", "n": max(0, keys_total - 1)},
            )
            _, keys["peer"] = APIKey.objects.create_key(name="bench")
            phases["peer keys"] = time.perf_counter() - started - sum(phases.values())
        cursor.execute("ANALYZE")
    seconds = time.perf_counter() - started
    phases["analyze"] = seconds - sum(phases.values())
    print("  seeding: " + ", ".join(f"{name} {t:.1f} s" for name, t in phases.items()), file=sys.stderr)
    forget_worker_state()  # what the bench measures starts from an empty cache and empty counters
    from bench.views import bench_key

    bench_key.cache_clear()  # the key the no-auth execute row stands in with: this scale's
    return {
        "org_slug": org.slug,
        "deployment_slug": target.slug,
        "scope_size": len(scope),
        "networks": len(ALLOWED_NETWORKS),
        "groups": len(bound),
        "group_size": min(GROUP_SIZE, max(1, len(deployments) // groups)),
        "keys": keys,
        "keys_total": keys_total,
        "deployments_total": deployments_total,
        "seed_seconds": seconds,
        "filler": (filler_deployment_keys, filler_global_keys),
        "population": known,
    }
