from __future__ import annotations

from functools import cached_property
from typing import Any

from django import forms
from django.conf import settings
from django.contrib import admin
from django.core.paginator import Paginator
from django.db import connection
from django.db.models import F, OuterRef, QuerySet, Subquery
from django.db.models.expressions import RawSQL
from django.http import HttpRequest, HttpResponse
from django.template.loader import render_to_string
from django.utils.formats import number_format
from django.utils.html import format_html, format_html_join
from django.utils.translation import gettext as _
from django.utils.translation import gettext_lazy

from realtime.access import scopes
from realtime.access.admin_scope import ByCamera, ByViolation, SharedAdmin
from realtime.alerts import admin as alerts_admin  # noqa: F401  (registers contacts and rules)
from realtime.console import media
from realtime.console.rows import ViolationRow
from realtime.models import (
    Acknowledgement,
    ApiToken,
    HumanDetection,
    LotoDetection,
    OperatorAction,
    PpeDetection,
    Shelf,
    Site,
    ViolationKind,
)
from realtime.pipeline import event_log
from realtime.violations import kinds
from realtime.violations.contract import SORT_DATE, SORT_TIME
from realtime.webhooks import admin as webhooks_admin  # noqa: F401  (registers the webhooks)


class EstimatedCountPaginator(Paginator):  # type: ignore[type-arg]
    """The planner's row estimate for a whole table: count(*) of millions of rows takes
    seconds, and the changelist only needs it to number its pages. The page says it is an
    estimate ("about 50,000": templates/admin/realtime/pagination.html, search_form.html)."""

    # Below this many rows by the planner's estimate, counting them is quick: exact.
    EXACT_BELOW = 1000

    @cached_property
    def estimate(self) -> int | None:
        """The planner's estimate of the rows, for a whole table; None for a filtered list,
        a table never analysed or a small one (then the count is exact)."""
        query = self.object_list
        if not isinstance(query, QuerySet) or query.query.where:
            return None
        with connection.cursor() as cursor:
            cursor.execute(
                "SELECT reltuples::bigint FROM pg_class WHERE oid = to_regclass(%s)",
                [connection.ops.quote_name(query.model._meta.db_table)],
            )
            row = cursor.fetchone()
        if row is None or row[0] < self.EXACT_BELOW:  # -1: never analysed
            return None
        return int(row[0])

    @cached_property
    def count(self) -> int:
        return self.estimate if self.estimate is not None else super().count

    @property
    def estimate_text(self) -> str:
        """The estimate as the page writes it, to two significant digits ("about 50,000"),
        or "" where the count is exact."""
        if self.estimate is None:
            return ""
        rounded = round(self.estimate, 2 - len(str(self.estimate)))
        return _("about %(count)s") % {"count": number_format(rounded, force_grouping=True)}


class ReadOnlyAdmin(admin.ModelAdmin):  # type: ignore[type-arg]
    """Shown, never added, changed or deleted here: the detectors' rows, and what happened."""

    def has_add_permission(self, request: HttpRequest) -> bool:
        return False

    def has_change_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False

    def has_delete_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False


