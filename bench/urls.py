"""The product's URLs plus the benchmark's own endpoints (bench/settings.py only)."""

from django.urls import include, path

from bench.views import ExecuteNoAuthView, KeyscopeView, NoAuthView, cache_stats, peer_view

urlpatterns = [
    path("bench/execute-noauth/<str:org_slug>/<str:deployment_slug>/", ExecuteNoAuthView.as_view(), name="bench-execute-noauth"),
    path("bench/cache-stats/", cache_stats, name="bench-cache-stats"),
    path("bench/noauth/<str:org_slug>/<str:deployment_slug>/", NoAuthView.as_view(), name="bench-noauth"),
    path("bench/keyscope/<str:org_slug>/<str:deployment_slug>/", KeyscopeView.as_view(), name="bench-keyscope"),
    path("", include("backend.urls")),
]

if (DrfApiKeyView := peer_view()) is not None:
    urlpatterns.insert(0, path("bench/drf-api-key/", DrfApiKeyView.as_view(), name="bench-drf-api-key"))
