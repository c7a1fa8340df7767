"""Every URL of the product, by room; config/urls.py includes them beside the admin's and
the logins'."""

from __future__ import annotations

from django.urls import path

from realtime.alerts import views as alert_views
from realtime.api.api import api
from realtime.console import action_views, export, history, media, views, web_app
from realtime.streams import endpoints

console = [
    path("", views.dashboard, name="dashboard"),
    path("rows/", views.older_rows, name="older-rows"),
    path("counters/", views.counters, name="counters"),
    path("watching/", views.watching, name="watching"),
    path("kinds.css", views.kind_styles, name="kind-styles"),
    path("legacy/", views.legacy, name="legacy"),
    path("history/", history.history, name="history"),
    path("history/export.csv", export.export_csv, name="history-export"),
    path("trend/", history.trend_fragment, name="trend"),
    path("violations/<slug:kind>/<int:pk>/", history.violation_detail, name="violation-detail"),
    path("violations/<slug:kind>/<int:pk>/image/", media.violation_image, name="violation-image"),
    path(
        "violations/<slug:kind>/<int:pk>/thumbnail/",
        media.violation_thumbnail,
        name="violation-thumbnail",
    ),
    path("manifest.webmanifest", web_app.manifest, name="web-app-manifest"),
    path("service-worker.js", web_app.service_worker, name="service-worker"),
    path("offline/", web_app.offline, name="offline"),
]

actions = [
    path(
        "violations/<slug:kind>/<int:pk>/acknowledge/",
        action_views.acknowledge,
        name="acknowledge",
    ),
    path("violations/<slug:kind>/<int:pk>/note/", action_views.add_note, name="add-note"),
    path(
        "violations/<slug:kind>/<int:pk>/shelve/",
        action_views.shelve_camera,
        name="shelve-camera",
    ),
    path("violations/<slug:kind>/<int:pk>/undo/", action_views.undo, name="undo"),
    path("violations/acknowledge/", action_views.acknowledge_many, name="acknowledge-many"),
    path("violations/undo/", action_views.undo_many, name="undo-many"),
    path(
        "history/acknowledge/",
        action_views.history_acknowledge_many,
        name="history-acknowledge-many",
    ),
    path("shelves/", action_views.shelf_list, name="shelves"),
    path("shelves/<int:pk>/end/", action_views.end_shelf, name="end-shelf"),
]

alerts = [
    path("notifications/", alert_views.notifications, name="notifications"),
    path("notifications/<int:key>/resend/", alert_views.resend, name="notification-resend"),
]

streams = [
    path("events/violations/", endpoints.violation_events, name="violation-events"),
    path("events/violations/rows/", endpoints.violation_row_events, name="violation-row-events"),
    path("healthz", endpoints.healthz, name="healthz"),
    path("metrics", endpoints.prometheus_metrics, name="metrics"),
]

# For other programs: JSON, documented at /api/v1/docs (realtime.api).
programs = [path("api/v1/", api.urls)]

urlpatterns = [*console, *actions, *alerts, *streams, *programs]
