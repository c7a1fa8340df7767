from django.contrib import admin

from realtime.models import ApiToken, HumanDetection, LotoDetection, PpeDetection


@admin.register(HumanDetection, LotoDetection, PpeDetection)
class ViolationAdmin(admin.ModelAdmin):
    list_display = ["id", "camera_id", "violation_date", "violation_time", "violation_image"]
    list_filter = ["camera_id", "violation_date"]
    search_fields = ["violation_image"]
    date_hierarchy = "violation_date"


@admin.register(ApiToken)
class ApiTokenAdmin(admin.ModelAdmin):
    list_display = ["user", "created_at", "last_used_at"]
    readonly_fields = ["key_hash", "created_at", "last_used_at"]