@admin.register(HumanDetection, LotoDetection, PpeDetection)
class ViolationAdmin(ByCamera, ReadOnlyAdmin):
    """The detectors' rows of the user's cameras, to look at: the product does not own
    them, so no add, change or delete. The acknowledgement comes from the product's own
    table."""

    list_display = [
        "violation",
        "camera_id",
        "violation_date",
        "violation_time",
        "violation_image",
        "thumbnail",
        "acknowledged_at",
        "acknowledged_by",
        "other_columns",
    ]
    search_fields = ["violation_image", "=camera_id"]
    paginator = EstimatedCountPaginator
    show_full_result_count = False
    actions = None
    readonly_fields = ("violation", "acknowledged_at", "acknowledged_by", "all_columns")
    fields = readonly_fields
    # Live rows arrive at the top of the changelist (templates/admin/realtime/).
    change_list_template = "admin/realtime/violation_change_list.html"

    def get_ordering(self, request: HttpRequest) -> list[Any]:
        # The sort key of the product's index (manage.py create_indexes), newest first.
        return [RawSQL(SORT_DATE, []).desc(), RawSQL(SORT_TIME, []).desc(), F("id").desc()]

    def get_queryset(self, request: HttpRequest) -> QuerySet[Any]:
        table = self.model._meta.db_table
        acknowledgements = Acknowledgement.objects.filter(
            table_name=table, violation_id=OuterRef("pk")
        )
        queryset: QuerySet[Any] = (
            super()
            .get_queryset(request)
            .annotate(
                ack_at=Subquery(acknowledgements.values("acknowledged_at")[:1]),
                ack_by=Subquery(acknowledgements.values("acknowledged_by")[:1]),
                row_data=RawSQL(f"row_to_json({connection.ops.quote_name(table)}.*)", []),
            )
        )
        return queryset

    def _kind(self) -> kinds.Kind | None:
        return kinds.knowing(table=self.model._meta.db_table).by_table.get(
            self.model._meta.db_table
        )

    @admin.display(description=gettext_lazy("ID"), ordering="id")
    def violation(self, obj: Any) -> str:
        kind = self._kind()
        slug = kind.slug if kind else ""
        return format_html('<span data-violation="{}-{}">{}</span>', slug, obj.pk, obj.pk)

    @admin.display(description=gettext_lazy("acknowledged at"))
    def acknowledged_at(self, obj: Any) -> Any:
        return obj.ack_at

    @admin.display(description=gettext_lazy("acknowledged by"))
    def acknowledged_by(self, obj: Any) -> Any:
        return obj.ack_by

    @admin.display(description=gettext_lazy("other columns"))
    def other_columns(self, obj: Any) -> str:
        kind = self._kind()
        if kind is None:
            return ""
        return ViolationRow.from_data(kind, obj.row_data or {}).extra_text

    @admin.display(description=gettext_lazy("thumbnail"))
    def thumbnail(self, obj: Any) -> str | None:
        kind = self._kind()
        image = media.row_image(ViolationRow.from_data(kind, obj.row_data or {})) if kind else None
        if image is None:
            return None  # the admin's "-"
        return render_to_string("realtime/_row_thumbnail.html", {"image": image, "focusable": True})

    @admin.display(description=gettext_lazy("every column, as the detectors wrote it"))
    def all_columns(self, obj: Any) -> str:
        return format_html(
            "<table>{}</table>",
            format_html_join(
                "",
                "<tr><th>{}</th><td>{}</td></tr>",
                (
                    (name, "" if value is None else value)
                    for name, value in (obj.row_data or {}).items()
                ),
            ),
        )

    def changelist_view(
        self, request: HttpRequest, extra_context: dict[str, Any] | None = None
    ) -> HttpResponse:
        kind = self._kind()
        context = {
            "live_kind": kind.slug if kind else None,
            "live_last_event_id": str(event_log.current_position()),
            "heartbeat_seconds": settings.REALTIME_HEARTBEAT_SECONDS,
            **(extra_context or {}),
        }
        return super().changelist_view(request, context)


@admin.register(ViolationKind)
class ViolationKindAdmin(SharedAdmin):
    """Labels, colours, sounds and order are edited here, by those who may manage sites
    (every site's screens show them); `manage.py add_kind` adds and removes kinds, since
    that attaches or detaches the trigger on the table."""

    managed = frozenset({"change"})

    list_display = ["label", "slug", "table_name", "schema_name", "colour", "sound", "position"]
    list_editable = ["position"]
    readonly_fields = ["slug", "schema_name", "table_name"]
    fields = ["label", "colour", "sound", "position", *readonly_fields]

    def has_add_permission(self, request: HttpRequest) -> bool:
        return False

    def has_delete_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False


@admin.register(Acknowledgement)
class AcknowledgementAdmin(ByViolation):
    """Those of the user's violations. Deleting one un-acknowledges the violation, on every
    screen."""

    list_display = ["table_name", "violation_id", "acknowledged_by", "acknowledged_at", "note"]
    list_filter = ["table_name"]
    search_fields = ["acknowledged_by", "=violation_id", "note"]
    readonly_fields = [
        "table_name",
        "violation_id",
        "acknowledged_by",
        "acknowledged_at",
        "note",
        "noted_by",
        "noted_at",
    ]

    def has_add_permission(self, request: HttpRequest) -> bool:
        return False  # operators acknowledge from the live table


