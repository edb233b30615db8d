"""From a presented key to what it may do: lookup by digest, status, scope.

The authentication class asks this module; it holds no hashing code of its own.
A verified key is a small frozen record (not a model instance), so it can be
cached and compared cheaply.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any
from datetime import datetime, timedelta

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


class KeyLookupQuery:
    """One hand-written query that finds a digest among a kind's current and rotated-out secrets.

    Cold requests skip the ORM's query building (about as costly as the database
    round trip itself): the SQL is built once per connection vendor from the
    models' metadata, and values go through Django's own converters, so SQLite
    and PostgreSQL read alike.
    """

    def __init__(self, kind: crypto.KeyKind) -> None:
        self.kind = kind
        self._prepared: dict[str, tuple[str, list[tuple[str, Any]]]] = {}

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

    def _prepare(self) -> tuple[str, list[tuple[str, Any]]]:
        prepared = self._prepared.get(connection.vendor)
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
        if self.kind == "deployment":
            joins = (
                f"JOIN {qn(Deployment._meta.db_table)} d ON d.{qn('id')} = k.{qn('deployment_id')} "
                f"JOIN {organizations} o ON o.{qn('id')} = d.{qn('organization_id')}"
            )
        else:
            joins = f"JOIN {organizations} o ON o.{qn('id')} = k.{qn('organization_id')}"
        retired = RetiredSecret._meta
        valid_until = qn(retired.get_field("valid_until").column)
        sql = (
            f"SELECT {select}, NULL FROM {table} k {joins} WHERE k.{qn('digest')} = %s "
            f"UNION ALL "
            f"SELECT {select}, r.{valid_until} FROM {qn(retired.db_table)} r "
            f"JOIN {table} k ON k.{qn('id')} = r.{qn('key_id')} {joins} "
            f"WHERE r.{qn('digest')} = %s AND r.{qn('key_kind')} = %s"
        )
        converters = []
        for name, owner, field, alias in [*columns, ("retired_valid_until", RetiredSecret, "valid_until", "r")]:
            column = owner._meta.get_field(field).get_col(alias)
            found = connection.ops.get_db_converters(column) + column.get_db_converters(connection)
            converters.append((name, (column, found)))
        self._prepared[connection.vendor] = (sql, converters)
        return sql, converters

    def run(self, key_digest: str) -> VerifiedKey | None:
        sql, converters = self._prepare()
        with connection.cursor() as cursor:
            cursor.execute(sql, [key_digest, key_digest, self.kind])
            row = cursor.fetchone()
        if row is None:
            return None
        values: dict[str, Any] = {}
        for value, (name, (column, found)) in zip(row, converters):
            for converter in found:
                value = converter(value, column, connection)
            values[name] = value
        values["id"] = str(values["id"])
        values["is_active"] = bool(values["is_active"])
        values["allow_all_deployments"] = bool(values.get("allow_all_deployments", False))
        values.setdefault("deployment_id", None)
        return VerifiedKey(kind=self.kind, **values)


_LOOKUPS = {kind: KeyLookupQuery(kind) for kind in MODEL_BY_KIND}


def lookup(kind: crypto.KeyKind, key_digest: str) -> VerifiedKey | None:
    """The key with this digest, current or rotated out, in one query; None when no key ever had it."""
    return _LOOKUPS[kind].run(key_digest)


UNKNOWN = "unknown"  # the negative entry: no key ever had this digest


def cached_lookup(kind: crypto.KeyKind, key_digest: str) -> VerifiedKey | None:
    """`lookup`, answered from this worker's cache when it can be (a miss is not an unknown key)."""
    entry = local_cache.get(("key", key_digest))
    if entry is UNKNOWN:
        return None
    if entry is not MISSING:
        return entry
    generation = local_cache.generation
    key = lookup(kind, key_digest)
    local_cache.set(("key", key_digest), UNKNOWN if key is None else key, generation)
    return key


@dataclass(frozen=True)
class DeploymentRef:
    id: int
    organization_id: int
    slug: str
    is_active: bool
    runner: str


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


def can_execute(key: VerifiedKey, deployment_id: int, deployment_organization_id: int) -> bool:
    """Whether the key's scope holds this deployment.

    A selected-scope key costs one indexed EXISTS per (key, deployment) pair at most,
    cached per pair, so the check stays flat however many deployments the key lists.
    """
    if deployment_organization_id != key.organization_id:
        return False
    if key.kind == "deployment":
        return key.deployment_id == deployment_id
    if key.allow_all_deployments:
        return True
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


def touch_last_used(key: VerifiedKey, now: datetime | None = None) -> None:
    """Write `last_used_at` at most once a minute per key and worker, never once per request."""
    now = now or timezone.now()
    threshold = now - timedelta(seconds=LAST_USED_RESOLUTION_SECONDS)
    seen = _last_touched.get(key.id) or key.last_used_at
    if seen is not None and seen > threshold:
        return
    _last_touched[key.id] = now
    # The condition keeps several workers from all writing in the same minute.
    MODEL_BY_KIND[key.kind].objects.filter(pk=key.id).filter(
        Q(last_used_at__isnull=True) | Q(last_used_at__lte=threshold)
    ).update(last_used_at=now)
