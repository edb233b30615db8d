import secrets

from django.conf import settings
from django.contrib.auth import get_user_model
from django.core.management.base import BaseCommand
from django.db import transaction

from deployments.models import Deployment
from keys.models import DeploymentKey, GlobalApiDeploymentKey
from keys.services import key_rotate
from organizations.models import Membership, Organization

DEMO_ORG_SLUG = "demo"
DEMO_USERNAME = "demo-admin"
DEMO_DEPLOYMENTS = [
    ("summarize", "Summarize", "Returns a summary of the posted document (echo runner)."),
    ("classify", "Classify", "Labels the posted document (echo runner)."),
    ("extract", "Extract", "Pulls fields out of the posted document (echo runner)."),
]
DEMO_DEPLOYMENT_KEY = "Demo summarize key"
DEMO_GLOBAL_KEY = "Demo global key"
DEMO_GLOBAL_SCOPE = ["summarize", "classify"]


class Command(BaseCommand):
    help = (
        "Create what is missing of the demo: organization 'demo', an admin login, three "
        "deployments and one key of each kind. Prints only what it creates; a second run "
        "prints nothing new. --reset sets a new demo password and rotates the demo keys."
    )

    def add_arguments(self, parser) -> None:
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
    def handle(self, *args, reset: bool = False, base_url: str = "", **options) -> None:
        org, _ = Organization.objects.get_or_create(slug=DEMO_ORG_SLUG, defaults={"name": "Demo organization"})
        user_model = get_user_model()
        user = user_model.objects.filter(username=DEMO_USERNAME).first()
        if user is None or reset:
            password = settings.KEYSCOPE_DEMO_PASSWORD or secrets.token_urlsafe(12)
            if user is None:
                user = user_model.objects.create_user(username=DEMO_USERNAME, password=password, is_staff=True)
            else:
                user.set_password(password)
                user.is_staff = True
                user.is_active = True
                user.save()
            self.stdout.write(f"Admin login: {DEMO_USERNAME} / {password}")
        Membership.objects.get_or_create(organization=org, user=user, defaults={"role": Membership.Role.ADMIN})
        deployments = {}
        for slug, name, description in DEMO_DEPLOYMENTS:
            deployments[slug], created = Deployment.objects.get_or_create(
                organization=org, slug=slug, defaults={"name": name, "description": description}
            )
            if created:
                self.stdout.write(f"Deployment: {org.slug}/{slug}")

        issued: list[tuple[str, str, str]] = []
        deployment_key = DeploymentKey.objects.filter(deployment=deployments["summarize"], name=DEMO_DEPLOYMENT_KEY).first()
        if deployment_key is None:
            deployment_key, full_key = DeploymentKey.objects.issue(
                deployment=deployments["summarize"], name=DEMO_DEPLOYMENT_KEY
            )
            issued.append(("Deployment key (summarize only)", full_key, "summarize"))
        elif reset and not deployment_key.is_revoked:
            deployment_key, full_key = key_rotate(key=deployment_key, actor=None)
            issued.append(("Deployment key (summarize only)", full_key, "summarize"))
        global_key = GlobalApiDeploymentKey.objects.filter(organization=org, name=DEMO_GLOBAL_KEY).first()
        if global_key is None:
            global_key, full_key = GlobalApiDeploymentKey.objects.issue(
                organization=org,
                name=DEMO_GLOBAL_KEY,
                deployments=[deployments[slug] for slug in DEMO_GLOBAL_SCOPE],
            )
            issued.append(("Global key (summarize, classify)", full_key, "classify"))
        elif reset and not global_key.is_revoked:
            global_key, full_key = key_rotate(key=global_key, actor=None)
            issued.append(("Global key (summarize, classify)", full_key, "classify"))

        for label, full_key, slug in issued:
            self.stdout.write(f"{label}: {full_key}")
            self.stdout.write(
                f"  curl -s -X POST {base_url}/api/v1/deployments/{org.slug}/{slug}/execute/ "
                f"-H 'Authorization: Bearer {full_key}' -H 'Content-Type: application/json' "
                """-d '{"text": "hello"}'"""
            )
        if issued:
            self.stdout.write("Keys are shown once; keep them now. `seed_demo --reset` rotates them.")