@admin.register(OperatorAction)
class OperatorActionAdmin(ByViolation, ReadOnlyAdmin):
    """The operators' history of the user's violations: read-only, it is what happened."""

    list_display = ["at", "actor", "action", "table_name", "violation_id", "text"]
    list_filter = ["action", "table_name"]
    search_fields = ["actor", "=violation_id", "text"]
    date_hierarchy = "at"


@admin.register(ApiToken)
class ApiTokenAdmin(SharedAdmin):
    """Every token, to those who may manage sites (a token acts with its user's scope);
    anyone else with the permissions sees and may revoke (delete) only their own."""

    list_display = ["user", "key_prefix", "scope", "created_at", "last_used_at", "expires_at"]
    # A token's scope is chosen when it is issued: nobody widens their own token here.
    readonly_fields = ["user", "key_prefix", "key_hash", "scope", "created_at", "last_used_at"]
    managed = frozenset({"change"})

    def get_queryset(self, request: HttpRequest) -> QuerySet[Any]:
        queryset: QuerySet[Any] = super().get_queryset(request)
        if scopes.manages_sites(request.user):
            return queryset
        return queryset.filter(user_id=request.user.pk)

    def has_add_permission(self, request: HttpRequest) -> bool:
        return False  # tokens are issued by `manage.py issue_token`, which shows the key once


@admin.register(Shelf)
class ShelfAdmin(ByCamera, ReadOnlyAdmin):
    """Who shelved which of the user's cameras, and when: read-only here. Operators shelve
    and unshelve on the live table, which tells every open screen."""

    list_display = [
        "camera_id",
        "shelved_by",
        "shelved_at",
        "until",
        "ended_at",
        "ended_by",
        "reason",
    ]
    list_filter = ["shelved_by"]
    search_fields = ["=camera_id", "shelved_by", "reason"]
    date_hierarchy = "shelved_at"


class SiteForm(forms.ModelForm):  # type: ignore[type-arg]
    """The cameras as ranges ("1,2,5-9"), as `manage.py sites set` takes them."""

    camera_list = forms.CharField(
        label=gettext_lazy("Cameras"),
        required=False,
        help_text=gettext_lazy("Camera numbers and ranges, like 1,2,5-9"),
        widget=forms.TextInput(attrs={"size": 60}),
    )

    class Meta:
        model = Site
        fields = ["name", "camera_list", "users", "groups"]

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.fields["camera_list"].initial = scopes.format_cameras(self.instance.cameras or [])

    def clean_camera_list(self) -> list[int]:
        try:
            return scopes.parse_cameras(self.cleaned_data.get("camera_list") or "")
        except scopes.BadCameras as exc:
            raise forms.ValidationError(str(exc)) from exc

    def save(self, commit: bool = True) -> Any:
        self.instance.cameras = self.cleaned_data["camera_list"]
        return super().save(commit)


@admin.register(Site)
class SiteAdmin(SharedAdmin):
    """Sites group cameras; users and groups are given sites (realtime.access.scopes has the rule),
    by those who may manage sites only. Open streams follow a change within seconds."""

    form = SiteForm
    list_display = ["name", "camera_ranges", "granted_to"]
    search_fields = ["name"]
    filter_horizontal = ["users", "groups"]

    def save_related(self, request: HttpRequest, form: Any, formsets: Any, change: bool) -> None:
        super().save_related(request, form, formsets, change)
        scopes.forget()  # this process at once; the others within seconds

    def delete_model(self, request: HttpRequest, obj: Any) -> None:
        super().delete_model(request, obj)
        scopes.forget()

    def delete_queryset(self, request: HttpRequest, queryset: Any) -> None:
        super().delete_queryset(request, queryset)
        scopes.forget()

    @admin.display(description=gettext_lazy("cameras"))
    def camera_ranges(self, obj: Site) -> str:
        return scopes.format_cameras(obj.cameras)

    @admin.display(description=gettext_lazy("given to"))
    def granted_to(self, obj: Site) -> str:
        names = [user.get_username() for user in obj.users.all()]
        names += [f"group {group.name}" for group in obj.groups.all()]
        return ", ".join(names) or "-"
