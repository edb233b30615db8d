"""From a presented key to what it may do: lookup by digest, status, scope.

The authentication class asks this module; it holds no hashing code of its own.
A verified key is a small frozen record (not a model instance), so it can be
cached and compared cheaply.
"""

from __future__ import annotations

import functools
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from django.conf import settings
from django.db import connection, models
from django.db.models import Q
from django.utils import timezone

from deployments.models import Deployment
from keys import crypto
from keys.cache import MISSING, local_cache
from keys.models import ApiKey, DeploymentKey, GlobalApiDeploymentKey, GlobalKeyDeployment, RetiredSecret
from organizations.models import Organization

LAST_USED_RESOLUTION_SECONDS = 60
MODEL_BY_KIND: dict[str, type[ApiKey]] = {"deployment": DeploymentKey, "global": GlobalApiDeploymentKey}


@dataclass(frozen=True)
class VerifiedKey:
    kind: crypto.KeyKind
    id: str
    name: str
    last4: str
    organization_id: int
    organization_slug: str
    organization_rate_limit: int | None
    deployment_id: int | None  # deployment keys only
    allow_all_deployments: bool
    is_active: bool
    expires_at: datetime | None
    revoked_at: datetime | None
    rate_limit_per_minute: int | None
    last_used_at: datetime | None
    # A rotated-out secret works until then (None: the key's current secret).
    retired_valid_until: datetime | None = None

    @property
    def key_masked(self) -> str:
        return crypto.mask(self.kind, self.last4)

    def failure_at(self, now: datetime) -> str | None:
        """The code of the first status rule (CONTRACT §4) this key breaks, or None."""
        if self.revoked_at is not None or (self.retired_valid_until is not None and self.retired_valid_until <= now):
            return "key_revoked"
        if self.expires_at is not None and self.expires_at <= now:
            return "key_expired"
        if not self.is_active:
            return "key_inactive"
        return None


_COMMON_FIELDS = ("id", "name", "last4", "is_active", "expires_at", "revoked_at", "rate_limit_per_minute", "last_used_at")


@dataclass(frozen=True)
class DeploymentRef:
    id: int
    organization_id: int
    slug: str
    is_active: bool
    runner: str


# What the lookup reads of the deployment a request names, beside the key: (name, Deployment field),
# then whether a global key's list links it.
_TARGET_COLUMNS = (("target_id", "id"), ("target_is_active", "is_active"), ("target_runner", "runner"))
_TARGET_FIELDS = (*(name for name, _ in _TARGET_COLUMNS), "target_in_scope")


