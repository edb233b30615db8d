"""`manage.py keys`: list, issue, rotate, revoke, deactivate and activate keys from a shell; deactivate unused keys from cron.

For scripts, and for revoking a leaked key at 3 a.m. without a browser. Every
write goes through keys/services.py (audited with a null actor, "the system"),
and a full key is printed only by `issue` and `rotate`, once.
"""

from __future__ import annotations

import getpass
import json
import sys
import uuid
from datetime import UTC
from typing import Any

from django.core.exceptions import ValidationError
from django.core.management.base import CommandError, CommandParser
from django.utils.dateparse import parse_datetime

from deployments.models import Deployment, DeploymentGroup
from keys.expiry import notify_expiring_keys
from keys.leaks import Reported, secret_digests, stop_reported
from keys.management.help import ExplainedCommand
from keys.models import ApiKey, DeploymentKey, GlobalApiDeploymentKey
from keys.scopes import ALL_SCOPES
from keys.serializers import DeploymentKeySerializer, GlobalKeySerializer
from keys.services import (
    MAX_GRACE_PERIOD_SECONDS,
    KeyRevokedError,
    deployment_key_issue,
    global_key_issue,
    key_activate,
    key_deactivate,
    key_revoke,
    key_rotate,
    keys_deactivate_unused,
    scope_input_errors,
)
from lib.text import cut, first_names
from organizations.models import Organization

EXAMPLES = """\
examples:
  manage.py keys list --org demo
  manage.py keys issue --org demo --deployment summarize --name "CI key"
  manage.py keys issue --org demo --global --all-deployments --name "Ops key" --json
  manage.py keys issue --org demo --global --deployment summarize --deployment classify --name "Two"
  manage.py keys issue --org demo --global --group production --name "Follows production"
  manage.py keys rotate --id <key uuid> --grace 3600
  manage.py keys revoke --org demo --deployment summarize --name "CI key"
  manage.py keys revoke --secret-stdin < found-key.txt     (a key found in a log: never put it in an argument)
  manage.py keys notify-expiring --days 7                  (daily, from cron)
  manage.py keys deactivate --org demo --name "Ops key"      (a global key: no --deployment)
  manage.py keys issue --org demo --global --all-deployments --name "Reader" --scope executions:read \
      --allow-ip 203.0.113.7 --allow-ip 10.0.0.0/8
  manage.py keys deactivate-unused --dry-run                   (daily from cron, without --dry-run)

A full key is printed only by `issue` and `rotate`, once: store it right away.
"""

SCOPE_WIDTH = 32
FIND_HELP = "Pick the key by --id, or by --org and --name (with --deployment for a deployment key)."


def _json_default(value: Any) -> str:
    return str(value)


