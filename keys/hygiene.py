"""Key hygiene at a glance: what an organization's admins should look at, for the admin's index.

Keys expiring within a week, keys unused for a month, keys whose rotation's grace still
runs (the old secret works) and recent refusals of known keys (revoked, out of scope, not
allowed from the address). Each list shows its first few, with how many there are.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any, cast

from django.db.models import Q, QuerySet
from django.urls import reverse
from django.utils import timezone

from keys import refusals
from keys.models import MODEL_BY_KIND, ApiKey, DeploymentKey, KeyQuerySet, KeyStatus
from organizations.models import Organization

EXPIRING_WITHIN = timedelta(days=7)
UNUSED_FOR = timedelta(days=30)
SHOWN = 5  # entries per list
READ_AT_MOST = 500  # rows read per list and kind; the count says "500 or more" past it


@dataclass
class Entry:
    name: str
    url: str
    kind: str
    at: datetime | None  # what the entry is about: the expiry, the last use, the end of the grace, the refusal
    note: str = ""


@dataclass
class Findings:
    entries: list[Entry] = field(default_factory=list)
    count: int = 0

    @property
    def shown(self) -> list[Entry]:
        return self.entries[:SHOWN]

    @property
    def more(self) -> int:
        return self.count - len(self.shown)


@dataclass
class OrganizationHygiene:
    organization: Organization
    expiring: Findings = field(default_factory=Findings)
    unused: Findings = field(default_factory=Findings)
    in_grace: Findings = field(default_factory=Findings)
    refusals: Findings = field(default_factory=Findings)

    @property
    def anything(self) -> bool:
        return any(findings.count for findings in (self.expiring, self.unused, self.in_grace, self.refusals))


def _organization_path(model: type[ApiKey]) -> str:
    return "deployment__organization_id" if model is DeploymentKey else "organization_id"


def _key_url(model: type[ApiKey], key_id: Any) -> str:
    return reverse(f"admin:keys_{model._meta.model_name}_change", args=[key_id])


def _add(report: dict[int, OrganizationHygiene], which: str, organization_id: int, entry: Entry) -> None:
    findings: Findings = getattr(report[organization_id], which)
    findings.entries.append(entry)
    findings.count += 1


def hygiene_for(organizations: Iterable[Organization], now: datetime | None = None) -> list[OrganizationHygiene]:
    """The findings of each organization given (the caller decides whose: the user's, never anyone else's)."""
    now = now or timezone.now()
    report = {organization.pk: OrganizationHygiene(organization) for organization in organizations}
    if not report:
        return []
    for model in MODEL_BY_KIND.values():
        path = _organization_path(model)
        keys = cast(KeyQuerySet, model.objects.filter(**{f"{path}__in": list(report)}))
        active = keys.with_status(KeyStatus.ACTIVE, now)
        lists: list[tuple[str, QuerySet, str]] = [
            ("expiring", active.filter(expires_at__lte=now + EXPIRING_WITHIN).order_by("expires_at"), "expires_at"),
            (
                "unused",
                active.filter(
                    Q(last_used_at__lt=now - UNUSED_FOR) | Q(last_used_at__isnull=True, created_at__lt=now - UNUSED_FOR)
                ).order_by("last_used_at", "created_at"),
                "last_used_at",
            ),
            (
                "in_grace",
                keys.filter(revoked_at__isnull=True)
                .with_previous_key_expiry(now)
                .filter(previous_key_valid_until__isnull=False)
                .order_by("previous_key_valid_until"),
                "previous_key_valid_until",
            ),
        ]
        for which, queryset, at in lists:
            for row in queryset.values("pk", "name", path, at)[:READ_AT_MOST]:
                _add(report, which, row[path], Entry(row["name"], _key_url(model, row["pk"]), model.KIND, row[at]))
    _add_refusals(report, now)
    for hygiene in report.values():
        hygiene.expiring.entries.sort(key=lambda entry: entry.at or now)
        hygiene.in_grace.entries.sort(key=lambda entry: entry.at or now)
        hygiene.unused.entries.sort(key=lambda entry: (entry.at is not None, entry.at or now))
        hygiene.refusals.entries.sort(key=lambda entry: entry.at or now, reverse=True)
    return sorted(report.values(), key=lambda hygiene: hygiene.organization.name.casefold())


def _add_refusals(report: dict[int, OrganizationHygiene], now: datetime) -> None:
    found = refusals.recent_refusals(report, now)
    names: dict[tuple[str, str], str] = {}
    for kind, model in MODEL_BY_KIND.items():
        wanted = {refusal.key_id for refusal in found if refusal.key_kind == kind}
        for key_id, name in model.objects.filter(pk__in=wanted).values_list("pk", "name"):
            names[(kind, str(key_id))] = name
    for refusal in found:
        name = names.get((refusal.key_kind, refusal.key_id))
        if name is None:  # the key was deleted since
            continue
        model = MODEL_BY_KIND[refusal.key_kind]
        times = "once" if refusal.count == 1 else f"{refusal.count} times"
        note = f"{refusal.reason}, {times}" + (f", from {refusal.last_client_ip}" if refusal.last_client_ip else "")
        entry = Entry(name, _key_url(model, refusal.key_id), refusal.key_kind, refusal.last_at, note)
        _add(report, "refusals", refusal.organization_id, entry)
