from django.contrib import admin
from django.contrib.auth import views as auth_views
from django.urls import include, path

from realtime import views

urlpatterns = [
    path("", views.dashboard, name="dashboard"),
    path("events/violations/", views.violation_events, name="violation-events"),
    path(
        "accounts/login/",
        auth_views.LoginView.as_view(
            template_name="admin/login.html",
            extra_context={"site_header": admin.site.site_header, "site_title": "Log in"},
        ),
        name="login",
    ),
    path("accounts/", include("django.contrib.auth.urls")),
    path("admin/", admin.site.urls),
]

admin.site.site_header = "Safety violations"
admin.site.site_title = "Safety violations"
admin.site.index_title = "Administration"
