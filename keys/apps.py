from django.apps import AppConfig


class KeysConfig(AppConfig):
    default_auto_field = "django.db.models.BigAutoField"
    name = "keys"

    def ready(self) -> None:
        from keys import services, signals  # noqa: F401  (services hands the managers their issue())

        signals.connect()
