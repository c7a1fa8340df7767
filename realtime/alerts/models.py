"""Contacts and rules (what to send to whom), the outbox (what was decided, one row per
rule, step, contact and violation, recorded before anything is sent), the worker's place
in the event log, and who is watching (presence).

Imported by realtime.models, so they are the app's models like the others.
"""

from __future__ import annotations

from django.contrib.postgres.fields import ArrayField
from django.db import models
from django.utils.translation import gettext_lazy as _

# A rule's or contact's name: the TOML file's keys ([contacts.NAME], name = "...").
NAME_MAX = 100


class Contact(models.Model):
    """Where a message goes: `mailto:` (Django's e-mail settings) or any Apprise URL. The URL
    may hold a secret (a chat's token): only managers of notifications see it."""

    name = models.CharField(max_length=NAME_MAX, unique=True)
    url = models.CharField(max_length=2000)

    class Meta:
        db_table = "realtime_alert_contact"
        ordering = ["name"]
        verbose_name = _("contact")
        verbose_name_plural = _("contacts")
        permissions = [
            ("manage_notifications", "Can edit contacts and alert rules"),
            ("view_notifications", "Can see the messages sent about violations"),
        ]

    def __str__(self) -> str:
        return self.name


class Rule(models.Model):
    """Which violations notify whom. A violation is covered when its kind is one of
    `kinds` (or there are none), its camera in one of `sites` (or there are none) and one of
    `cameras` (or there are none)."""

    ESCALATE_NOW = "escalate-now"
    WHEN_UNWATCHED = [("", _("nothing more")), (ESCALATE_NOW, _("send the first escalation now"))]

    name = models.CharField(max_length=NAME_MAX, unique=True)
    kinds = ArrayField(models.CharField(max_length=40), default=list, blank=True)
    sites = models.ManyToManyField("realtime.Site", blank=True, related_name="alert_rules")
    cameras = ArrayField(models.BigIntegerField(), default=list, blank=True)
    notify = models.ManyToManyField(Contact, blank=True, related_name="rules")
    consolidate_seconds = models.PositiveIntegerField(default=0)
    cooldown_seconds = models.PositiveIntegerField(default=0)
    when_unwatched = models.CharField(max_length=20, choices=WHEN_UNWATCHED, blank=True)

    class Meta:
        db_table = "realtime_alert_rule"
        ordering = ["name"]
        verbose_name = _("alert rule")
        verbose_name_plural = _("alert rules")

    def __str__(self) -> str:
        return self.name


class EscalationStep(models.Model):
    """Sent when the violation is still unacknowledged (and not shelved) `after_seconds`
    after it was committed; the steps of a rule in order of `after_seconds`."""

    rule = models.ForeignKey(Rule, on_delete=models.CASCADE, related_name="steps")
    after_seconds = models.PositiveIntegerField()
    notify = models.ManyToManyField(Contact, related_name="escalations")

    class Meta:
        db_table = "realtime_alert_step"
        ordering = ["rule", "after_seconds", "id"]
        verbose_name = _("escalation step")
        verbose_name_plural = _("escalation steps")

    def __str__(self) -> str:
        return f"{self.rule} after {self.after_seconds} s"


class Notification(models.Model):
    """One violation, for one contact, by one rule's step (0: the first message; n: the
    n-th escalation step): the outbox. Decided from the event log and written before
    anything is sent; the rows sent together share `batch` (the first one's id: the
    message's Idempotency-Key and Message-ID)."""

    PENDING, SENDING, SENT, FAILED, CANCELLED = "pending", "sending", "sent", "failed", "cancelled"
    STATUSES = [
        (PENDING, _("pending")),
        (SENDING, _("sending")),
        (SENT, _("sent")),
        (FAILED, _("failed")),
        (CANCELLED, _("cancelled")),
    ]

    rule = models.ForeignKey(Rule, null=True, on_delete=models.SET_NULL, related_name="+")
    rule_name = models.CharField(max_length=NAME_MAX)
    step = models.PositiveSmallIntegerField(default=0)
    contact = models.ForeignKey(Contact, null=True, on_delete=models.SET_NULL, related_name="+")
    contact_name = models.CharField(max_length=NAME_MAX)
    table_name = models.CharField(max_length=63)
    violation_id = models.BigIntegerField()
    camera_id = models.BigIntegerField(null=True)
    # The change that decided it, and when its log row was written (in the detector's
    # transaction: about its commit; the latency is measured from it; escalation steps are
    # due `after_seconds` from the decision).
    event_id = models.BigIntegerField()
    committed_at = models.DateTimeField()
    decided_at = models.DateTimeField(auto_now_add=True)
    due_at = models.DateTimeField()
    status = models.CharField(max_length=10, choices=STATUSES, default=PENDING)
    batch = models.BigIntegerField(null=True, blank=True)
    attempts = models.PositiveIntegerField(default=0)
    next_attempt_at = models.DateTimeField(null=True, blank=True)
    # A worker sending it holds it until then; past it, another takes it over.
    lease_until = models.DateTimeField(null=True, blank=True)
    last_error = models.TextField(blank=True, default="")
    # Retries run REALTIME_ALERT_RETRY_FOR from here: when decided (None), or when a
    # person had a failed message sent again.
    retry_from = models.DateTimeField(null=True, blank=True)
    sent_at = models.DateTimeField(null=True, blank=True)
    cancelled_because = models.CharField(max_length=100, blank=True, default="")

    class Meta:
        db_table = "realtime_notification"
        constraints = [
            models.UniqueConstraint(
                fields=["rule", "step", "contact", "table_name", "violation_id"],
                name="realtime_notification_once",
            )
        ]
        indexes = [
            models.Index(fields=["status", "due_at"], name="realtime_notification_due"),
            models.Index(fields=["table_name", "violation_id"], name="realtime_notification_row"),
            models.Index(fields=["batch"], name="realtime_notification_batch"),
        ]
        ordering = ["-decided_at", "-id"]
        verbose_name = _("notification")
        verbose_name_plural = _("notifications")

    def __str__(self) -> str:
        return f"{self.rule_name} step {self.step} to {self.contact_name}: {self.status}"


class AlertProgress(models.Model):
    """Where a reader of the event log is (a position: id and transaction horizon,
    realtime.pipeline.positions): "notify", the deciding worker, moved in the same
    transaction as the outbox rows it wrote; "mqtt", the MQTT publisher, moved once the
    broker acknowledged what it published (realtime.integrations.mqtt)."""

    name = models.CharField(max_length=40, primary_key=True)
    position = models.CharField(max_length=100)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        db_table = "realtime_alert_progress"

    def __str__(self) -> str:
        return f"{self.name} at {self.position}"


class Presence(models.Model):
    """A live table open in a server process, written by that process every few seconds:
    who watches which cameras (null: every camera). Rows not refreshed for a while are gone."""

    process = models.CharField(max_length=100)
    user_id = models.BigIntegerField()
    username = models.CharField(max_length=150)
    cameras = ArrayField(models.BigIntegerField(), null=True, blank=True)
    seen_at = models.DateTimeField()

    class Meta:
        db_table = "realtime_presence"
        constraints = [
            models.UniqueConstraint(fields=["process", "user_id"], name="realtime_presence_once")
        ]

    def __str__(self) -> str:
        return f"{self.username} in {self.process}"
