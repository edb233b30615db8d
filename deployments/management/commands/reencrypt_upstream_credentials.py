from typing import Any

from django.core.management.base import BaseCommand, CommandError
from django.db import transaction

from deployments import encryption
from deployments.models import Deployment


class Command(BaseCommand):
    help = (
        "Re-encrypt every deployment's upstream credentials under the first key of "
        "KEYSCOPE_ENCRYPTION_KEYS, and say how many. After it, keys other than the first can be removed."
    )

    def handle(self, *args: Any, **options: Any) -> None:
        count = 0
        with transaction.atomic():
            rows = Deployment.objects.exclude(upstream_headers_encrypted="").select_for_update().order_by("pk")
            for deployment in rows.only("pk", "organization_id", "slug", "upstream_headers_encrypted"):
                try:
                    token = encryption.reencrypt(deployment.upstream_headers_encrypted)
                except encryption.CredentialsError as error:
                    # All or nothing: the transaction rolls back every row already done.
                    raise CommandError(f"Deployment {deployment.pk} ({deployment.slug}): {error} Nothing was changed.") from None
                # update(), not save(): re-encrypting changes no setting, so modified_at stays.
                Deployment.objects.filter(pk=deployment.pk).update(upstream_headers_encrypted=token)
                count += 1
        self.stdout.write(f"Re-encrypted the upstream credentials of {count} deployments under the first key.")