class KeyLookupQuery:
    """One hand-written query that finds a digest among a kind's current and rotated-out secrets.

    Cold requests skip the ORM's query building (about as costly as the database
    round trip itself): the SQL is built once per connection vendor from the
    models' metadata, and values go through Django's own converters, so SQLite
    and PostgreSQL read alike.

    Given the slug of the deployment a request names, the same query also fetches
    that deployment of the key's organization and whether a selected-scope global
    key links it, so a cold request makes one query instead of three. What it
    learns of the deployment is only cached, and acted on after the key has passed.
    """

    def __init__(self, kind: crypto.KeyKind) -> None:
        self.kind = kind
        self._prepared: dict[tuple[str, bool], tuple[str, list[tuple[str, Any]]]] = {}

    def _columns(self) -> list[tuple[str, type[models.Model], str, str]]:
        """(name in the record, model, field, table alias) for each selected column."""
        model = MODEL_BY_KIND[self.kind]
        columns = [(name, model, name, "k") for name in _COMMON_FIELDS]
        if self.kind == "deployment":
            columns += [("deployment_id", model, "deployment", "k"), ("organization_id", Deployment, "organization", "d")]
        else:
            columns += [("allow_all_deployments", model, "allow_all_deployments", "k"), ("organization_id", model, "organization", "k")]
        columns += [
            ("organization_slug", Organization, "slug", "o"),
            ("organization_rate_limit", Organization, "default_rate_limit_per_minute", "o"),
        ]
        return columns

    def _prepare(self, with_target: bool) -> tuple[str, list[tuple[str, Any]]]:
        prepared = self._prepared.get((connection.vendor, with_target))
        if prepared is not None:
            return prepared
        qn = connection.ops.quote_name
        model = MODEL_BY_KIND[self.kind]
        columns = self._columns()
        select = ", ".join(
            f"{alias}.{qn(owner._meta.get_field(field).column)}" for _, owner, field, alias in columns
        )
        table = qn(model._meta.db_table)
        organizations = qn(Organization._meta.db_table)
        deployments = qn(Deployment._meta.db_table)
        if self.kind == "deployment":
            joins = (
                f"JOIN {deployments} d ON d.{qn('id')} = k.{qn('deployment_id')} "
                f"JOIN {organizations} o ON o.{qn('id')} = d.{qn('organization_id')}"
            )
        else:
            joins = f"JOIN {organizations} o ON o.{qn('id')} = k.{qn('organization_id')}"
        if with_target:
            # t: the named deployment of the key's own organization, if it exists.
            joins += f" LEFT JOIN {deployments} t ON t.{qn('organization_id')} = o.{qn('id')} AND t.{qn('slug')} = %s"
            select += "".join(f", t.{qn(Deployment._meta.get_field(field).column)}" for _, field in _TARGET_COLUMNS)
            if self.kind == "global":
                links = qn(GlobalKeyDeployment._meta.db_table)
                select += (
                    f", (SELECT 1 FROM {links} g WHERE g.{qn('key_id')} = k.{qn('id')}"
                    f" AND g.{qn('deployment_id')} = t.{qn('id')})"
                )
            else:
                select += ", NULL"
        retired = RetiredSecret._meta
        valid_until = qn(retired.get_field("valid_until").column)
        sql = (
            f"SELECT {select}, NULL FROM {table} k {joins} WHERE k.{qn('digest')} = %s "
            f"UNION ALL "
            f"SELECT {select}, r.{valid_until} FROM {qn(retired.db_table)} r "
            f"JOIN {table} k ON k.{qn('id')} = r.{qn('key_id')} {joins} "
            f"WHERE r.{qn('digest')} = %s AND r.{qn('key_kind')} = %s"
        )
        selected = list(columns)
        if with_target:
            selected += [(name, Deployment, field, "t") for name, field in _TARGET_COLUMNS]
        converters = [(name, _converters(owner, field, alias)) for name, owner, field, alias in selected]
        if with_target:
            converters.append(("target_in_scope", (None, [])))
        converters.append(("retired_valid_until", _converters(RetiredSecret, "valid_until", "r")))
        self._prepared[(connection.vendor, with_target)] = (sql, converters)
        return sql, converters

    def run(self, key_digest: str, deployment_slug: str | None = None) -> tuple[VerifiedKey | None, dict[str, Any]]:
        """The key with this digest (None when no key ever had it), and what was learnt of the named deployment."""
        with_target = deployment_slug is not None
        sql, converters = self._prepare(with_target)
        params: list[Any] = [key_digest, key_digest, self.kind]
        if with_target:
            params = [deployment_slug, key_digest, deployment_slug, key_digest, self.kind]
        with _lookup_cursor() as cursor:
            cursor.execute(sql, params)
            row = cursor.fetchone()
        if row is None:
            return None, {}
        values: dict[str, Any] = {}
        for value, (name, (column, found)) in zip(row, converters):
            for converter in found:
                value = converter(value, column, connection)
            values[name] = value
        target = {name: values.pop(name) for name in _TARGET_FIELDS if name in values}
        values["id"] = str(values["id"])
        values["is_active"] = bool(values["is_active"])
        values["allow_all_deployments"] = bool(values.get("allow_all_deployments", False))
        values.setdefault("deployment_id", None)
        return VerifiedKey(kind=self.kind, **values), target


