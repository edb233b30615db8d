"""Every write to a deployment, and every execution, goes through here: the API, the admin, commands and tests."""

from __future__ import annotations

import time
from collections.abc import Iterable
from typing import Any, Protocol

from django.core.exceptions import ValidationError
from django.db import IntegrityError, transaction

from deployments import encryption
from deployments.models import NAME_MAX_LENGTH, Deployment, DeploymentGroup, Execution
from deployments.runners import RunContext, get_runner
from deployments.signals import deployment_deleting, group_deleting, group_written
from lib.users import Actor
from lib.validation import clean_name
from organizations.models import Organization

# `upstream_headers` is write-only: a map of header name to value, stored encrypted;
# None or {} clears the stored map, and leaving it out keeps it.
UPSTREAM_FIELDS = frozenset({"runner", "upstream_url", "timeout_seconds"})
UPDATABLE_FIELDS = frozenset({"name", "description", "is_active", *UPSTREAM_FIELDS, "upstream_headers"})
SLUG_TAKEN = "A deployment with this slug already exists in this organization."
SLUG_FIXED = "The slug is fixed once the deployment is created."


def _set_upstream_headers(deployment: Deployment, headers: dict[str, str] | None) -> None:
    try:
        deployment.set_upstream_headers(headers)
    except encryption.CredentialsError as error:
        # A server setting, but said where the credentials were entered; the message holds no value.
        raise ValidationError({"upstream_headers": f"The upstream headers cannot be stored: {error}"}) from None


def _check_upstream(deployment: Deployment, changed: set[str]) -> None:
    """The model's validators on the upstream fields that changed, and its clean() (the http runner needs a URL).

    Here rather than in the serializer so the API, the admin and commands are held to the same rules;
    fields that did not change are not re-judged (an allowlist may have shrunk since)."""
    unchecked = {field.name for field in Deployment._meta.concrete_fields} - (changed & UPSTREAM_FIELDS)
    errors: dict[str, Any] = {}
    for check in (lambda: deployment.clean_fields(exclude=unchecked), deployment.clean):
        try:
            check()
        except ValidationError as error:
            errors = error.update_error_dict(errors)
    if errors:
        raise ValidationError(errors)


def _slug_taken(row: Deployment | DeploymentGroup) -> bool:
    return (
        type(row)._default_manager.filter(organization_id=row.organization_id, slug=row.slug)
        .exclude(pk=row.pk)
        .exists()
    )


def _insert(row: Deployment | DeploymentGroup, slug_taken: str) -> None:
    """Insert a row whose slug is unique in its organization; a taken slug, seen or lost in a race, is a field error."""
    if _slug_taken(row):
        raise ValidationError({"slug": slug_taken})
    try:
        with transaction.atomic():
            row.save(force_insert=True)
    except IntegrityError as exc:
        # Lost a race with a concurrent create of the same slug.
        raise ValidationError({"slug": slug_taken}) from exc


@transaction.atomic
def deployment_create(
    *,
    organization: Organization,
    slug: str,
    name: str,
    description: str = "",
    is_active: bool = True,
    runner: str = Deployment.Runner.ECHO,
    upstream_url: str = "",
    timeout_seconds: int = Deployment._meta.get_field("timeout_seconds").default,
    upstream_headers: dict[str, str] | None = None,
    check_upstream_url: bool = True,
) -> Deployment:
    """Create a deployment. `check_upstream_url=False` is for an upstream the operator vouches for (the demo's,
    on this machine): every call is still checked against KEYSCOPE_UPSTREAM_ALLOWED_HOSTS when it is made."""
    deployment = Deployment(
        organization=organization,
        slug=slug,
        name=clean_name(name, max_length=NAME_MAX_LENGTH),
        description=description,
        is_active=is_active,
        runner=runner,
        upstream_url=upstream_url,
        timeout_seconds=timeout_seconds,
    )
    _check_upstream(deployment, set(UPSTREAM_FIELDS) if check_upstream_url else set())
    _set_upstream_headers(deployment, upstream_headers)
    _insert(deployment, SLUG_TAKEN)
    return deployment


@transaction.atomic
def deployment_update(*, deployment: Deployment, **changes: Any) -> Deployment:
    """Change any of UPDATABLE_FIELDS. The slug never changes; `upstream_headers` replaces the stored map."""
    if "slug" in changes:
        raise ValidationError({"slug": SLUG_FIXED})
    unknown = set(changes) - UPDATABLE_FIELDS
    if unknown:
        raise ValidationError({field: "This field cannot be changed." for field in sorted(unknown)})
    locked = Deployment.objects.select_for_update().get(pk=deployment.pk)
    if "name" in changes:
        changes["name"] = clean_name(changes["name"], max_length=NAME_MAX_LENGTH)
    headers_changed = "upstream_headers" in changes
    headers = changes.pop("upstream_headers", None)
    for field, value in changes.items():
        setattr(locked, field, value)
    _check_upstream(locked, set(changes))
    if headers_changed:
        _set_upstream_headers(locked, headers)
    locked.save()
    return locked


@transaction.atomic
def deployment_delete(*, deployment: Deployment, actor: Actor, ip_address: str | None = None) -> None:
    """Delete a deployment and its executions, after what depends on it.

    The keys app answers `deployment_deleting`: the deployment's keys are deleted
    (each audited `deleted`) and global keys that listed it lose it (audited `changed`).
    Each group that held it loses it too (audited `changed`).
    """
    deployment_deleting.send(sender=Deployment, deployment=deployment, actor=actor, ip_address=ip_address)
    for group in DeploymentGroup.objects.filter(deployments=deployment).distinct():
        remaining = list(group.deployments.exclude(pk=deployment.pk))
        group_update(group=group, actor=actor, ip_address=ip_address, deployments=remaining)
    deployment.delete()  # executions and scope links cascade


