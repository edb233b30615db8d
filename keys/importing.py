"""Moving keys in from Unstract: one file of UUID keys, validated as the API would, stored at once.

The file is `{"deployment_keys": [...], "global_keys": [...]}` (the README's SQL
writes it from Unstract's tables). Every row is checked by the management API's
own input serializers and stored through keys/services.py, so names, scopes and
the audit trail follow the same rules as a key made through the API. Only the
sha256 of each UUID's canonical text is stored. The digest decides what is
already there: a key imported before, even one rotated out since, is skipped,
so running a file twice creates nothing new.

Nothing here prints, logs or returns a key; errors name a row's position and
field, never its value.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from typing import Any

from django.core.exceptions import ValidationError
from django.db import IntegrityError, transaction
from rest_framework import serializers

from deployments.models import Deployment
from keys import crypto
from keys.models import MODEL_BY_KIND, ApiKey, DeploymentKey, GlobalApiDeploymentKey, RetiredSecret
from keys.serializers import UNKNOWN_DEPLOYMENT, GlobalKeyInputSerializer, KeyInputSerializer
from keys.services import deployment_key_import, global_key_import
from lib.serializers import StrictCharField
from organizations.models import Organization

SECTIONS = ("deployment_keys", "global_keys")
NOT_A_UUID = "Must be a UUID in its 8-4-4-4-12 form."
DUPLICATE = "The same key is already at {position}."
FOREIGN = "This key was already imported into another organization."
RACED = "This key was imported by another process meanwhile; run the import again."
BATCH = 500  # digests per query (SQLite caps a statement's parameters)


class KeyImportError(Exception):
    """The file cannot be imported; `errors` are lines `position.field: message`. Nothing was stored."""

    def __init__(self, errors: list[str]) -> None:
        super().__init__("\n".join(errors))
        self.errors = errors


class UuidKeyField(serializers.Field):
    """An imported key: a string holding a UUID in its canonical form (any case). Never echoed in an error."""

    default_error_messages = {"invalid": NOT_A_UUID}

    def to_internal_value(self, data: Any) -> crypto.Secret:
        secret = crypto.imported_secret(data) if isinstance(data, str) else None
        if secret is None:
            self.fail("invalid")
        return secret

    def to_representation(self, value: Any) -> str:
        raise NotImplementedError("an imported key is never written out")


class ImportedDeploymentKeySerializer(KeyInputSerializer):
    """A row of `deployment_keys`: the API's deployment key input, plus its UUID and deployment slug."""

    key = UuidKeyField()
    deployment = StrictCharField(max_length=100)
    # The file carries no expiry or limit: an imported key keeps the none it had.
    expires_at = None  # type: ignore[assignment]  # DRF: None removes the field
    rate_limit_per_minute = None  # type: ignore[assignment]

    def validate_deployment(self, slug: str) -> Deployment:
        deployment = Deployment.objects.filter(organization=self.context["organization"], slug=slug).first()
        if deployment is None:
            raise serializers.ValidationError(UNKNOWN_DEPLOYMENT.format(slug=slug))
        return deployment


class ImportedGlobalKeySerializer(GlobalKeyInputSerializer):
    """A row of `global_keys`: the API's global key input (scope rules included), plus its UUID."""

    key = UuidKeyField()
    expires_at = None  # type: ignore[assignment]  # DRF: None removes the field
    rate_limit_per_minute = None  # type: ignore[assignment]


# Each section's row shape, and the key service that stores a row.
SERIALIZERS: dict[str, type[serializers.Serializer]] = {
    "deployment_keys": ImportedDeploymentKeySerializer,
    "global_keys": ImportedGlobalKeySerializer,
}
STORE: dict[str, Callable[..., ApiKey]] = {"deployment_keys": deployment_key_import, "global_keys": global_key_import}


@dataclass(frozen=True)
class ImportedRow:
    position: str  # "global_keys[3]"
    kind: crypto.KeyKind
    name: str
    scope: str  # a deployment's slug, "all deployments" or the listed slugs
    key_masked: str  # of the imported UUID
    already_imported: bool
    rotated_out: bool = False  # already imported, and given a keyscope secret since


@dataclass
class ImportReport:
    organization: str
    dry_run: bool
    rows: list[ImportedRow] = field(default_factory=list)

    def count(self, kind: crypto.KeyKind, *, already_imported: bool) -> int:
        return sum(1 for row in self.rows if row.kind == kind and row.already_imported == already_imported)


def import_keys(*, organization: Organization, document: Any, dry_run: bool = False) -> ImportReport:
    """Import every key of `document` into `organization`, in one transaction, or nothing at all.

    Raises KeyImportError listing every bad row. With `dry_run`, everything is
    checked and done as for real, then rolled back.
    """
    sections = _sections(document)
    report = ImportReport(organization=organization.slug, dry_run=dry_run)
    errors: list[str] = []
    secrets = {
        position: secret
        for name, rows in sections.items()
        for position, row in _positions(name, rows)
        if isinstance(row, dict) and (secret := _secret_of(row)) is not None
    }
    stored = _stored({secret.digest for secret in secrets.values()})
    first_seen: dict[str, str] = {}
    with transaction.atomic():
        for name, rows in sections.items():
            for position, row in _positions(name, rows):
                secret = secrets.get(position)
                if secret is not None:
                    earlier = first_seen.setdefault(secret.digest, position)
                    if earlier != position:
                        errors.append(f"{position}.key: {DUPLICATE.format(position=earlier)}")
                        continue
                    if secret.digest in stored:
                        if stored[secret.digest].organization_id != organization.pk:
                            errors.append(f"{position}.key: {FOREIGN}")
                        else:
                            report.rows.append(_already_imported(position, stored[secret.digest], secret))
                        continue
                imported = _import_row(name, position, row, organization, errors)
                if imported is not None:
                    report.rows.append(imported)
        if errors or dry_run:
            transaction.set_rollback(True)
    if errors:
        raise KeyImportError(errors)
    return report


