from django.contrib import admin
from django.contrib.auth import views as auth_views
from django.templatetags.static import static
from django.urls import include, path
from django.utils import timezone
from django.utils.translation import gettext_lazy as _
from django.views import defaults
from django.views.decorators.http import last_modified
from django.views.generic import RedirectView
from django.views.i18n import JavaScriptCatalog

# The catalogs change only with a deploy: a browser asks again with If-Modified-Since.
STARTED = timezone.now()

urlpatterns = [
    path("", include("realtime.urls")),
    # The scripts' strings in the request's language (gettext() in static/realtime/*.js).
    path(
        "jsi18n/",
        last_modified(lambda request: STARTED)(JavaScriptCatalog.as_view()),
        name="javascript-catalog",
    ),
    # The language selector's target (sets the django_language cookie, then goes back).
    path("i18n/", include("django.conf.urls.i18n")),
    # Browsers ask for it on pages without an icon of their own (the login): the console's.
    path(
        "favicon.ico",
        RedirectView.as_view(url=static("realtime/icons/icon.svg"), permanent=False),
    ),
    path(
        "accounts/login/",
        auth_views.LoginView.as_view(
            template_name="admin/login.html",
            extra_context={"site_header": _("Safety violations"), "site_title": _("Log in")},
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

admin.site.site_header = _("Safety violations")
admin.site.site_title = _("Safety violations")
admin.site.index_title = _("Administration")
