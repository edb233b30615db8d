from django.contrib import admin
from django.urls import include, re_path
from drf_spectacular.views import SpectacularAPIView, SpectacularSwaggerView

from backend.health import healthz
from backend.pages import favicon, home
from keys.api import OrganizationPolicyViewSet
from keys.leak_api import CredentialReportView, GitHubSecretScanningView
from keys.views import ExecuteView, ExecutionDetailView, KeyIntrospectionView, KeyRevokeView

# Paths answer with and without their trailing slash.
DEPLOYMENT = r"^api/v1/deployments/(?P<org_slug>[^/]+)/(?P<deployment_slug>[^/]+)"

# The admin is keyscope's: its name in the header and the title; "View site" leads to the landing page.
admin.site.site_header = admin.site.site_title = "keyscope"
admin.site.index_title = "Keys and deployments"
admin.site.site_url = "/"
# The lists need the width at 1280 px; the index and the breadcrumbs lead everywhere the sidebar did.
admin.site.enable_nav_sidebar = False

handler404 = "backend.exceptions.page_not_found"
handler500 = "backend.exceptions.server_error"

urlpatterns = [
    re_path(r"^$", home, name="home"),
    re_path(r"^favicon\.ico$", favicon, name="favicon"),
    re_path(r"^healthz/?$", healthz, name="healthz"),
    re_path(DEPLOYMENT + r"/execute/?$", ExecuteView.as_view(), name="deployment-execute"),
    re_path(DEPLOYMENT + r"/executions/(?P<execution_id>[^/]+)/?$", ExecutionDetailView.as_view(), name="execution-detail"),
    re_path(r"^api/v1/key/?$", KeyIntrospectionView.as_view(), name="key-introspection"),
    re_path(r"^api/v1/key/revoke/?$", KeyRevokeView.as_view(), name="key-revoke"),
    re_path(r"^api/v1/credentials/revoke/?$", CredentialReportView.as_view(), name="credentials-revoke"),
    re_path(r"^api/v1/secret-scanning/github/?$", GitHubSecretScanningView.as_view(), name="github-secret-scanning"),
    re_path(
        r"^api/v1/orgs/(?P<org_slug>[^/]+)/?$",
        OrganizationPolicyViewSet.as_view({"get": "retrieve", "patch": "partial_update"}),
        name="organization-detail",
    ),
    re_path(r"^api/v1/orgs/(?P<org_slug>[^/]+)/", include("backend.api_urls")),
    re_path(r"^api/schema/?$", SpectacularAPIView.as_view(), name="schema"),
    re_path(r"^api/docs/?$", SpectacularSwaggerView.as_view(url_name="schema"), name="swagger-ui"),
    re_path(r"^admin/", admin.site.urls),
]
