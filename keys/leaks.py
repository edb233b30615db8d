"""What keyscope does when a key leaks: stop it, by its secret or at its holder's request, and tell the admins.

Three entry points stop keys by their secret (a keyscope key, or an imported
UUID where those are accepted): anonymous reports
(POST /api/v1/credentials/revoke/), GitHub's secret scanning alerts and
`manage.py keys revoke --secret-stdin`. A reported current secret revokes its key;
a reported secret that a rotation replaced only ends its grace, so an old secret
cannot take down the key that replaced it. Strings that cannot be keys cost no
query; the rest cost one query per kind of key for the whole batch. Every write
goes through the key service, which audits it and flushes the verification caches.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from datetime import datetime

from django.conf import settings
from django.db.models import BooleanField, DateTimeField, QuerySet, Value
from django.utils import timezone

from keys import crypto
from keys.lookup import MODEL_BY_KIND, VerifiedKey
from keys.models import ApiKey, DeploymentKey, GlobalApiDeploymentKey, RetiredSecret, RevocationReason
from keys.notifications import StoppedKey, notify_stopped
from keys.services import key_end_grace, key_revoke

# Digests per IN (...) list: a report holds at most 1000 strings, a GitHub alert may hold more.
LOOKUP_CHUNK = 1000


@dataclass(frozen=True)
class Reported:
    """A secret someone says has leaked, and where it was seen (for the admins' email)."""

    secret: str
    reported_from: str


@dataclass(frozen=True)
class Match:
    """A reported secret that is, or was, a key's: current (maybe revoked) or replaced by a rotation."""

    kind: crypto.KeyKind
    key_id: uuid.UUID
    retired: bool
    revoked_at: datetime | None  # of the key, for a current secret
    valid_until: datetime | None  # of a replaced secret


@dataclass
class Outcome:
    matches: dict[str, Match]  # by digest: every reported secret that is or was a key's
    stopped: list[StoppedKey] = field(default_factory=list)  # what this report changed

    def known(self, secret: str) -> bool:
        """Whether `secret` is or was a key's secret: current, replaced by a rotation, or revoked."""
        return any(digest in self.matches for _kind, digest in secret_digests(secret))


def secret_digests(secret: str) -> tuple[tuple[crypto.KeyKind, str], ...]:
    """Where a reported secret may be stored; nothing for a string that cannot be a key here.

    A keyscope key names its kind; a UUID, where imported keys are accepted, may be either.
    """
    return crypto.lookup_digests(secret, accept_uuid_keys=settings.KEYSCOPE_ACCEPT_UUID_KEYS)


def find_secrets(secrets: Iterable[str]) -> dict[str, Match]:
    """The reported secrets that are or were keys' secrets, by digest: one query per kind of key."""
    digests: dict[crypto.KeyKind, set[str]] = {}
    for secret in secrets:
        for kind, digest in secret_digests(secret):
            digests.setdefault(kind, set()).add(digest)
    matches: dict[str, Match] = {}
    for kind, wanted in digests.items():
        ordered = sorted(wanted)
        for start in range(0, len(ordered), LOOKUP_CHUNK):
            for digest, key_id, retired, revoked_at, valid_until in _secrets_query(
                kind, ordered[start : start + LOOKUP_CHUNK]
            ):
                # A digest is either a key's current secret or a replaced one, never both.
                matches[digest] = Match(kind, key_id, bool(retired), revoked_at, valid_until)
    return matches


def _secrets_query(kind: crypto.KeyKind, digests: list[str]) -> QuerySet:
    """Current and replaced secrets of one kind among `digests`, in one UNION ALL query."""
    no_time = Value(None, output_field=DateTimeField())
    current = (
        MODEL_BY_KIND[kind]
        .objects.filter(digest__in=digests)
        .order_by()  # a compound query's parts may not be ordered
        .values_list("digest", "id", Value(False, output_field=BooleanField()), "revoked_at", no_time)
    )
    retired = (
        RetiredSecret.objects.filter(key_kind=kind, digest__in=digests)
        .order_by()
        .values_list("digest", "key_id", Value(True, output_field=BooleanField()), no_time, "valid_until")
    )
    return current.union(retired, all=True)


def _keys(kind: crypto.KeyKind, ids: Iterable[uuid.UUID]) -> list[ApiKey]:
    """The keys, with what the admins' email says of them."""
    if kind == "deployment":
        return list(DeploymentKey.objects.filter(pk__in=ids).select_related("deployment__organization"))
    return list(
        GlobalApiDeploymentKey.objects.filter(pk__in=ids).select_related("organization").prefetch_related("deployments")
    )


def stop_reported(reports: Sequence[Reported], *, ip_address: str | None = None) -> Outcome:
    """Revoke the keys whose current secret was reported; end the grace of reported replaced secrets.

    Audited as `revoked` (or `changed`, for a grace) with actor null and the reason
    "reported as leaked"; each organization's admins get one email for the batch.
    Reporting a revoked key, or a replaced secret whose grace is over, changes nothing.
    """
    matches = find_secrets(report.secret for report in reports)
    reported_from: dict[str, str] = {}
    for report in reports:
        for _kind, digest in secret_digests(report.secret):
            reported_from.setdefault(digest, report.reported_from)
    now = timezone.now()
    revoke: dict[tuple[crypto.KeyKind, uuid.UUID], str] = {}
    end_grace: dict[tuple[crypto.KeyKind, uuid.UUID], str] = {}
    for digest, match in matches.items():
        target = (match.kind, match.key_id)
        if not match.retired and match.revoked_at is None:
            revoke.setdefault(target, reported_from[digest])
        elif match.retired and match.valid_until is not None and match.valid_until > now:
            end_grace.setdefault(target, reported_from[digest])
    outcome = Outcome(matches=matches)
    for kind in crypto.KIND_BY_PREFIX.values():
        ids = {key_id for key_kind, key_id in [*revoke, *end_grace] if key_kind == kind}
        for key in _keys(kind, ids) if ids else []:
            target = (kind, key.pk)
            if target in revoke:  # revoking ends any grace too
                stopped = _revoke(key, RevocationReason.REPORTED_AS_LEAKED, revoke[target], ip_address)
            else:
                stopped = _end_grace(key, RevocationReason.REPORTED_AS_LEAKED, end_grace[target], ip_address)
            if stopped is not None:
                outcome.stopped.append(stopped)
    notify_stopped(outcome.stopped)
    return outcome


def _revoke(key: ApiKey, reason: RevocationReason, reported_from: str, ip_address: str | None) -> StoppedKey | None:
    started = timezone.now()
    revoked = key_revoke(key=key, actor=None, ip_address=ip_address, reason=reason)
    if revoked.revoked_at is None or revoked.revoked_at < started:
        return None  # revoked meanwhile, by someone else: theirs to tell
    key.revoked_at, key.revocation_reason = revoked.revoked_at, revoked.revocation_reason
    return StoppedKey(key=key, stopped="key", at=revoked.revoked_at, reason=reason, reported_from=reported_from)


def _end_grace(key: ApiKey, reason: RevocationReason, reported_from: str, ip_address: str | None) -> StoppedKey | None:
    ended_at = key_end_grace(key=key, actor=None, ip_address=ip_address, reason=reason)
    if ended_at is None:
        return None
    return StoppedKey(key=key, stopped="previous_secret", at=ended_at, reason=reason, reported_from=reported_from)


def stop_by_holder(key: VerifiedKey, *, ip_address: str | None) -> datetime:
    """The calling secret stops working for good; return when it did.

    A key's current secret revokes the key ("revoked by its holder"). A secret that a
    rotation replaced, still in its grace, only ends that grace, as a report of it would:
    whoever holds the new secret keeps it.
    """
    found = _keys(key.kind, [uuid.UUID(key.id)])
    if not found:  # deleted since it was verified: it works no longer either
        return timezone.now()
    row = found[0]
    reported_from = f"its holder, through POST /api/v1/key/revoke/ from {ip_address or 'an unknown address'}"
    reason = RevocationReason.REVOKED_BY_HOLDER
    stopped = (
        _end_grace(row, reason, reported_from, ip_address)
        if key.retired_valid_until is not None
        else _revoke(row, reason, reported_from, ip_address)
    )
    if stopped is None:  # stopped meanwhile by another request
        return row.revoked_at or timezone.now()
    notify_stopped([stopped])
    return stopped.at
