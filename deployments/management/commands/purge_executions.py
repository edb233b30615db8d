from datetime import timedelta
from typing import Any

from django.conf import settings
from django.core.management.base import BaseCommand, CommandError, CommandParser
from django.utils import timezone

from deployments.models import Execution


class Command(BaseCommand):
    help = (
        "Delete executions (with their request and result bodies) older than "
        "KEYSCOPE_EXECUTION_RETENTION_DAYS, and say how many. Run it daily, from cron or a scheduler."
    )

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument(
            "--days",
            type=int,
            default=None,
            help="Keep this many days instead of KEYSCOPE_EXECUTION_RETENTION_DAYS.",
        )
        parser.add_argument("--dry-run", action="store_true", help="Count what would be deleted; delete nothing.")

    def handle(self, *args: Any, days: int | None = None, dry_run: bool = False, **options: Any) -> None:
        if days is None:
            days = settings.KEYSCOPE_EXECUTION_RETENTION_DAYS
        if days < 0:
            raise CommandError("--days must be 0 or more.")
        cutoff = timezone.now() - timedelta(days=days)
        older = Execution.objects.filter(created_at__lt=cutoff)
        when = f"older than {days} days (created before {cutoff:%Y-%m-%d %H:%M:%S} UTC)"
        if dry_run:
            self.stdout.write(f"Would delete {older.count()} executions {when}.")
            return
        deleted, _ = older.delete()
        self.stdout.write(f"Deleted {deleted} executions {when}.")