def _lookup_cursor() -> Any:
    """A cursor for the key lookup: on PostgreSQL, one that prepares its statement on the server.

    The server then plans the lookup once per connection instead of once per cold request.
    Elsewhere, or with KEYSCOPE_PREPARED_KEY_LOOKUP=false, it is Django's own cursor.
    """
    if connection.vendor != "postgresql" or not settings.KEYSCOPE_PREPARED_KEY_LOOKUP:
        return connection.cursor()
    # What connection.cursor() does, with a preparing cursor on the same connection: the same
    # health check, error wrapping and query logging (the lookup still counts in assertNumQueries).
    connection.close_if_health_check_failed()
    connection.ensure_connection()
    with connection.wrap_database_errors:
        return connection._prepare_cursor(_preparing_cursor_class()(connection.connection))


@functools.cache
def _preparing_cursor_class() -> type:
    import psycopg

    class LoggedQuery:
        """What Django's query log reads of a cursor (`_query.query`), composed only if it is read."""

        def __init__(self, sql: str, params: Any) -> None:
            self.sql, self.params = sql, params

        @property
        def query(self) -> bytes:
            return connection.ops.compose_sql(self.sql, self.params).encode()

    class PreparingCursor(psycopg.Cursor):
        """Binds parameters on the server and has psycopg prepare each statement on its first run."""

        def execute(self, query: Any, params: Any = None, *, prepare: bool | None = None, binary: bool | None = None) -> Any:
            result = super().execute(query, params, prepare=True, binary=binary)
            self._query = LoggedQuery(query, params)
            return result

    return PreparingCursor


def _converters(model: type[models.Model], field: str, alias: str) -> tuple[Any, list[Any]]:
    """A column's Django converters, so raw rows read as the ORM would read them."""
    column = model._meta.get_field(field).get_col(alias)
    return column, connection.ops.get_db_converters(column) + column.get_db_converters(connection)


_LOOKUPS = {kind: KeyLookupQuery(kind) for kind in MODEL_BY_KIND}


def lookup(kind: crypto.KeyKind, key_digest: str) -> VerifiedKey | None:
    """The key with this digest, current or rotated out, in one query; None when no key ever had it."""
    return _LOOKUPS[kind].run(key_digest)[0]


UNKNOWN = "unknown"  # the negative entry: no key ever had this digest


@dataclass(frozen=True, slots=True)
class Target:
    """The deployment a request names, as the cold key lookup read it beside the key."""

    slug: str
    deployment: DeploymentRef | None  # None: the key's organization has no deployment of that slug
    in_scope: bool | None  # whether a global key's list holds it; None for other keys


def verify(candidate: str, deployment_slug: str | None = None) -> tuple[VerifiedKey | None, Target | None]:
    """The key a client offered (None when it is malformed or no key ever had it), and its Target.

    A warm key is answered from this worker's cache by its digest alone: only a
    well-formed key ever gets an entry, so its format needs no second check. A
    cold one has its format and checksum checked first, so junk never reaches the
    database, then is looked up, with the deployment `deployment_slug` when given:
    the Target, for a key that passes, so the request needs no second query even
    with the cache off.
    """
    if len(candidate) != crypto.KEY_LENGTH or not candidate.isascii():
        return None, None
    key_digest = crypto.digest(candidate)
    entry = local_cache.get(("key", key_digest))
    if entry is UNKNOWN:
        return None, None
    if entry is not MISSING:
        return entry, None
    kind = crypto.key_kind(candidate)
    if kind is None:
        return None, None
    generation = local_cache.generation
    key, fetched = _LOOKUPS[kind].run(key_digest, deployment_slug)
    local_cache.set(("key", key_digest), UNKNOWN if key is None else key, generation)
    # Only a key that passes makes use of the deployment read beside it.
    if key is None or deployment_slug is None or key.failure_at(timezone.now()) is not None:
        return key, None
    return key, _remember_target(key, deployment_slug, fetched, generation)