class Command(ExplainedCommand):
    stealth_options = ("stdin",)
    help = "List, issue, rotate, revoke, deactivate or activate API keys (through the same services as the API)."
    examples = EXAMPLES

    def add_arguments(self, parser: CommandParser) -> None:
        actions = parser.add_subparsers(dest="action", required=True, metavar="ACTION")

        listing = actions.add_parser("list", help="List keys (masked, never in full).")
        listing.add_argument("--org", help="Only this organization's keys (slug).")
        listing.add_argument("--deployment", help="Only the deployment keys of this deployment (slug; needs --org).")
        listing.add_argument("--kind", choices=["deployment", "global"], help="Only keys of this kind.")
        listing.add_argument("--json", action="store_true", help="Print a JSON list.")

        issue = actions.add_parser("issue", help="Create a key and print it in full, once.")
        issue.add_argument("--org", required=True, help="The organization (slug).")
        issue.add_argument("--name", required=True, help="The key's name, unique (any case) in its scope.")
        issue.add_argument(
            "--deployment",
            action="append",
            default=[],
            metavar="SLUG",
            help="The deployment of a deployment key; with --global, one deployment of its scope (repeatable).",
        )
        issue.add_argument(
            "--group",
            action="append",
            default=[],
            metavar="SLUG",
            help="With --global: a deployment group whose deployments the key opens, as they join and leave (repeatable).",
        )
        issue.add_argument("--global", dest="is_global", action="store_true", help="Issue a global key.")
        issue.add_argument(
            "--all-deployments", action="store_true", help="With --global: open every deployment, current and future."
        )
        issue.add_argument("--description", default="", help="Free text.")
        issue.add_argument("--expires-at", help="ISO 8601 time in the future, e.g. 2030-01-01T00:00:00Z.")
        issue.add_argument("--rate-limit", type=int, help="Requests per minute (0 = unlimited; default: the org's).")
        issue.add_argument(
            "--scope",
            dest="scopes",
            action="append",
            choices=ALL_SCOPES,
            metavar="SCOPE",
            help=f"What the key may do (repeatable): {', '.join(ALL_SCOPES)}. Default: all of them.",
        )
        issue.add_argument(
            "--allow-ip",
            dest="allowed_ips",
            action="append",
            default=[],
            metavar="ADDRESS",
            help="An IPv4/IPv6 address or CIDR network the key may be used from (repeatable). Default: anywhere.",
        )
        issue.add_argument("--json", action="store_true", help="Print the key as JSON, with the full key in `key`.")

        rotate = actions.add_parser("rotate", help="Give a key a new secret and print it in full, once.")
        self._add_find_arguments(rotate)
        rotate.add_argument(
            "--grace",
            type=int,
            default=0,
            metavar="SECONDS",
            help=f"How long the old secret keeps working, 0 to {MAX_GRACE_PERIOD_SECONDS} (default 0).",
        )

        for name, text in [
            ("revoke", "Revoke a key for good (revoking again changes nothing)."),
            ("deactivate", "Switch a key off (is_active=false); it can be activated again."),
            ("activate", "Switch a key back on (not a revoked one)."),
        ]:
            self._add_find_arguments(actions.add_parser(name, help=text))
        actions.choices["revoke"].add_argument(
            "--secret-stdin",
            action="store_true",
            help="Pick the key by its full secret, read from standard input (prompted for, unechoed, on a terminal): "
            "for a key found exposed. Revoked as reported leaked, and the organization's admins are emailed.",
        )

        expiring = actions.add_parser(
            "notify-expiring", help="Email each organization's admins the keys that expire soon (run daily)."
        )
        expiring.add_argument(
            "--days", type=int, default=7, help="Keys that expire within this many days (default 7)."
        )

        unused = actions.add_parser(
            "deactivate-unused",
            help="Deactivate the keys unused for their organization's deactivate_unused_keys_after_days (for cron).",
        )
        unused.add_argument("--dry-run", action="store_true", help="List the keys it would deactivate; change nothing.")

    def _add_find_arguments(self, parser: CommandParser) -> None:
        parser.description = FIND_HELP
        parser.add_argument("--id", help="The key's id (UUID).")
        parser.add_argument("--org", help="The organization (slug), with --name.")
        parser.add_argument("--deployment", help="For a deployment key: its deployment (slug).")
        parser.add_argument("--name", help="The key's name (any case), with --org.")
        parser.add_argument("--json", action="store_true", help="Print the key as JSON.")

    def handle(self, *args: Any, action: str, **options: Any) -> None:
        try:
            getattr(self, f"handle_{action.replace('-', '_')}")(**options)
        except ValidationError as exc:
            messages = (
                [f"{field}: {' '.join(errors)}" for field, errors in exc.message_dict.items()]
                if hasattr(exc, "error_dict")
                else exc.messages
            )
            raise CommandError("; ".join(messages)) from None
        except KeyRevokedError as exc:
            raise CommandError(str(exc.detail)) from None

    # Finding ----------------------------------------------------------------

    def _organization(self, slug: str | None) -> Organization:
        organization = Organization.objects.filter(slug=slug).first() if slug else None
        if organization is None:
            raise CommandError(f"No organization with the slug {slug!r}.")
        return organization

    def _deployment(self, organization: Organization, slug: str) -> Deployment:
        deployment = Deployment.objects.filter(organization=organization, slug=slug).first()
        if deployment is None:
            raise CommandError(f"No deployment {slug!r} in organization {organization.slug!r}.")
        return deployment

    def _group(self, organization: Organization, slug: str) -> DeploymentGroup:
        group = DeploymentGroup.objects.filter(organization=organization, slug=slug).first()
        if group is None:
            raise CommandError(f"No group {slug!r} in organization {organization.slug!r}.")
        return group

    def _find(self, *, id: str | None, org: str | None, deployment: str | None, name: str | None, **_: Any) -> ApiKey:
        if id:
            try:
                key_id = uuid.UUID(id)
            except ValueError:
                raise CommandError(f"{id!r} is not a key id (a UUID).") from None
            return self._key_by_id(key_id)
        if not (org and name):
            raise CommandError(FIND_HELP)
        organization = self._organization(org)
        if deployment:
            key = DeploymentKey.objects.filter(
                deployment=self._deployment(organization, deployment), name__iexact=name.strip()
            ).first()
        else:
            key = GlobalApiDeploymentKey.objects.filter(organization=organization, name__iexact=name.strip()).first()
        if key is None:
            where = f"deployment {deployment!r}" if deployment else f"the global keys of {org!r}"
            raise CommandError(f"No key named {name!r} in {where}.")
        return key

    # Output -----------------------------------------------------------------

    def _data(self, key: ApiKey) -> dict[str, Any]:
        if isinstance(key, DeploymentKey):
            data = dict(DeploymentKeySerializer(key).data)
            organization = key.deployment.organization.slug
        else:
            assert isinstance(key, GlobalApiDeploymentKey)
            data = dict(GlobalKeySerializer(key).data)
            organization = key.organization.slug
        return {"kind": key.KIND, "organization": organization, **data}

    def _scope_names(self, data: dict[str, Any]) -> list[str]:
        """A global key's list: its groups (as group:<slug>), then its deployments."""
        return [*(f"group:{slug}" for slug in data["groups"]), *data["deployments"]]

    def _scope(self, data: dict[str, Any]) -> str:
        if data["kind"] == "deployment":
            return data["deployment"]
        if data["allow_all_deployments"]:
            return "all deployments"
        return ",".join(self._scope_names(data)) or "(nothing)"

    def _scope_short(self, data: dict[str, Any], width: int) -> str:
        """The list's SCOPE cell: the first slugs that fit, then how many more (`keys list --json` has them all)."""
        names = self._scope_names(data) if data["kind"] == "global" and not data["allow_all_deployments"] else []
        if not names:
            return self._scope(data)
        for shown in (3, 2, 1):
            text = first_names(names, shown=shown)
            if len(text) <= width:
                return text
        return text  # cut by the column, visibly

    def _print_key(self, key: ApiKey, *, as_json: bool, full_key: str | None = None) -> None:
        data = self._data(key)
        if as_json:
            if full_key is not None:
                data["key"] = full_key
            self.stdout.write(_dumps(data))
            return
        for label, value in [
            ("id", data["id"]),
            ("kind", data["kind"]),
            ("organization", data["organization"]),
            ("scope", self._scope(data)),
            ("name", data["name"]),
            ("masked", data["key_masked"]),
            ("status", data["status"]),
            ("expires_at", data["expires_at"] or "never"),
            ("scopes", ",".join(data["scopes"])),
            ("allowed_ips", ",".join(data["allowed_ips"]) or "any address"),
            *([("previous key", f"works until {_when(data['previous_key_expires_at'])}")] if data["previous_key_expires_at"] else []),
        ]:
            self.stdout.write(f"{label + ':':<14}{value}")
        if full_key is not None:
            self.stdout.write(f"{'key:':<14}{full_key}")
            self.stderr.write("This is the only time the full key is shown: store it now.")

    # Actions ----------------------------------------------------------------

    def handle_list(self, *, org: str | None, deployment: str | None, kind: str | None, json: bool, **_: Any) -> None:
        deployment_keys = DeploymentKey.objects.select_related("deployment__organization", "created_by")
        global_keys = GlobalApiDeploymentKey.objects.select_related("organization", "created_by").prefetch_related(
            "deployments", "groups"
        )
        if org:
            organization = self._organization(org)
            deployment_keys = deployment_keys.filter(deployment__organization=organization)
            global_keys = global_keys.filter(organization=organization)
            if deployment:
                deployment_keys = deployment_keys.filter(deployment=self._deployment(organization, deployment))
        elif deployment:
            raise CommandError("--deployment needs --org.")
        keys: list[ApiKey] = []
        if kind in (None, "deployment"):
            keys += list(deployment_keys)
        if kind in (None, "global") and not deployment:
            keys += list(global_keys)
        keys.sort(key=lambda key: key.created_at, reverse=True)
        rows = [self._data(key) for key in keys]
        if json:
            self.stdout.write(_dumps(rows))
            return
        if not rows:
            self.stdout.write("No keys.")
            return
        # Columns cut what does not fit with "…", never silently; the name comes last, whole.
        columns = [("ID", 36), ("KIND", 10), ("ORG", 12), ("SCOPE", SCOPE_WIDTH), ("STATUS", 8), ("MASKED", 9), ("MAY", 19), ("FROM", 18)]
        self.stdout.write("  ".join(f"{title:<{width}}" for title, width in columns) + "  NAME")
        for row in rows:
            cells = [
                str(row["id"]), row["kind"], row["organization"], self._scope_short(row, SCOPE_WIDTH), row["status"],
                row["key_masked"], _may(row["scopes"]), _from(row["allowed_ips"]),
            ]  # fmt: skip
            self.stdout.write(
                "  ".join(f"{cut(cell, width):<{width}}" for cell, (_, width) in zip(cells, columns, strict=True))
                + f"  {row['name']}"
            )

    def handle_issue(
        self,
        *,
        org: str,
        name: str,
        deployment: list[str],
        group: list[str],
        is_global: bool,
        all_deployments: bool,
        description: str,
        expires_at: str | None,
        rate_limit: int | None,
        scopes: list[str] | None,
        allowed_ips: list[str],
        json: bool,
        **_: Any,
    ) -> None:
        organization = self._organization(org)
        fields: dict[str, Any] = {
            "name": name,
            "description": description,
            "rate_limit_per_minute": rate_limit,
            "scopes": scopes,
            "allowed_ips": allowed_ips,
        }
        if expires_at:
            parsed = parse_datetime(expires_at)
            if parsed is None or parsed.tzinfo is None:
                raise CommandError("--expires-at must be an ISO 8601 time with a zone, e.g. 2030-01-01T00:00:00Z.")
            fields["expires_at"] = parsed
        if rate_limit is not None and rate_limit < 0:
            raise CommandError("--rate-limit must be 0 or more.")
        key: ApiKey
        if is_global:
            deployments = [self._deployment(organization, slug) for slug in dict.fromkeys(deployment)]
            groups = [self._group(organization, slug) for slug in dict.fromkeys(group)]
            if errors := scope_input_errors(allow_all_deployments=all_deployments, deployments=deployments, groups=groups):
                raise CommandError(
                    " ".join(errors.values()) + " (use --all-deployments, or --deployment SLUG and --group SLUG)"
                )
            key, full_key = global_key_issue(
                actor=None,
                organization=organization,
                allow_all_deployments=all_deployments,
                deployments=deployments,
                groups=groups,
                **fields,
            )
        else:
            if all_deployments:
                raise CommandError("--all-deployments is for global keys: add --global.")
            if group:
                raise CommandError("--group is for global keys: add --global.")
            if len(deployment) != 1:
                raise CommandError("A deployment key needs exactly one --deployment (or use --global).")
            key, full_key = deployment_key_issue(
                actor=None, deployment=self._deployment(organization, deployment[0]), **fields
            )
        self._print_key(key, as_json=json, full_key=full_key)

    def handle_rotate(self, *, grace: int, json: bool, **options: Any) -> None:
        key, full_key = key_rotate(key=self._find(**options), actor=None, grace_period_seconds=grace)
        self._print_key(key, as_json=json, full_key=full_key)

    def handle_revoke(self, *, json: bool, secret_stdin: bool, **options: Any) -> None:
        if secret_stdin:
            self._revoke_by_secret(as_json=json, **options)
            return
        self._print_key(key_revoke(key=self._find(**options), actor=None), as_json=json)

    def _revoke_by_secret(self, *, as_json: bool, **options: Any) -> None:
        if any(options.get(name) for name in ("id", "org", "deployment", "name")):
            raise CommandError("--secret-stdin picks the key by its secret alone: drop --id, --org and --name.")
        stream = options.get("stdin") or sys.stdin
        secret = (getpass.getpass("Key: ") if stream.isatty() else stream.read()).strip()
        if not secret:
            raise CommandError("No key on standard input.")
        if not secret_digests(secret):
            raise CommandError("What was read is not a key (ksd_… or ksg_… with a valid checksum, or an imported UUID).")
        outcome = stop_reported([Reported(secret, "the command line (manage.py keys revoke --secret-stdin)")])
        if not outcome.known(secret):
            raise CommandError("No key has, or had, this secret.")
        (match,) = outcome.matches.values()
        key = self._key_by_id(match.key_id)
        say = self.stderr.write if as_json else self.stdout.write  # --json keeps stdout for the JSON
        if match.retired:
            now = "It stopped working now" if outcome.stopped else "It no longer worked"
            say(
                f"This is a secret that a rotation replaced. {now}; "
                f"the key's current secret ({key.key_masked}) is untouched."
            )
        elif outcome.stopped:
            say(f"Revoked {key.name!r} ({key.key_masked}) as reported leaked; its admins are emailed.")
        else:
            say(f"{key.name!r} ({key.key_masked}) was already revoked; nothing changed.")
        self._print_key(key, as_json=as_json)

    @staticmethod
    def _key_by_id(key_id: uuid.UUID) -> ApiKey:
        key = DeploymentKey.objects.filter(pk=key_id).first()
        key = key or GlobalApiDeploymentKey.objects.filter(pk=key_id).first()
        if key is None:
            raise CommandError(f"No key with the id {key_id}.")
        return key

    def handle_notify_expiring(self, *, days: int, **_: Any) -> None:
        if not 1 <= days <= 3650:
            raise CommandError("--days must be from 1 to 3650.")
        sent, failed = notify_expiring_keys(days=days)
        for organization, count, recipients in sent:
            keys = "key" if count == 1 else "keys"
            self.stdout.write(f"{organization.slug}: {count} expiring {keys}, emailed to {recipients} admins.")
        if not sent and not failed:
            self.stdout.write(f"No key expires within {days} days that its admins were not told about today.")
        if failed:
            slugs = ", ".join(organization.slug for organization in failed)
            raise CommandError(f"Could not email {slugs} (see the log); run again to retry.")

    def handle_deactivate(self, *, json: bool, **options: Any) -> None:
        self._print_key(key_deactivate(key=self._find(**options), actor=None), as_json=json)

    def handle_activate(self, *, json: bool, **options: Any) -> None:
        self._print_key(key_activate(key=self._find(**options), actor=None), as_json=json)

    def handle_deactivate_unused(self, *, dry_run: bool, **_: Any) -> None:
        keys = keys_deactivate_unused(dry_run=dry_run)
        verb = "would deactivate" if dry_run else "deactivated"
        for key in keys:
            data = self._data(key)
            last_used = data["last_used_at"] or f"never (created {data['created_at']})"
            self.stdout.write(
                f"{verb} {data['id']}  {data['kind']:<10}  {data['organization']}  {data['key_masked']}  "
                f"{data['name']}  last used: {last_used}"
            )
        total = f"{len(keys)} {'key' if len(keys) == 1 else 'keys'}"
        self.stdout.write(f"{'Would deactivate' if dry_run else 'Deactivated'} {total}.")


def _may(scopes: list[str]) -> str:
    """A key's scopes, short: "all" for every one of them."""
    return "all" if set(scopes) == set(ALL_SCOPES) else ",".join(scopes)


def _from(allowed_ips: list[str]) -> str:
    if not allowed_ips:
        return "anywhere"
    return allowed_ips[0] if len(allowed_ips) == 1 else f"{len(allowed_ips)} networks"


def _when(iso: str) -> str:
    """An API time (ISO 8601, UTC) as a person reads it: to the second, with its zone."""
    moment = parse_datetime(iso)
    return iso if moment is None else moment.astimezone(UTC).strftime("%Y-%m-%d %H:%M:%S UTC")


def _dumps(value: Any) -> str:
    return json.dumps(value, default=_json_default, indent=2)
