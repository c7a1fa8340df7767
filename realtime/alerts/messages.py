"""An alert's words: a subject, and a body that names each violation (kind, camera, site,
date and time, its image's path) with the link that opens it with its acknowledge action.

The link grants nothing by itself: it opens the violation's page, which asks for a login
(a forwarded e-mail opens nothing). Only the violations of the message's own rows are
named, and those are the rule's: a contact never reads of a violation its rule does not
cover. Written in LANGUAGE_CODE's language.
"""

from __future__ import annotations

from collections import defaultdict

from django.conf import settings
from django.urls import reverse
from django.utils import translation
from django.utils.translation import gettext as _
from django.utils.translation import ngettext

from realtime.alerts.outbox import Message
from realtime.console.rows import ViolationRow
from realtime.models import Site
from realtime.violations import kinds, queries

# A consolidated message names this many violations; the others by their number.
NAMED = 5


def compose(message: Message) -> tuple[str, str]:
    with translation.override(settings.LANGUAGE_CODE):
        rows = _rows(message.rows)
        sites = _sites()
        lines = [_describe(row, sites) for row in rows[:NAMED]]
        count = len(message.rows)
        if count > NAMED:
            lines.append(
                ngettext("…and %(count)s more.", "…and %(count)s more.", count - NAMED)
                % {"count": count - NAMED}
            )
        if count == 1 and rows:
            subject = _headline(rows[0], sites)
        else:
            subject = ngettext(
                "%(count)s violation (%(rule)s)", "%(count)s violations (%(rule)s)", count
            ) % {"count": count, "rule": message.rule_name}
        if message.step:
            subject = _("Still unacknowledged: %(subject)s") % {"subject": subject}
        footer = _("Rule %(rule)s, message %(id)s.") % {
            "rule": message.rule_name,
            "id": message.batch,
        }
        body = "\n\n".join([*lines, footer]) + "\n"
    return subject, body


def _rows(wanted: list[tuple[str, int]]) -> list[ViolationRow]:
    registry = kinds.registry()  # sync: read when stale
    by_table: dict[str, list[int]] = defaultdict(list)
    for table, violation in wanted:
        by_table[table].append(violation)
    found: dict[tuple[str, int], ViolationRow] = {}
    for table, ids in by_table.items():
        kind = registry.by_table.get(table)
        if kind is None:
            continue
        for row in queries.many(kind, ids, scope=None):
            found[(table, int(row.id))] = row
    return [found[key] for key in wanted if key in found]


def _sites() -> dict[int, list[str]]:
    names: dict[int, list[str]] = defaultdict(list)
    for site in Site.objects.only("name", "cameras"):
        for camera in site.cameras:
            names[camera].append(site.name)
    return names


def _headline(row: ViolationRow, sites: dict[int, list[str]]) -> str:
    where = _camera(row, sites)
    return _("%(kind)s, %(camera)s") % {"kind": row.kind.label, "camera": where}


def _camera(row: ViolationRow, sites: dict[int, list[str]]) -> str:
    if row.camera_id is None:
        return _("no camera")
    camera = _("camera %(camera)s") % {"camera": row.camera_id}
    named = sites.get(row.camera_id) if isinstance(row.camera_id, int) else None
    return f"{camera} ({', '.join(named)})" if named else camera


def _describe(row: ViolationRow, sites: dict[int, list[str]]) -> str:
    link = settings.REALTIME_PUBLIC_URL + reverse("violation-detail", args=[row.kind.slug, row.id])
    return "\n".join(
        [
            f"{row.kind.label} #{row.id}, {_camera(row, sites)},"
            f" {row.shown_date} {row.violation_time}",
            row.violation_image or _("(no image)"),
            _("Open and acknowledge: %(link)s") % {"link": link},
        ]
    )
