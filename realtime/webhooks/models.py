"""Webhook subscriptions and their deliveries (the outbox: one row per subscription and
change, written before it is sent). Imported by realtime.models."""

from __future__ import annotations

from typing import Any

from django.contrib.postgres.fields import ArrayField
from django.db import models, transaction
from django.db.models import Q
from django.utils.translation import gettext_lazy as _


class Webhook(models.Model):
    """A program's URL that receives every change of the violations it covers (its kinds,
    none: every kind; its sites' cameras, none: every camera), signed with `secret`."""

    url = models.URLField(max_length=2000)
    # The Standard Webhooks secret: "whsec_" and base64 (manage.py webhooks add makes one).
    secret = models.CharField(max_length=200)
    kinds = ArrayField(models.CharField(max_length=40), default=list, blank=True)
    sites = models.ManyToManyField("realtime.Site", blank=True, related_name="webhooks")
    enabled = models.BooleanField(default=True)
    # Why it was disabled (it kept failing); its deliveries wait until it is enabled again.
    disabled_reason = models.TextField(blank=True, default="")
    failing_since = models.DateTimeField(null=True, blank=True)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        db_table = "realtime_webhook"
        ordering = ["id"]
        verbose_name = _("webhook")
        verbose_name_plural = _("webhooks")

    def __str__(self) -> str:
        return self.url

    def save(self, *args: Any, **kwargs: Any) -> None:
        adding = self._state.adding
        with transaction.atomic():
            super().save(*args, **kwargs)
            if adding:
                from realtime.webhooks.outbox import hold_place_for

                hold_place_for(self)


class WebhookDelivery(models.Model):
    PENDING, SENDING, SENT = "pending", "sending", "sent"
    STATUSES = [(PENDING, _("pending")), (SENDING, _("sending")), (SENT, _("sent"))]

    webhook = models.ForeignKey(Webhook, on_delete=models.CASCADE, related_name="deliveries")
    # The change's id in the event log: the `webhook-id`, the same on every attempt.
    event_id = models.BigIntegerField()
    event_type = models.CharField(max_length=40)
    table_name = models.CharField(max_length=63)
    violation_id = models.BigIntegerField(null=True)
    payload = models.TextField()
    status = models.CharField(max_length=10, choices=STATUSES, default=PENDING)
    attempts = models.PositiveIntegerField(default=0)
    next_attempt_at = models.DateTimeField(null=True, blank=True)
    lease_until = models.DateTimeField(null=True, blank=True)
    last_error = models.TextField(blank=True, default="")
    response_status = models.PositiveSmallIntegerField(null=True, blank=True)
    created_at = models.DateTimeField(auto_now_add=True)
    sent_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        db_table = "realtime_webhook_delivery"
        constraints = [
            models.UniqueConstraint(fields=["webhook", "event_id"], name="realtime_delivery_once")
        ]
        indexes = [
            models.Index(fields=["status", "next_attempt_at"], name="realtime_delivery_due"),
            models.Index(
                fields=["webhook", "table_name", "violation_id", "id"],
                name="realtime_delivery_order",
            ),
            # The worker's pruning (REALTIME_WEBHOOK_DELIVERIES_KEPT).
            models.Index(
                fields=["sent_at"], name="realtime_delivery_sent", condition=Q(status="sent")
            ),
        ]
        ordering = ["-id"]
        verbose_name = _("webhook delivery")
        verbose_name_plural = _("webhook deliveries")

    def __str__(self) -> str:
        return f"{self.event_type} {self.event_id} to {self.webhook_id}: {self.status}"
