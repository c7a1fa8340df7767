"""Shelving a camera: an operator silences a camera's new violations for a chosen time.

ISA-18.2's shelving, for cameras: the violations of a shelved camera are still recorded and
listed, marked shelved, but make no sound and are not counted, and the shelf ends by
itself. Which violations a shelf covers is decided by one rule in SQL (sql/008), by the
violation's own date and time: the rows read from a kind's table (realtime.violations.queries) and
the changes read from the log (realtime.pipeline.event_log) say it alike.

A change of the shelves reaches every open screen at once: after the transaction commits,
every server process is told over the channel layer (realtime.pipeline.bus), and each of its row
streams sends a `shelves` event; the page then reads the shelves again (GET /shelves/),
from the database. The message carries nothing else, so a forged one only causes a read.
A page also reads them when its stream reconnects and when the next shelf ends.
"""

from __future__ import annotations

import logging
from datetime import datetime, time, timedelta

from asgiref.sync import async_to_sync
from django.conf import settings
from django.db import DatabaseError, connection, transaction
from django.utils import timezone
from django.utils.translation import gettext as _

from realtime.access.scopes import Scope
from realtime.console.rows import ViolationRow
from realtime.models import Shelf

logger = logging.getLogger(__name__)

# The durations the page offers (minutes); a script may post any up to the most.
CHOICES = (15, 30, 60, 120, 240, 480)


class UnknownTimeZone(ValueError):
    pass


def active(scope: Scope) -> list[Shelf]:
    """The shelves in force now of the scope's cameras, the one ending first first."""
    now = timezone.now()
    shelves = Shelf.objects.filter(shelved_at__lte=now, until__gt=now, ended_at__isnull=True)
    if scope is not None:
        shelves = shelves.filter(camera_id__in=sorted(scope))
    return list(shelves.order_by("until", "camera_id"))


def panel_context(scope: Scope) -> dict[str, object]:
    """What the page's panel of shelved cameras shows (templates/realtime/_shelves.html)."""
    shelved = active(scope)
    now = timezone.now()
    next_end = min((shelf.until for shelf in shelved), default=None)
    return {
        "shelves": shelved,
        "shelf_choices": choices(),
        # The page reads the panel again when the first of them ends by itself.
        "next_shelf_end": "" if next_end is None else f"{(next_end - now).total_seconds():.1f}",
    }


def choices() -> list[tuple[int, str]]:
    """How long a camera may be shelved for, as the forms offer it: (minutes, label)."""
    return [(m, _duration(m)) for m in CHOICES if m <= settings.REALTIME_SHELF_MAX_MINUTES]


def _duration(minutes: int) -> str:
    if minutes < 60:
        return _("%(minutes)s min") % {"minutes": minutes}
    return _("%(hours)s h") % {"hours": minutes // 60}


def shelve(username: str, camera: int, minutes: int, reason: str = "") -> Shelf:
    """Shelves `camera` for `minutes` from now; a shelf it already has ends here.

    From the start of this second: detectors stamp violations to the second, and one
    stamped in the second the operator shelved the camera is covered too.
    """
    zone = settings.TIME_ZONE
    now = timezone.now().replace(microsecond=0)
    with transaction.atomic():
        _check_time_zone(zone)
        Shelf.objects.filter(camera_id=camera, until__gt=now, ended_at__isnull=True).update(
            ended_at=now, ended_by=username
        )
        shelf = Shelf.objects.create(
            camera_id=camera,
            shelved_by=username,
            shelved_at=now,
            until=now + timedelta(minutes=minutes),
            time_zone=zone,
            reason=reason,
        )
        transaction.on_commit(announce)
    return shelf


def end(username: str, shelf: Shelf) -> None:
    """Ends a shelf now (one that has ended already stays as it was)."""
    now = timezone.now()
    with transaction.atomic():
        ended = Shelf.objects.filter(pk=shelf.pk, until__gt=now, ended_at__isnull=True).update(
            ended_at=now, ended_by=username
        )
        if ended:
            transaction.on_commit(announce)


def covering(row: ViolationRow) -> list[Shelf]:
    """The shelves that cover the row (for its detail), by the rule of sql/008: the detail
    says what the table says."""
    if not row.shelved or row.date_value is None or not isinstance(row.camera_id, int):
        return []
    at = datetime.combine(row.date_value, row.time_value or time())
    query = "SELECT * FROM realtime_shelves_covering(%s, %s::timestamp)"
    return list(Shelf.objects.raw(query, [row.camera_id, at]))


def _check_time_zone(zone: str) -> None:
    """The database must know DJANGO_TIME_ZONE by that name, or no shelf could be read."""
    try:
        with transaction.atomic(), connection.cursor() as cursor:
            cursor.execute("SELECT now() AT TIME ZONE %s", [zone])
    except DatabaseError as exc:
        raise UnknownTimeZone(
            f"PostgreSQL does not know the time zone {zone!r} (DJANGO_TIME_ZONE)"
        ) from exc


def announce() -> None:
    """Tells every server process that the shelves changed (after the commit)."""
    from realtime.pipeline import bus

    try:
        async_to_sync(bus.publish_shelves_changed)()
    except Exception:
        # The screens still read the shelves when their stream reconnects, every minute
        # and when a shelf ends; the shelf itself is stored.
        logger.warning("could not tell the other servers that the shelves changed", exc_info=True)
