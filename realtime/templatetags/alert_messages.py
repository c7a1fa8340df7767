"""{{ step|step_label }}: an outbox row's step in words ("first message", "escalation 2")."""

from __future__ import annotations

from django import template

from realtime.alerts import sent

register = template.Library()


@register.filter
def step_label(step: int) -> str:
    return sent.step_label(step)
