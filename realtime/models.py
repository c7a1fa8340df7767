from __future__ import annotations

import hashlib
import re
import secrets
from datetime import datetime
from typing import Any

from django.conf import settings
from django.contrib.postgres.fields import ArrayField
from django.core.validators import RegexValidator
from django.db import models
from django.utils.translation import gettext_lazy as _


class Violation(models.Model):
    """The columns the product reads from a detectors' table (it may have more).

    The tables belong to the detectors
    (docs/decisions/009-the-detectors-own-their-tables.md): these models are not managed,
    and the product's own state of a violation lives in its own tables.
    """

    camera_id = models.IntegerField(null=True, blank=True)
    violation_date = models.DateField(null=True, blank=True)
    violation_time = models.TimeField(null=True, blank=True)
    # NULL, not "": the detectors' own column, whatever they write stays as written.
    violation_image = models.TextField(null=True, blank=True)  # noqa: DJ001

    class Meta:
        abstract = True
        managed = False
        ordering = ["-violation_date", "-violation_time", "-id"]

    def __str__(self) -> str:
        return f"camera {self.camera_id} at {self.violation_date} {self.violation_time}"


class HumanDetection(Violation):
    class Meta(Violation.Meta):
        db_table = "violation_humandetections"
        verbose_name = _("person in restricted zone")
        verbose_name_plural = _("people in restricted zones")


class LotoDetection(Violation):
    class Meta(Violation.Meta):
        db_table = "violation_lotodetections"
        verbose_name = _("lock-out/tag-out breach")
        verbose_name_plural = _("lock-out/tag-out breaches")


class PpeDetection(Violation):
    class Meta(Violation.Meta):
        db_table = "violation_ppedetections"
        verbose_name = _("missing protective equipment")
        verbose_name_plural = _("missing protective equipment")


SOUND_PATH = re.compile(r"^(?!.*\.\.)[A-Za-z0-9_][A-Za-z0-9_./-]*\.(wav|mp3|ogg|oga|webm)$")
SOUND_FILE = RegexValidator(
    SOUND_PATH, "A sound file under static/, like realtime/sounds/two-tone.wav"
)


def validate_sound_exists(value: str) -> None:
    """A sound the page could not load would make that kind silent: refuse it here.
    (Django runs every validator: one SOUND_FILE refuses is not looked for.)"""
    from django.contrib.staticfiles import finders
    from django.core.exceptions import ValidationError

    if not value or SOUND_PATH.fullmatch(value) is None:
        return
    if not finders.find(value):
        raise ValidationError(f"There is no static file {value}.")


class ViolationKind(models.Model):
    """A kind of violation: a detectors' table the live table shows (`manage.py add_kind`)."""

    slug = models.SlugField(max_length=40, unique=True, help_text=_("In URLs: /?kind=SLUG"))
    label = models.CharField(max_length=60, help_text=_("The badge on each row"))
    schema_name = models.CharField(max_length=63)
    # The bare name, as the trigger writes it into the event log (TG_TABLE_NAME).
    table_name = models.CharField(max_length=63, unique=True)
    colour = models.CharField(
        max_length=7,
        default="#666666",
        validators=[RegexValidator(r"^#[0-9a-fA-F]{6}$", "A colour like #b02a37")],
        help_text=_("The badge's background, like #b02a37 (its text is white)"),
    )
    position = models.PositiveSmallIntegerField(default=100, help_text=_("Order on the page"))
    # A database default: servers of the previous version still add kinds during an upgrade.
    sound = models.CharField(
        max_length=200,
        blank=True,
        default="",
        db_default="",
        validators=[SOUND_FILE, validate_sound_exists],
        help_text=_(
            "Its own alert sound, a file under static/ (realtime/sounds/two-tone.wav"
            " is one); empty: the page's default sound"
        ),
    )

    class Meta:
        db_table = "realtime_kind"
        ordering = ["position", "slug"]
        verbose_name = _("kind of violation")
        verbose_name_plural = _("kinds of violation")

    def __str__(self) -> str:
        return f"{self.label} ({self.table_name})"


