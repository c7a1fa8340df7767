from django.contrib import admin
from django.contrib.auth import views as auth_views
from django.templatetags.static import static
from django.urls import include, path
from django.views import defaults
from django.views.generic import RedirectView

urlpatterns = [
    path("", include("realtime.urls")),
    # Browsers ask for it on pages without an icon of their own (the login): the console's.
    path(
        "favicon.ico",
        RedirectView.as_view(url=static("realtime/icons/icon.svg"), permanent=False),
    ),
    path(
        "accounts/login/",
        auth_views.LoginView.as_view(
            template_name="admin/login.html",
            extra_context={"site_header": "Safety violations", "site_title": "Log in"},
        ),
        name="login",
    ),
    path("accounts/", include("django.contrib.auth.urls")),
    path("admin/", admin.site.urls),
]

# Django's error views carry requires_csrf_token, which reads a POST's body when nothing
# did before (a URL that does not resolve, a Host header refused first): a body that cannot
# be parsed (a multipart without its boundary) turned the 404 or 400 into a 500. These
# pages hold no form; the same views without the decorator.
handler400 = defaults.bad_request.__wrapped__  # type: ignore[attr-defined]
handler403 = defaults.permission_denied.__wrapped__  # type: ignore[attr-defined]
handler404 = defaults.page_not_found.__wrapped__  # type: ignore[attr-defined]

admin.site.site_header = "Safety violations"
admin.site.site_title = "Safety violations"
admin.site.index_title = "Administration"
