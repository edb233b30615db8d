"""From a presented key to what it may do: format, lookup by digest (keys/lookup.py), scope.

The authentication class asks this module; it holds no hashing code of its own.
Answers are kept in this worker's verification cache (keys/verification_cache.py).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from django.conf import settings
from django.db.models import Value
from django.utils import timezone

from deployments.models import Deployment, DeploymentGroup
from keys import crypto
from keys.digest_filter import digest_filter
from keys.lookup import DeploymentRef, VerifiedKey, lookup_for
from keys.models import deployments_in_scope
from keys.verification_cache import MISSING, check_stamp, local_cache

UNKNOWN = "unknown"  # the negative entry: no key ever had this digest


@dataclass(frozen=True, slots=True)
class Target:
    """The deployment a request names, as the cold key lookup read it beside the key."""

    slug: str
    deployment: DeploymentRef | None  # None: the key's organization has no deployment of that slug
    in_scope: bool | None  # whether a global key's list or groups hold it; None for other keys


@dataclass(frozen=True, slots=True)
class Screened:
    """What this worker can tell of a presented key without a query.

    `key`: its cached verification. `found`: well formed, not cached, and maybe
    some key's (the digest filter does not rule it out): to be looked up.
    Neither: refused with no query, as malformed or as no key's.
    """

    key: VerifiedKey | None = None
    found: crypto.Candidate | None = None

    @property
    def refused(self) -> bool:
        return self.key is None and self.found is None


REFUSED = Screened()


def screen(candidate: str) -> Screened:
    """The part of verify() that needs no query: the cache, the format and checksum, the digest filter.

    A warm key is answered from this worker's cache by its digest alone: only a
    well-formed key ever gets an entry, so its format needs no second check. A
    cold one has its format and checksum checked first, so junk never reaches the
    database, and one whose digest this worker's digest filter knows no key has
    is unknown with no query either (keys/digest_filter.py). An imported UUID
    (any case) takes the same path; with KEYSCOPE_ACCEPT_UUID_KEYS=false it is
    refused here, before the cache and the database.
    """
    accept_uuid_keys = settings.KEYSCOPE_ACCEPT_UUID_KEYS
    key_digest = crypto.presented_digest(candidate, accept_uuid_keys=accept_uuid_keys)
    if key_digest is None:
        return REFUSED
    check_stamp()
    entry = local_cache.get(("key", key_digest))
    if entry is UNKNOWN:
        return REFUSED
    if entry is not MISSING:
        return Screened(key=entry)
    found = crypto.well_formed(candidate, accept_uuid_keys=accept_uuid_keys)
    if found is None or not digest_filter.might_hold(found.digest):
        return REFUSED  # malformed, or no key has it (the filter is current): nothing cached
    return Screened(found=found)


def verify(
    candidate: str,
    deployment_slug: str | None = None,
    before_lookup: Callable[[], None] | None = None,
    screened: Screened | None = None,
) -> tuple[VerifiedKey | None, Target | None]:
    """The key a client offered (None when it is malformed or no key ever had it), and its Target.

    First screen() (or what it answered for this candidate moments ago:
    `screened`); a key it leaves to look up may then be refused by
    `before_lookup` (by raising), then it is looked up, with the deployment
    `deployment_slug` when given: the Target, for a key that passes, so the
    request needs no second query even with the cache off. An imported UUID's
    one lookup searches both kinds of key.
    """
    if screened is None:
        screened = screen(candidate)
    if screened.key is not None:
        return screened.key, None
    found = screened.found
    if found is None:
        return None, None
    if before_lookup is not None:
        before_lookup()
    generation = local_cache.generation
    key, fetched = lookup_for(found).run(found.digest, deployment_slug)
    local_cache.set(("key", found.digest), UNKNOWN if key is None else key, generation, negative=key is None)
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
    cached per pair, so the check stays flat however many deployments the key lists
    or its groups hold.
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
    allowed = deployments_in_scope(key.id, key.organization_id).filter(pk=deployment_id).exists()
    local_cache.set(cache_key, allowed, generation)
    return allowed


def scope_slugs(key: VerifiedKey) -> tuple[list[str], list[str]]:
    """The slugs of the deployments a key opens now and of its groups, each sorted, cached per worker like keys.

    Both are `[]` for an allow-all key; a deployment key opens its one deployment and has no groups.
    """
    if key.kind == "global" and key.allow_all_deployments:
        return [], []
    cache_key = ("scope-slugs", key.id)
    entry = local_cache.get(cache_key)
    if entry is not MISSING:
        return list(entry[0]), list(entry[1])
    generation = local_cache.generation
    groups: list[str] = []
    if key.kind == "deployment":
        slugs = list(Deployment.objects.filter(pk=key.deployment_id).values_list("slug", flat=True))  # type: ignore[misc]  # set for deployment keys
    else:
        # Both lists in one query: what the key opens, and the groups it is bound to.
        # A compound query takes no ORDER BY in its parts on SQLite: both sides drop their default ordering.
        opened = deployments_in_scope(key.id, key.organization_id).annotate(is_group=Value(False)).order_by()
        bound = DeploymentGroup.objects.filter(global_key_links__key_id=key.id).annotate(is_group=Value(True)).order_by()  # type: ignore[misc]  # a UUID as text
        rows = list(opened.values_list("is_group", "slug").union(bound.values_list("is_group", "slug"), all=True))
        slugs = sorted(slug for is_group, slug in rows if not is_group)
        groups = sorted(slug for is_group, slug in rows if is_group)
    local_cache.set(cache_key, (tuple(slugs), tuple(groups)), generation)
    return slugs, groups
