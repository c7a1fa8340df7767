"""The webhooks in the admin (for managers of notifications, as contacts and rules are): a
subscription's secret is shown only to them; its deliveries are its log, read-only."""

from __future__ import annotations

from typing import Any

from django.contrib import admin
from django.http import HttpRequest

from realtime.alerts.admin import NotificationsPermission
from realtime.webhooks.models import Webhook, WebhookDelivery


@admin.register(Webhook)
class WebhookAdmin(NotificationsPermission, admin.ModelAdmin):  # type: ignore[type-arg]
    list_display = ["id", "url", "enabled", "failing_since", "disabled_reason"]
    list_filter = ["enabled"]
    filter_horizontal = ["sites"]
    readonly_fields = ["failing_since", "created_at"]


@admin.register(WebhookDelivery)
class WebhookDeliveryAdmin(NotificationsPermission, admin.ModelAdmin):  # type: ignore[type-arg]
    """The delivery log of each subscription: read-only."""

    list_display = ["id", "webhook", "event_id", "event_type", "status", "attempts", "last_error"]
    list_filter = ["status", "webhook"]
    list_select_related = ["webhook"]

    def has_add_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False

    def has_change_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False