class Acknowledgement(models.Model):
    """An operator saw a violation: the first acknowledgement counts.

    Keyed by the violation's table and primary key, not a foreign key: the row lives in
    a table the product does not own (and may be gone).
    """

    NOTE_MAX = 1000

    table_name = models.CharField(max_length=63)
    violation_id = models.BigIntegerField()
    acknowledged_by = models.CharField(max_length=150)
    acknowledged_at = models.DateTimeField()
    # The latest note on it (each one is kept in OperatorAction); database defaults, so
    # code of the previous version still inserts acknowledgements during an upgrade.
    note = models.TextField(blank=True, default="", db_default="", max_length=NOTE_MAX)
    noted_by = models.CharField(max_length=150, blank=True, default="", db_default="")
    noted_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        db_table = "realtime_acknowledgement"
        constraints = [
            models.UniqueConstraint(
                fields=["table_name", "violation_id"], name="realtime_acknowledged_once"
            )
        ]
        ordering = ["-acknowledged_at"]

    def __str__(self) -> str:
        return f"{self.table_name} #{self.violation_id} by {self.acknowledged_by}"


class OperatorAction(models.Model):
    """What an operator did to a violation, who and when: the row's history."""

    ACKNOWLEDGE = "acknowledge"
    NOTE = "note"
    UNDO = "undo"
    ACTIONS = [
        (ACKNOWLEDGE, _("acknowledged")),
        (NOTE, _("added a note")),
        (UNDO, _("took the acknowledgement back")),
    ]

    table_name = models.CharField(max_length=63)
    violation_id = models.BigIntegerField()
    action = models.CharField(max_length=20, choices=ACTIONS)
    actor = models.CharField(max_length=150)
    at = models.DateTimeField()
    text = models.TextField(blank=True, default="")

    class Meta:
        db_table = "realtime_operator_action"
        indexes = [
            models.Index(fields=["table_name", "violation_id", "at"], name="realtime_action_row")
        ]
        ordering = ["at", "id"]
        verbose_name = _("operator action")

    def __str__(self) -> str:
        return f"{self.actor} {self.get_action_display()} {self.table_name} #{self.violation_id}"


class Shelf(models.Model):
    """A camera shelved by an operator until a chosen time (or until ended early).

    Its violations in that time are still recorded and listed, marked shelved, but make no
    sound and are not counted. A violation is covered by its own date and time, the
    plant's local time as the detector wrote it, read in `time_zone` (DJANGO_TIME_ZONE when
    the shelf was made): sql/008, realtime_shelves_covering(), is the one rule every
    reader uses.
    """

    REASON_MAX = 200

    camera_id = models.BigIntegerField()
    shelved_by = models.CharField(max_length=150)
    shelved_at = models.DateTimeField()
    until = models.DateTimeField(help_text=_("When the shelf ends by itself"))
    time_zone = models.CharField(max_length=64)
    reason = models.CharField(max_length=REASON_MAX, blank=True, default="")
    ended_at = models.DateTimeField(null=True, blank=True, help_text=_("Ended early"))
    ended_by = models.CharField(max_length=150, blank=True, default="")

    class Meta:
        db_table = "realtime_shelf"
        indexes = [models.Index(fields=["camera_id", "shelved_at"], name="realtime_shelf_camera")]
        ordering = ["-shelved_at", "-id"]
        verbose_name = _("shelved camera")

    def __str__(self) -> str:
        return f"camera {self.camera_id} shelved by {self.shelved_by}"

    @property
    def ends_at(self) -> datetime:
        return self.ended_at or self.until


