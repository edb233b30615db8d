import secrets

from django.conf import settings
from django.contrib.auth import get_user_model
from django.core.management.base import BaseCommand
from django.db import transaction

from deployments.models import Deployment
from organizations.models import Membership, Organization

DEMO_ORG_SLUG = "demo"
DEMO_USERNAME = "demo-admin"
DEMO_DEPLOYMENTS = [
    ("summarize", "Summarize", "Returns a summary of the posted document (echo runner)."),
    ("classify", "Classify", "Labels the posted document (echo runner)."),
    ("extract", "Extract", "Pulls fields out of the posted document (echo runner)."),
]


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

    @transaction.atomic
    def handle(self, *args, reset: bool = False, **options) -> None:
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
        for slug, name, description in DEMO_DEPLOYMENTS:
            _, created = Deployment.objects.get_or_create(
                organization=org, slug=slug, defaults={"name": name, "description": description}
            )
            if created:
                self.stdout.write(f"Deployment: {org.slug}/{slug}")
