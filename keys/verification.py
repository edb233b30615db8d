"""From a presented key to what it may do: lookup by digest, status, scope.

The authentication class asks this module; it holds no hashing code of its own.
A verified key is a small frozen record (not a model instance), so it can be
cached and compared cheaply.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta

from django.db.models import Q
from django.utils import timezone

from deployments.models import Deployment
from keys import crypto
from keys.cache import MISSING, local_cache
from keys.models import ApiKey, DeploymentKey, GlobalApiDeploymentKey, GlobalKeyDeployment, RetiredSecret

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
_FIELDS_BY_KIND = {
    "deployment": (
        *_COMMON_FIELDS,
        "deployment_id",
        "deployment__organization_id",
        "deployment__organization__slug",
        "deployment__organization__default_rate_limit_per_minute",
    ),
    "global": (
        *_COMMON_FIELDS,
        "allow_all_deployments",
        "organization_id",
        "organization__slug",
        "organization__default_rate_limit_per_minute",
    ),
}


def _record(kind: crypto.KeyKind, row: dict, retired_valid_until: datetime | None = None) -> VerifiedKey:
    if kind == "deployment":
        organization_id = row["deployment__organization_id"]
        organization_slug = row["deployment__organization__slug"]
        organization_rate_limit = row["deployment__organization__default_rate_limit_per_minute"]
    else:
        organization_id = row["organization_id"]
        organization_slug = row["organization__slug"]
        organization_rate_limit = row["organization__default_rate_limit_per_minute"]
    return VerifiedKey(
        kind=kind,
        id=str(row["id"]),
        name=row["name"],
        last4=row["last4"],
        organization_id=organization_id,
        organization_slug=organization_slug,
        organization_rate_limit=organization_rate_limit,
        deployment_id=row.get("deployment_id"),
        allow_all_deployments=bool(row.get("allow_all_deployments", False)),
        is_active=row["is_active"],
        expires_at=row["expires_at"],
        revoked_at=row["revoked_at"],
        rate_limit_per_minute=row["rate_limit_per_minute"],
        last_used_at=row["last_used_at"],
        retired_valid_until=retired_valid_until,
    )


def lookup(kind: crypto.KeyKind, key_digest: str) -> VerifiedKey | None:
    """The key with this digest, current or rotated out; None when no key ever had it."""
    model = MODEL_BY_KIND[kind]
    fields = _FIELDS_BY_KIND[kind]
    row = model.objects.filter(digest=key_digest).values(*fields).first()
    if row is not None:
        return _record(kind, row)
    retired = RetiredSecret.objects.filter(digest=key_digest, key_kind=kind).values("key_id", "valid_until").first()
    if retired is None:
        return None
    row = model.objects.filter(pk=retired["key_id"]).values(*fields).first()
    if row is None:
        return None
    return _record(kind, row, retired_valid_until=retired["valid_until"])


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
