from django.contrib import admin
from django.urls import include, re_path

from backend.health import healthz

urlpatterns = [
    re_path(r"^healthz/?$", healthz, name="healthz"),
    re_path(r"^admin/", admin.site.urls),
]
