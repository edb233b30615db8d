"""`manage.py import_keys --org <slug> FILE [--dry-run]`: move Unstract's UUID keys in.

All of the file or nothing, in one transaction; a second run creates nothing.
No key is ever printed: the summary shows masked keys (`uuid…abcd`) only.
"""

from __future__ import annotations

import json
import sys
from typing import Any

from django.core.management.base import CommandError, CommandParser

from keys.importing import ImportedRow, ImportReport, KeyImportError, import_keys
from keys.management.help import ExplainedCommand
from organizations.models import Organization

DESCRIPTION = """\
Import the API keys of one organization from Unstract.

FILE is the JSON that the README's SQL writes from Unstract's tables ("-" reads
standard input):
  {"deployment_keys": [{"key", "deployment", "name", "description", "is_active"}],
   "global_keys": [{"key", "name", "description", "is_active", "allow_all_deployments", "deployments"}]}
Deployments are named by their keyscope slug and must exist in the organization.

Each key is checked as the management API checks a new key (names 1 to 100
characters, unique without regard to case; deployments of this organization;
a global key opens all deployments or at least one) and stored as the sha256
of its UUID, audited as `created`. Clients keep using their UUIDs, in any case.
A bad row stores nothing of the file and is reported by its position and field,
e.g. `global_keys[3].deployments: ...`. Keys imported before (the digest
decides, even when rotated since) are reported as already imported and left
alone, so running the same file twice is safe.
"""

EXAMPLES = """\
examples:
  manage.py import_keys --org acme unstract-keys.json --dry-run
  manage.py import_keys --org acme unstract-keys.json

No key is printed; the file itself holds the keys in plaintext: delete it once imported.
"""


class Command(ExplainedCommand):
    help = "Import an organization's API keys (UUIDs) from Unstract, hashed, so clients keep working."
    description = DESCRIPTION
    examples = EXAMPLES

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("--org", required=True, metavar="SLUG", help="The keyscope organization to import into.")
        parser.add_argument("file", metavar="FILE", help='The JSON file of keys ("-" for standard input).')
        parser.add_argument(
            "--dry-run", action="store_true", help="Check everything and say what would be created; store nothing."
        )

    def handle(self, *args: Any, org: str, file: str, dry_run: bool, **options: Any) -> None:
        organization = Organization.objects.filter(slug=org).first()
        if organization is None:
            raise CommandError(f"No organization with the slug {org!r}.")
        document = self._read(file)
        try:
            report = import_keys(organization=organization, document=document, dry_run=dry_run)
        except KeyImportError as exc:
            lines = "\n".join(f"  {error}" for error in exc.errors)
            raise CommandError(f"Nothing was imported: the file has {len(exc.errors)} problem(s):\n{lines}") from None
        self._summary(report)

    def _read(self, path: str) -> Any:
        try:
            if path == "-":
                text = sys.stdin.read()
            else:
                with open(path, encoding="utf-8") as handle:
                    text = handle.read()
        except OSError as exc:
            raise CommandError(f"Cannot read {path}: {exc.strerror}.") from None
        except UnicodeDecodeError:
            raise CommandError(f"{path} is not UTF-8 text.") from None
        try:
            return json.loads(text)
        except json.JSONDecodeError as exc:
            # The message names a line and column, never the text around them.
            raise CommandError(f"{path} is not valid JSON: {exc.msg} at line {exc.lineno}, column {exc.colno}.") from None

    def _summary(self, report: ImportReport) -> None:
        verb = "Would create" if report.dry_run else "Created"
        for row in report.rows:
            self.stdout.write(self._line(row, verb))
        created = "would be created" if report.dry_run else "created"
        for kind in ("deployment", "global"):
            self.stdout.write(
                f"{kind} keys: {report.count(kind, already_imported=False)} {created}, "
                f"{report.count(kind, already_imported=True)} already imported"
            )
        if report.dry_run:
            self.stdout.write(f"Dry run: nothing was stored in {report.organization!r}.")
        elif not any(not row.already_imported for row in report.rows):
            self.stdout.write(f"Nothing new: {report.organization!r} already has every key of the file.")
        else:
            self.stdout.write(self.style.SUCCESS(f"Imported into {report.organization!r}."))

    def _line(self, row: ImportedRow, verb: str) -> str:
        what = f"{row.kind} key {row.name!r} ({row.key_masked}) for {row.scope}"
        if row.already_imported:
            since = ", rotated since" if row.rotated_out else ""
            return f"{row.position}: already imported{since}: {what}"
        return f"{row.position}: {verb} {what}"
