from django.contrib import admin
from django.contrib.auth import views as auth_views
from django.urls import include, path
from django.views import defaults

from realtime.console import export, history, media, views

urlpatterns = [
    path("", views.dashboard, name="dashboard"),
    path("rows/", views.older_rows, name="older-rows"),
    path("counters/", views.counters, name="counters"),
    path("kinds.css", views.kind_styles, name="kind-styles"),
    path("legacy/", views.legacy, name="legacy"),
    path("history/", history.history, name="history"),
    path("history/export.csv", export.export_csv, name="history-export"),
    path("trend/", history.trend_fragment, name="trend"),
    path("violations/<slug:kind>/<int:pk>/", history.violation_detail, name="violation-detail"),
    path("violations/<slug:kind>/<int:pk>/acknowledge/", views.acknowledge, name="acknowledge"),
    path("violations/<slug:kind>/<int:pk>/note/", views.add_note, name="add-note"),
    path("violations/acknowledge/", views.acknowledge_many, name="acknowledge-many"),
    path("shelves/", views.shelf_list, name="shelves"),
    path("shelves/<int:pk>/end/", views.end_shelf, name="end-shelf"),
    path("violations/<slug:kind>/<int:pk>/image/", media.violation_image, name="violation-image"),
    path(
        "violations/<slug:kind>/<int:pk>/thumbnail/",
        media.violation_thumbnail,
        name="violation-thumbnail",
    ),
    path("healthz", views.healthz, name="healthz"),
    path("metrics", views.prometheus_metrics, name="metrics"),
    path("events/violations/", views.violation_events, name="violation-events"),
    path("events/violations/rows/", views.violation_row_events, name="violation-row-events"),
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