def _remember_target(key: VerifiedKey, slug: str, fetched: dict[str, Any], generation: int) -> Target:
    """Cache what the lookup fetched of the named deployment, as find_deployment and can_execute would."""
    if fetched["target_id"] is None:
        local_cache.set(("deployment", key.organization_id, slug), None, generation)
        return Target(slug=slug, deployment=None, in_scope=None)
    deployment = DeploymentRef(
        id=fetched["target_id"],
        organization_id=key.organization_id,
        slug=slug,
        is_active=bool(fetched["target_is_active"]),
        runner=fetched["target_runner"],
    )
    local_cache.set(("deployment", key.organization_id, slug), deployment, generation)
    in_scope = None
    if key.kind == "global" and not key.allow_all_deployments:
        in_scope = fetched["target_in_scope"] is not None
        local_cache.set(("scope", key.id, deployment.id), in_scope, generation)
    return Target(slug=slug, deployment=deployment, in_scope=in_scope)


def find_deployment(organization_id: int, slug: str) -> DeploymentRef | None:
    """The deployment `slug` of an organization, cached per worker like keys."""
    cache_key = ("deployment", organization_id, slug)
    entry = local_cache.get(cache_key)
    if entry is not MISSING:
        return entry
    generation = local_cache.generation
    row = (
        Deployment.objects.filter(organization_id=organization_id, slug=slug)
        .values_list("id", "organization_id", "slug", "is_active", "runner")
        .first()
    )
    deployment = DeploymentRef(*row) if row is not None else None
    local_cache.set(cache_key, deployment, generation)
    return deployment


def can_execute(
    key: VerifiedKey, deployment_id: int, deployment_organization_id: int, known: bool | None = None
) -> bool:
    """Whether the key's scope holds this deployment (`known`: what the key lookup read of it).

    A selected-scope key costs one indexed EXISTS per (key, deployment) pair at most,
    cached per pair, so the check stays flat however many deployments the key lists.
    """
    if deployment_organization_id != key.organization_id:
        return False
    if key.kind == "deployment":
        return key.deployment_id == deployment_id
    if key.allow_all_deployments:
        return True
    if known is not None:
        return known
    cache_key = ("scope", key.id, deployment_id)
    entry = local_cache.get(cache_key)
    if entry is not MISSING:
        return entry
    generation = local_cache.generation
    allowed = GlobalKeyDeployment.objects.filter(key_id=key.id, deployment_id=deployment_id).exists()
    local_cache.set(cache_key, allowed, generation)
    return allowed


def scope_slugs(key: VerifiedKey) -> list[str]:
    """The slugs a key opens, sorted (`[]` for an allow-all key), cached per worker like keys."""
    if key.kind == "global" and key.allow_all_deployments:
        return []
    cache_key = ("scope-slugs", key.id)
    entry = local_cache.get(cache_key)
    if entry is not MISSING:
        return list(entry)
    generation = local_cache.generation
    if key.kind == "deployment":
        slugs = list(Deployment.objects.filter(pk=key.deployment_id).values_list("slug", flat=True))
    else:
        slugs = sorted(GlobalKeyDeployment.objects.filter(key_id=key.id).values_list("deployment__slug", flat=True))
    local_cache.set(cache_key, tuple(slugs), generation)
    return slugs


_last_touched: dict[str, datetime] = {}
_LAST_USED_RESOLUTION = timedelta(seconds=LAST_USED_RESOLUTION_SECONDS)


def touch_last_used(key: VerifiedKey, now: datetime | None = None) -> None:
    """Write `last_used_at` at most once a minute per key and worker, never once per request."""
    now = now or timezone.now()
    seen = _last_touched.get(key.id) or key.last_used_at
    if seen is not None and now - seen < _LAST_USED_RESOLUTION:
        return
    _last_touched[key.id] = now
    threshold = now - _LAST_USED_RESOLUTION
    # The condition keeps several workers from all writing in the same minute.
    MODEL_BY_KIND[key.kind].objects.filter(pk=key.id).filter(
        Q(last_used_at__isnull=True) | Q(last_used_at__lte=threshold)
    ).update(last_used_at=now)