class Site(models.Model):
    """A plant, or part of one: a set of cameras. Users and groups are given sites.

    While no site exists everyone who may log in sees every violation. Once one exists, a
    user sees the violations of the cameras of the sites given to them or their groups;
    superusers and holders of `realtime.view_all_sites` see everything, and a camera in no
    site only they see (realtime.access.scopes).
    """

    name = models.CharField(max_length=100, unique=True)
    cameras = ArrayField(models.IntegerField(), default=list, blank=True)
    users = models.ManyToManyField(
        settings.AUTH_USER_MODEL, blank=True, related_name="violation_sites"
    )
    groups = models.ManyToManyField("auth.Group", blank=True, related_name="violation_sites")

    class Meta:
        db_table = "realtime_site"
        ordering = ["name"]
        permissions = [("view_all_sites", "Can see the violations of every site")]

    def __str__(self) -> str:
        return self.name


class RowJSONField(models.JSONField):
    """A `json` (not jsonb) column: keeps the row as row_to_json() wrote it."""

    def db_type(self, connection: Any) -> str:
        return "json"

    def from_db_value(self, value: Any, expression: Any, connection: Any) -> Any:
        # psycopg already parses `json` columns (Django only turns that off for jsonb).
        if value is None or not isinstance(value, str):
            return value
        return super().from_db_value(value, expression, connection)


class EventLogRow(models.Model):
    """A row of the event log, written by the trigger in sql/ (not by Django).

    A row is one change, or the changes of a big statement packed together (sql/005:
    `ids` and `first_id` set, `data` an array): read changes through realtime.pipeline.event_log,
    which unpacks them.
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


class ApiToken(models.Model):
    """A bearer token for scripts and EventSource/WebSocket clients; only its hash is kept,
    and the first characters, to tell tokens apart in a list and revoke one."""

    PREFIX_LENGTH = 8
    # What a token may do: read (the streams, the pages that only show, the API's GETs), or
    # also act through the JSON API (acknowledge, notes, shelves; never the HTML forms).
    READ, ACT = "read", "act"
    # The words themselves are the labels (what `issue_token --scope` takes).
    SCOPES = [(READ, READ), (ACT, ACT)]

    user = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="api_tokens"
    )
    key_hash = models.CharField(max_length=64, unique=True)
    # Empty for tokens issued before prefixes were kept.
    key_prefix = models.CharField(max_length=PREFIX_LENGTH, blank=True, default="")
    created_at = models.DateTimeField(auto_now_add=True)
    last_used_at = models.DateTimeField(null=True, blank=True)
    expires_at = models.DateTimeField(null=True, blank=True, help_text=_("Empty: never"))
    scope = models.CharField(max_length=4, choices=SCOPES, default=READ)

    class Meta:
        verbose_name = _("API token")

    def __str__(self) -> str:
        return f"token {self.key_prefix or '(old)'}… of {self.user}"

    @property
    def label(self) -> str:
        """How `issue_token --list` names it, and what `--revoke` takes."""
        return self.key_prefix or f"old-{self.pk}"

    @staticmethod
    def hash_key(key: str) -> str:
        return hashlib.sha256(key.encode()).hexdigest()

    @classmethod
    def issue(cls, user: Any, expires_at: datetime | None = None, scope: str = READ) -> str:
        key = secrets.token_urlsafe(32)
        cls.objects.create(
            user=user,
            key_hash=cls.hash_key(key),
            key_prefix=key[: cls.PREFIX_LENGTH],
            expires_at=expires_at,
            scope=scope,
        )
        return key


# The alerts' models live in their room; imported here, they are this app's.
from realtime.alerts.models import (  # noqa: E402
    AlertProgress as AlertProgress,
)
from realtime.alerts.models import (  # noqa: E402
    Contact as Contact,
)
from realtime.alerts.models import (  # noqa: E402
    EscalationStep as EscalationStep,
)
from realtime.alerts.models import (  # noqa: E402
    Notification as Notification,
)
from realtime.alerts.models import (  # noqa: E402
    Presence as Presence,
)
from realtime.alerts.models import (  # noqa: E402
    Rule as Rule,
)
from realtime.webhooks.models import (  # noqa: E402
    Webhook as Webhook,
)
from realtime.webhooks.models import (  # noqa: E402
    WebhookDelivery as WebhookDelivery,
)
