from __future__ import annotations

import hashlib
import secrets
from typing import Any

from django.conf import settings
from django.db import models

from realtime.changes import ChangeEvent


class Violation(models.Model):
    """The columns the detectors write; each kind has its own table."""

    camera_id = models.IntegerField(null=True, blank=True)
    violation_date = models.DateField(null=True, blank=True)
    violation_time = models.TimeField(null=True, blank=True)
    # NULL, not "": the detectors' own column, whatever they write stays as written.
    violation_image = models.TextField(null=True, blank=True)  # noqa: DJ001
    # Set by an operator from the live table; detectors leave them NULL.
    acknowledged_at = models.DateTimeField(null=True, blank=True)
    acknowledged_by = models.CharField(max_length=150, blank=True, db_default="")

    class Meta:
        abstract = True
        ordering = ["-violation_date", "-violation_time", "-id"]

    def __str__(self) -> str:
        return f"camera {self.camera_id} at {self.violation_date} {self.violation_time}"


class HumanDetection(Violation):
    class Meta(Violation.Meta):
        db_table = "violation_humandetections"
        verbose_name = "person in restricted zone"
        verbose_name_plural = "people in restricted zones"


class LotoDetection(Violation):
    class Meta(Violation.Meta):
        db_table = "violation_lotodetections"
        verbose_name = "lock-out/tag-out breach"
        verbose_name_plural = "lock-out/tag-out breaches"


class PpeDetection(Violation):
    class Meta(Violation.Meta):
        db_table = "violation_ppedetections"
        verbose_name = "missing protective equipment"
        verbose_name_plural = "missing protective equipment"


WATCHED_TABLES = [m._meta.db_table for m in (HumanDetection, LotoDetection, PpeDetection)]


class RowJSONField(models.JSONField):
    """A `json` (not jsonb) column: keeps the row as row_to_json() wrote it."""

    def db_type(self, connection: Any) -> str:
        return "json"

    def from_db_value(self, value: Any, expression: Any, connection: Any) -> Any:
        # psycopg already parses `json` columns (Django only turns that off for jsonb).
        if value is None or not isinstance(value, str):
            return value
        return super().from_db_value(value, expression, connection)


class Event(models.Model):
    """The event log, written by the trigger in sql/ (not by Django).

    A row is one change, or the changes of a big statement packed together (sql/005:
    `ids` and `first_id` set, `data` an array): read changes through realtime.eventlog,
    which unpacks them. The model serves the newest id and rows of single changes.
    """

    id = models.BigAutoField(primary_key=True)
    table_name = models.TextField()
    op = models.TextField()
    data = RowJSONField()
    created_at = models.DateTimeField()

    class Meta:
        managed = False
        db_table = "realtime_event"
        ordering = ["id"]

    def __str__(self) -> str:
        return f"#{self.id} {self.op} {self.table_name}"

    def as_change(self) -> ChangeEvent:
        """The event as every stream sends it."""
        return {"id": self.id, "table": self.table_name, "op": self.op, "data": self.data}  # type: ignore[typeddict-item]


class ApiToken(models.Model):
    """A bearer token for scripts and EventSource/WebSocket clients; only its hash is kept."""

    user = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="api_tokens"
    )
    key_hash = models.CharField(max_length=64, unique=True)
    created_at = models.DateTimeField(auto_now_add=True)
    last_used_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        verbose_name = "API token"

    def __str__(self) -> str:
        return f"token of {self.user} created {self.created_at:%Y-%m-%d}"

    @staticmethod
    def hash_key(key: str) -> str:
        return hashlib.sha256(key.encode()).hexdigest()

    @classmethod
    def issue(cls, user: Any) -> str:
        key = secrets.token_urlsafe(32)
        cls.objects.create(user=user, key_hash=cls.hash_key(key))
        return key
