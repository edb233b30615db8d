import secrets
from typing import Any, TypeVar

from django.conf import settings
from django.contrib.auth import get_user_model
from django.core.management.base import BaseCommand, CommandParser
from django.db import transaction
from django.utils import timezone

from deployments.models import Deployment
from deployments.services import deployment_create
from keys.models import ApiKey, DeploymentKey, GlobalApiDeploymentKey
from keys.services import deployment_key_issue, global_key_issue, key_activate, key_delete, key_rotate, key_update
from organizations.models import Membership, Organization

K = TypeVar("K", bound=ApiKey)

DEMO_ORG_SLUG = "demo"
DEMO_USERNAME = "demo-admin"
# The demo's admin gets the emails a leaked or expiring key sends (printed by make run's console backend).
DEMO_EMAIL = "demo-admin@example.com"
DEMO_DEPLOYMENTS = [
    ("summarize", "Summarize", "Returns a summary of the posted document (echo runner)."),
    ("classify", "Classify", "Labels the posted document (echo runner)."),
]
# Calls scripts/demo_upstream.py, which `make run` starts (KEYSCOPE_DEMO_UPSTREAM_URL).
DEMO_HTTP_DEPLOYMENT = ("extract", "Extract", "Posts the document to the demo upstream (http runner).")
DEMO_DEPLOYMENT_KEY = "Demo summarize key"
DEMO_GLOBAL_KEY = "Demo global key"
DEMO_GLOBAL_SCOPE = ["summarize", "classify", "extract"]


class Command(BaseCommand):
    help = (
        "Create what is missing of the demo: organization 'demo', an admin login, three "
        "deployments and one key of each kind. Prints only what it creates; a second run "
        "prints nothing new. --reset sets a new demo password and rotates the demo keys (reactivated, "
        "their scope restored; a revoked one is replaced by a new key), and prints them."
    )

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument(
            "--reset",
            action="store_true",
            help="Set a new demo password and rotate the demo keys, and print them.",
        )
        parser.add_argument(
            "--base-url",
            default=f"http://127.0.0.1:{settings.KEYSCOPE_DEMO_PORT}",
            help="Where the printed curl commands send their requests (default: %(default)s).",
        )

    @transaction.atomic
    def handle(self, *args: Any, reset: bool = False, base_url: str = "", **options: Any) -> None:
        org, _ = Organization.objects.get_or_create(slug=DEMO_ORG_SLUG, defaults={"name": "Demo organization"})
        user_model = get_user_model()
        user = user_model.objects.filter(username=DEMO_USERNAME).first()
        if user is None or reset:
            password = settings.KEYSCOPE_DEMO_PASSWORD or secrets.token_urlsafe(12)
            if user is None:
                user = user_model.objects.create_user(username=DEMO_USERNAME, email=DEMO_EMAIL, password=password, is_staff=True)
            else:
                user.set_password(password)
                user.email = user.email or DEMO_EMAIL
                user.is_staff = True
                user.is_active = True
                user.save()
            self.stdout.write(f"Admin login: {DEMO_USERNAME} / {password}")
        Membership.objects.get_or_create(organization=org, user=user, defaults={"role": Membership.Role.ADMIN})
        deployments = {deployment.slug: deployment for deployment in Deployment.objects.filter(organization=org)}
        created_any = False
        for slug, name, description in DEMO_DEPLOYMENTS:
            if slug not in deployments:
                deployments[slug] = deployment_create(organization=org, slug=slug, name=name, description=description)
                created_any = True
                self.stdout.write(f"Deployment: {org.slug}/{slug}")
        http_slug, http_name, http_description = DEMO_HTTP_DEPLOYMENT
        if http_slug not in deployments:
            deployments[http_slug] = deployment_create(
                organization=org,
                slug=http_slug,
                name=http_name,
                description=http_description,
                runner=Deployment.Runner.HTTP,
                upstream_url=settings.KEYSCOPE_DEMO_UPSTREAM_URL,
                # Shows credentials at work: the demo upstream reports that an Authorization arrived.
                upstream_headers=(
                    {"Authorization": f"Bearer demo-{secrets.token_urlsafe(16)}"} if settings.KEYSCOPE_ENCRYPTION_KEYS else None
                ),
                # The demo's own upstream on this machine, which `make run` allows for the server;
                # every call is still checked.
                check_upstream_url=False,
            )
            created_any = True
            self.stdout.write(f"Deployment: {org.slug}/{http_slug} (calls {settings.KEYSCOPE_DEMO_UPSTREAM_URL})")

        issued: list[tuple[str, str, tuple[str, ...]]] = []
        deployment_key = DeploymentKey.objects.filter(deployment=deployments["summarize"], name=DEMO_DEPLOYMENT_KEY).first()
        deployment_key = self._revoked_replaced(deployment_key, reset)
        if deployment_key is None:
            deployment_key, full_key = deployment_key_issue(deployment=deployments["summarize"], name=DEMO_DEPLOYMENT_KEY)
            issued.append(("Deployment key (summarize only)", full_key, ("summarize",)))
        elif reset and not deployment_key.is_revoked:
            deployment_key, full_key = key_rotate(key=self._usable(deployment_key), actor=None)
            issued.append(("Deployment key (summarize only)", full_key, ("summarize",)))

        scope = [deployments[slug] for slug in DEMO_GLOBAL_SCOPE]
        global_key = GlobalApiDeploymentKey.objects.filter(organization=org, name=DEMO_GLOBAL_KEY).first()
        global_key = self._revoked_replaced(global_key, reset)
        if global_key is None:
            global_key, full_key = global_key_issue(organization=org, name=DEMO_GLOBAL_KEY, deployments=scope)
            issued.append(("Global key (summarize, classify, extract)", full_key, ("classify", "extract")))
        elif not global_key.is_revoked:
            if (created_any or reset) and not global_key.allow_all_deployments:
                # A demo deployment (re)made after the key, or a scope narrowed since: the key
                # opens every demo deployment again, its other links kept. Audited as a change.
                linked = list(global_key.deployments.all())
                missing = [deployment for deployment in scope if deployment not in linked]
                if missing:
                    global_key = key_update(key=global_key, actor=None, deployments=[*linked, *missing])
            if reset:
                global_key, full_key = key_rotate(key=self._usable(global_key), actor=None)
                issued.append(("Global key (summarize, classify, extract)", full_key, ("classify", "extract")))

        for label, full_key, slugs in issued:
            self.stdout.write(f"{label}: {full_key}")
            for slug in slugs:
                self.stdout.write(
                    f"  curl -s -X POST {base_url}/api/v1/deployments/{org.slug}/{slug}/execute/ "
                    f"-H 'Authorization: Bearer {full_key}' -H 'Content-Type: application/json' "
                    """-d '{"text": "hello"}'"""
                )
        if issued:
            self.stdout.write("Keys are shown once; keep them now. `seed_demo --reset` rotates them.")

    @staticmethod
    def _revoked_replaced(key: K | None, reset: bool) -> K | None:
        """A revoked demo key cannot be rotated: --reset deletes it, so a fresh one is issued.

        A plain run leaves it alone and prints nothing: it creates only what is missing.
        """
        if key is not None and key.is_revoked and reset:
            key_delete(key=key, actor=None)
            return None
        return key

    @staticmethod
    def _usable(key: K) -> K:
        """Before --reset rotates a demo key, undo what would make the printed key fail: deactivated, expired."""
        if not key.is_active:
            key = key_activate(key=key, actor=None)
        if key.expires_at is not None and key.expires_at <= timezone.now():
            key = key_update(key=key, actor=None, expires_at=None)
        return key
