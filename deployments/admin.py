from django.contrib import admin

from deployments.models import Deployment, Execution


@admin.register(Deployment)
class DeploymentAdmin(admin.ModelAdmin):
    list_display = ["slug", "name", "organization", "is_active", "runner", "created_at"]
    list_filter = ["is_active", "organization"]
    search_fields = ["slug", "name"]


@admin.register(Execution)
class ExecutionAdmin(admin.ModelAdmin):
    list_display = ["id", "deployment", "status", "http_status", "elapsed_ms", "key_name", "created_at"]
    list_filter = ["status"]
    date_hierarchy = "created_at"

    def has_add_permission(self, request, obj=None) -> bool:
        return False

    def has_change_permission(self, request, obj=None) -> bool:
        return False