def _sections(document: Any) -> dict[str, list[Any]]:
    if not isinstance(document, dict):
        raise KeyImportError(['The file must hold a JSON object with "deployment_keys" and "global_keys".'])
    errors = [f"{name}: This field is not allowed here." for name in sorted(set(document) - set(SECTIONS))]
    sections: dict[str, list[Any]] = {}
    for name in SECTIONS:
        rows = document.get(name, [])
        if not isinstance(rows, list):
            errors.append(f"{name}: Must be a list.")
        sections[name] = rows if isinstance(rows, list) else []
    if errors:
        raise KeyImportError(errors)
    return sections


def _positions(name: str, rows: list[Any]) -> Iterator[tuple[str, Any]]:
    for index, row in enumerate(rows):
        yield f"{name}[{index}]", row


def _secret_of(row: dict[str, Any]) -> crypto.Secret | None:
    key = row.get("key")
    return crypto.imported_secret(key) if isinstance(key, str) else None


@dataclass(frozen=True)
class StoredKey:
    kind: crypto.KeyKind
    key_id: Any
    organization_id: int
    rotated_out: bool


def _stored(digests: set[str]) -> dict[str, StoredKey]:
    """The keys that have (or, rotated out, had) one of these digests."""
    found: dict[str, StoredKey] = {}
    ordered = sorted(digests)
    for start in range(0, len(ordered), BATCH):
        batch = ordered[start : start + BATCH]
        for digest, key_id, organization_id in DeploymentKey.objects.filter(digest__in=batch).values_list(
            "digest", "pk", "deployment__organization_id"
        ):
            found[digest] = StoredKey("deployment", key_id, organization_id, rotated_out=False)
        for digest, key_id, organization_id in GlobalApiDeploymentKey.objects.filter(digest__in=batch).values_list(
            "digest", "pk", "organization_id"
        ):
            found[digest] = StoredKey("global", key_id, organization_id, rotated_out=False)
        retired = RetiredSecret.objects.filter(digest__in=batch).values_list("digest", "key_kind", "key_id")
        by_kind: dict[str, dict[str, Any]] = {"deployment": {}, "global": {}}
        for digest, kind, key_id in retired:
            by_kind[kind][digest] = key_id
        owners = {
            **dict(
                DeploymentKey.objects.filter(pk__in=by_kind["deployment"].values()).values_list(
                    "pk", "deployment__organization_id"
                )
            ),
            **dict(
                GlobalApiDeploymentKey.objects.filter(pk__in=by_kind["global"].values()).values_list(
                    "pk", "organization_id"
                )
            ),
        }
        for kind, digests_of_kind in by_kind.items():
            for digest, key_id in digests_of_kind.items():
                if key_id in owners:
                    found[digest] = StoredKey(kind, key_id, owners[key_id], rotated_out=True)  # type: ignore[arg-type]
    return found


def _import_row(
    name: str, position: str, row: Any, organization: Organization, errors: list[str]
) -> ImportedRow | None:
    if not isinstance(row, dict):
        errors.append(f"{position}: Must be an object.")
        return None
    serializer = SERIALIZERS[name](data=row, context={"organization": organization})
    if not serializer.is_valid():
        errors.extend(_lines(position, serializer.errors))
        return None
    data = dict(serializer.validated_data)
    data["secret"] = data.pop("key")
    if name == "global_keys":
        data["organization"] = organization
    try:
        with transaction.atomic():
            key = STORE[name](actor=None, **data)
    except ValidationError as exc:
        errors.extend(_lines(position, exc.message_dict if hasattr(exc, "error_dict") else {"non_field_errors": exc.messages}))
        return None
    except IntegrityError:
        errors.append(f"{position}.key: {RACED}")
        return None
    return ImportedRow(
        position=position,
        kind=key.KIND,
        name=key.name,
        scope=_scope(key),
        key_masked=key.key_masked,
        already_imported=False,
    )


def _already_imported(position: str, stored: StoredKey, secret: crypto.Secret) -> ImportedRow:
    model = MODEL_BY_KIND[stored.kind]
    key = model.objects.get(pk=stored.key_id)
    return ImportedRow(
        position=position,
        kind=stored.kind,
        name=key.name,
        scope=_scope(key),
        key_masked=crypto.mask(stored.kind, secret.last4, crypto.UUID_FORMAT),
        already_imported=True,
        rotated_out=stored.rotated_out,
    )


def _scope(key: ApiKey) -> str:
    if isinstance(key, DeploymentKey):
        return key.deployment.slug
    assert isinstance(key, GlobalApiDeploymentKey)
    if key.allow_all_deployments:
        return "all deployments"
    return ", ".join(sorted(key.deployments.values_list("slug", flat=True))) or "no deployments"


def _lines(position: str, errors: Any, path: str = "") -> Iterable[str]:
    """DRF's nested error structure as `position.field: message` lines."""
    if isinstance(errors, dict):
        for field_name, nested in errors.items():
            suffix = "" if field_name == "non_field_errors" else f".{field_name}"
            yield from _lines(position, nested, path + suffix)
    elif isinstance(errors, list):
        for item in errors:
            yield from _lines(position, item, path)
    else:
        yield f"{position}{path}: {errors}"
