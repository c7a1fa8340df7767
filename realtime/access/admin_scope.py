"""The admin obeys the sites (realtime.access.scopes), as every page does.

- The detectors' rows and the shelves: those of the user's cameras.
- What the product keeps of a violation, keyed by (table, id): acknowledgements (and their
  notes) and operator actions, those whose violation is of the user's cameras. Of a row
  that is gone, or of a table that is no longer a kind, only those who see every camera
  see them: the camera that would decide is not known.
- What every site shares (sites, other users' tokens, the kinds' looks): managed only by
  those who may manage sites (`scopes.manages_sites`), with the models' usual permissions.

The scope filters the admin's queryset, so lists, counts, searches, filters' choices,
facets, dates and the bulk actions see only the user's rows; an object outside it is a 404
on its change, delete and history pages, as one that does not exist.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, ClassVar

from django.contrib import admin
from django.db.models import BooleanField, Expression, F, Q, QuerySet
from django.http import Http404, HttpRequest

from realtime.access import scopes
from realtime.violations import kinds, queries
from realtime.violations.kinds import Kind


class NotFoundAdmin(admin.ModelAdmin):  # type: ignore[type-arg]
    """An object the admin's queryset does not hold is a 404 (change, delete, history)."""

    def get_object(self, request: HttpRequest, object_id: str, from_field: Any = None) -> Any:
        # Django redirects to the index for a missing object; a 404 says as little and is
        # what every other path answers outside one's sites.
        found = super().get_object(request, object_id, from_field)
        if found is None:
            raise Http404("No such object")
        return found


class ScopedAdmin(NotFoundAdmin):
    """An admin of rows that belong to cameras: `in_scope` keeps the user's."""

    def in_scope(self, queryset: QuerySet[Any], cameras: list[int]) -> QuerySet[Any]:
        raise NotImplementedError

    def get_queryset(self, request: HttpRequest) -> QuerySet[Any]:
        queryset: QuerySet[Any] = super().get_queryset(request)
        scope = scopes.of_user(request.user)
        if scope is None:
            return queryset
        if not scope:
            return queryset.none()
        return self.in_scope(queryset, sorted(scope))


class ByCamera(ScopedAdmin):
    def in_scope(self, queryset: QuerySet[Any], cameras: list[int]) -> QuerySet[Any]:
        return queryset.filter(camera_id__in=cameras)


class ByViolation(ScopedAdmin):
    """Rows keyed by (table_name, violation_id): the violation's camera decides."""

    # A search's "(N total)" would count them all a second time (seconds on big tables).
    show_full_result_count = False

    def in_scope(self, queryset: QuerySet[Any], cameras: list[int]) -> QuerySet[Any]:
        return queryset.filter(of_violations(self.model._meta.db_table, cameras))


def of_violations(table: str, cameras: list[int]) -> Q:
    """The rows of the product's `table`, keyed by (table_name, violation_id), whose violation
    is of one of `cameras`: a probe of the kind's primary key per row."""
    condition = Q(pk__in=[])
    for kind in queries.with_tables(list(kinds.registry())):
        condition |= Q(Q(table_name=kind.table), OfCameras(kind, cameras))
    return condition


class OfCameras(Expression):
    """Whether the kind's row `violation_id` names is of one of `cameras` (an EXISTS: a
    column reference Django relabels, where RawSQL's text would not follow)."""

    output_field = BooleanField()
    conditional = True

    def __init__(self, kind: Kind, cameras: list[int], column: Any = None) -> None:
        super().__init__()
        self.kind, self.cameras = kind, cameras
        self.column = column if column is not None else F("violation_id")

    def get_source_expressions(self) -> list[Any]:
        return [self.column]

    def set_source_expressions(self, exprs: Sequence[Any]) -> None:
        (self.column,) = exprs

    def as_sql(self, compiler: Any, connection: Any) -> tuple[str, Any]:
        column, params = compiler.compile(self.column)
        return (
            f"EXISTS (SELECT 1 FROM {self.kind.qualified} kind_row WHERE kind_row.id = {column}"
            " AND kind_row.camera_id = ANY(%s::bigint[]))",
            (*params, self.cameras),
        )


class SharedAdmin(NotFoundAdmin):
    """What every site shares: the `managed` permissions also need `scopes.manages_sites`."""

    managed: ClassVar[frozenset[str]] = frozenset({"view", "add", "change", "delete"})

    def _manager_or_free(self, request: HttpRequest, action: str) -> bool:
        return action not in self.managed or scopes.manages_sites(request.user)

    def has_view_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return self._manager_or_free(request, "view") and super().has_view_permission(request, obj)

    def has_add_permission(self, request: HttpRequest) -> bool:
        return self._manager_or_free(request, "add") and super().has_add_permission(request)

    def has_change_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return self._manager_or_free(request, "change") and super().has_change_permission(
            request, obj
        )

    def has_delete_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return self._manager_or_free(request, "delete") and super().has_delete_permission(
            request, obj
        )
