from typing import Any

from django.contrib import admin
from django.db.models import Max
from django.http import HttpRequest, HttpResponse

from realtime.models import ApiToken, Event, HumanDetection, LotoDetection, PpeDetection
from realtime.rows import KIND_BY_TABLE


@admin.register(HumanDetection, LotoDetection, PpeDetection)
class ViolationAdmin(admin.ModelAdmin):
    list_display = [
        "id",
        "camera_id",
        "violation_date",
        "violation_time",
        "violation_image",
        "acknowledged_at",
        "acknowledged_by",
    ]
    list_filter = ["camera_id", "violation_date", "acknowledged_at"]
    search_fields = ["violation_image", "=camera_id"]
    date_hierarchy = "violation_date"
    ordering = ["-id"]
    # Live rows arrive at the top of the changelist (templates/admin/realtime/).
    change_list_template = "admin/realtime/violation_change_list.html"

    def changelist_view(
        self, request: HttpRequest, extra_context: dict[str, Any] | None = None
    ) -> HttpResponse:
        context = {
            "live_kind": KIND_BY_TABLE[self.model._meta.db_table].slug,
            "live_last_event_id": Event.objects.aggregate(last=Max("id"))["last"] or 0,
            **(extra_context or {}),
        }
        return super().changelist_view(request, context)


@admin.register(ApiToken)
class ApiTokenAdmin(admin.ModelAdmin):
    list_display = ["user", "created_at", "last_used_at"]
    readonly_fields = ["key_hash", "created_at", "last_used_at"]

    def has_add_permission(self, request: HttpRequest) -> bool:
        return False  # tokens are issued by `manage.py issue_token`, which shows the key once