class DeploymentToRun(Protocol):
    """What running needs of a deployment: the client API's cached record of it will do."""

    @property
    def id(self) -> int: ...

    @property
    def slug(self) -> str: ...

    @property
    def runner(self) -> str: ...


def execution_run(
    *,
    deployment: DeploymentToRun,
    payload: dict[str, Any],
    key_kind: str,
    key_id: str,
    key_name: str,
    organization_slug: str,
    client_ip: str | None,
    query_string: str = "",
) -> Execution:
    """Run a deployment for a verified key and record the execution, completed or failed."""
    execution = Execution(
        deployment_id=deployment.id,
        request=payload,
        key_kind=key_kind,
        key_id=key_id,
        key_name=key_name,
        client_ip=client_ip,
    )
    # The echo runner needs nothing of the row; others get it whole (one query beside an upstream call).
    target = deployment if deployment.runner == Deployment.Runner.ECHO else Deployment.objects.get(pk=deployment.id)
    started = time.perf_counter()
    outcome = get_runner(deployment.runner).run(
        deployment=target,  # type: ignore[arg-type]
        payload=payload,
        context=RunContext(
            organization_slug=organization_slug,
            key_id=key_id,
            execution_id=str(execution.id),
            deployment_slug=deployment.slug,
            query_string=query_string,
        ),
    )
    execution.elapsed_ms = int((time.perf_counter() - started) * 1000)
    execution.result = outcome.result
    execution.http_status = outcome.http_status
    if outcome.ok:
        execution.status = Execution.Status.COMPLETED
    else:
        execution.status = Execution.Status.FAILED
        execution.error_code = outcome.code
        execution.error_detail = outcome.detail
    execution.save(force_insert=True)
    return execution


# Groups -------------------------------------------------------------------------------

GROUP_UPDATABLE_FIELDS = frozenset({"name", "description", "deployments"})
GROUP_SLUG_TAKEN = "A group with this slug already exists in this organization."
GROUP_SLUG_FIXED = "The slug is fixed once the group is created."


def _member_slugs(group: DeploymentGroup) -> list[str]:
    return sorted(group.deployments.values_list("slug", flat=True))


def _group_written(
    group: DeploymentGroup, action: str, actor: Actor, ip_address: str | None, changes: dict[str, tuple[Any, Any]]
) -> None:
    group_written.send(sender=DeploymentGroup, group=group, action=action, actor=actor, ip_address=ip_address, changes=changes)


@transaction.atomic
def group_create(
    *,
    organization: Organization,
    slug: str,
    name: str,
    description: str = "",
    deployments: Iterable[Deployment] = (),
    actor: Actor,
    ip_address: str | None = None,
) -> DeploymentGroup:
    """Create a group of the organization's deployments (audited `created`)."""
    group = DeploymentGroup(
        organization=organization,
        slug=slug,
        name=clean_name(name, max_length=NAME_MAX_LENGTH),
        description=description,
    )
    group.clean_fields(exclude={field.name for field in DeploymentGroup._meta.concrete_fields} - {"slug"})
    _insert(group, GROUP_SLUG_TAKEN)
    group.deployments.set(list(deployments))  # the tenant guard refuses another organization's
    changes = {"name": (None, group.name), "description": (None, group.description), "deployments": (None, _member_slugs(group))}
    _group_written(group, "created", actor, ip_address, changes)
    return group


@transaction.atomic
def group_update(*, group: DeploymentGroup, actor: Actor, ip_address: str | None = None, **changes: Any) -> DeploymentGroup:
    """Change `name`, `description` or `deployments` (the whole list); audited `changed` when anything did."""
    if "slug" in changes:
        raise ValidationError({"slug": GROUP_SLUG_FIXED})
    unknown = set(changes) - GROUP_UPDATABLE_FIELDS
    if unknown:
        raise ValidationError({field: "This field cannot be changed." for field in sorted(unknown)})
    locked = DeploymentGroup.objects.select_for_update().get(pk=group.pk)
    before = {"name": locked.name, "description": locked.description, "deployments": _member_slugs(locked)}
    if "name" in changes:
        locked.name = clean_name(changes["name"], max_length=NAME_MAX_LENGTH)
    if "description" in changes:
        locked.description = changes["description"]
    locked.save()
    if "deployments" in changes:
        locked.deployments.set(list(changes["deployments"]))
    after = {"name": locked.name, "description": locked.description, "deployments": _member_slugs(locked)}
    diff = {field: (old, after[field]) for field, old in before.items() if old != after[field]}
    if diff:
        _group_written(locked, "changed", actor, ip_address, diff)
    return locked


@transaction.atomic
def group_delete(*, group: DeploymentGroup, actor: Actor, ip_address: str | None = None) -> None:
    """Delete a group (audited `deleted`), after the keys bound to it have lost it.

    The keys app answers `group_deleting`: each global key bound to the group loses
    it (audited `changed`); a key left with an empty scope opens nothing.
    """
    group_deleting.send(sender=DeploymentGroup, group=group, actor=actor, ip_address=ip_address)
    changes = {"name": (group.name, None), "deployments": (_member_slugs(group), None)}
    _group_written(group, "deleted", actor, ip_address, changes)
    group.delete()  # its memberships cascade
