"""Who sees what: the cameras a user's violations may come from (sites, `realtime.Site`).

The rule:

- while no site exists, everyone who may log in sees everything (so `make run` stays
  simple);
- once one exists, a user sees the violations of the cameras of the sites given to them
  or to their groups; superusers and holders of `realtime.view_all_sites` see everything,
  and a camera in no site is seen only by them;
- a token acts with its user's scope;
- what every site shares (the sites, other users' tokens, the kinds' labels, colours and
  sounds) is managed only by superusers and holders of `realtime.view_all_sites`, whether
  sites exist or not (`manages_sites`).

A scope is None (every camera) or the frozenset of cameras. Every path asks for it: the
readers of the kinds' tables take it as a required argument (realtime.violations.queries),
the streams are named after it (realtime.streams.names: one stream name per scope, so a
change is filtered once per scope where it is fanned out), and the open streams whose
user's scope changed are closed within seconds (realtime.access.open_streams); the client
resumes from its last event, with its new scope.
"""

from __future__ import annotations

import re
import time
from collections.abc import Callable, Iterable
from typing import Any, TypeAlias

from django.contrib.auth import get_user_model

from realtime.access.one_at_a_time import OneAtATime
from realtime.violations import cameras

Scope: TypeAlias = frozenset[int] | None
EVERYTHING: Scope = None
NOTHING: Scope = frozenset()

PERMISSION = "realtime.view_all_sites"
# A site of more cameras than this is a typo ("1-2000000000").
MAX_CAMERAS = 100_000
CAMERA_SPEC = re.compile(r"\s*[0-9]{1,10}(\s*-\s*[0-9]{1,10})?\s*")


class BadCameras(ValueError):
    pass


def parse_cameras(spec: str) -> list[int]:
    """ "1,2,5-9" as [1, 2, 5, 6, 7, 8, 9]; "" as []."""
    found: set[int] = set()
    for part in filter(None, (p.strip() for p in spec.split(","))):
        if CAMERA_SPEC.fullmatch(part) is None:
            raise BadCameras(f"not a camera or a range of cameras: {part[:40]!r} (as 1,2,5-9)")
        low, _, high = (x.strip() for x in part.partition("-"))
        first, last = int(low), int(high or low)
        if last < first or last > cameras.MAX_CAMERA:
            raise BadCameras(f"not a range of cameras: {part!r}")
        if len(found) + (last - first + 1) > MAX_CAMERAS:
            raise BadCameras(f"more than {MAX_CAMERAS} cameras in one site")
        found.update(range(first, last + 1))
    return sorted(found)


def format_cameras(cameras: Iterable[int]) -> str:
    """[1, 2, 3, 7] as "1-3,7"."""
    ordered = sorted(set(cameras))
    runs: list[str] = []
    start = previous = None
    for camera in ordered:
        if previous is not None and camera == previous + 1:
            previous = camera
            continue
        if start is not None:
            runs.append(str(start) if start == previous else f"{start}-{previous}")
        start = previous = camera
    if start is not None:
        runs.append(str(start) if start == previous else f"{start}-{previous}")
    return ",".join(runs)


def covers(scope: Scope, camera: Any) -> bool:
    if scope is None:
        return True
    return cameras.is_camera(camera) and camera in scope


def keeper(scope: Scope) -> Callable[[int | None], bool]:
    """covers() of a scope, as a function of the camera."""
    return lambda camera: covers(scope, camera)


def union(one: Scope, other: Scope) -> Scope:
    if one is None or other is None:
        return EVERYTHING
    return one | other


def within(scope: Scope, allowed: Scope) -> bool:
    """Whether a stream of `scope` shows nothing `allowed` does not."""
    if allowed is None:
        return True
    return scope is not None and scope <= allowed


# --- whose scope ----------------------------------------------------------------------------


class _SitesExist:
    """Whether any site exists, read at most every CACHE_SECONDS (one query, by one thread
    at a time)."""

    CACHE_SECONDS = 2.0

    def __init__(self) -> None:
        self.value = False
        self.read_at = -1e9
        self._asking = OneAtATime()

    def __call__(self) -> bool:
        from realtime.models import Site

        if self.known() is None:
            with self._asking.turn(None):
                if self.known() is None:
                    now = time.monotonic()
                    self.value = Site.objects.exists()
                    self.read_at = now
        return self.value

    def known(self) -> bool | None:
        """The answer if it is recent enough, without the database; None if not."""
        if time.monotonic() - self.read_at > self.CACHE_SECONDS:
            return None
        return self.value

    def forget(self) -> None:
        self.read_at = -1e9


sites_exist = _SitesExist()


# A user's scope is kept this long per process: thousands of clients connecting at once
# ask it once per user, not once each. The open streams' check (realtime.access.open_streams)
# reads every holder's afresh each time and keeps what it read, so a grant taken back
# reaches new connections as soon as it reaches the open ones.
USER_CACHE_SECONDS = 2.0
_recent: dict[int, tuple[float, Scope]] = {}
# A user's scope is asked by one thread at a time: the others wait for its answer.
_asking = OneAtATime()


class Unknown:
    """What the process does not know without asking the database (recent())."""


UNKNOWN = Unknown()


def of_user(user: Any) -> Scope:
    """The cameras `user` may see (None: all of them)."""
    if user is None or not user.is_authenticated or not user.is_active:
        return NOTHING
    if not sites_exist():
        return EVERYTHING
    pk = int(user.pk)
    known = _fresh(pk)
    if known is not None:
        return known[0]
    with _asking.turn(pk):
        known = _fresh(pk)
        return known[0] if known is not None else of_users([pk])[pk]


def recent(user: Any) -> Scope | Unknown:
    """of_user() from what the process knows, without the database (event-loop code);
    UNKNOWN when of_user() would ask it."""
    if user is None or not user.is_authenticated or not user.is_active:
        return NOTHING
    exist = sites_exist.known()
    if exist is None:
        return UNKNOWN
    if not exist:
        return EVERYTHING
    known = _fresh(int(user.pk))
    return UNKNOWN if known is None else known[0]


def _fresh(pk: int) -> tuple[Scope] | None:
    known = _recent.get(pk)
    if known is None or time.monotonic() - known[0] > USER_CACHE_SECONDS:
        return None
    return (known[1],)


def manages_sites(user: Any) -> bool:
    """Whether `user` may manage what every site shares (sites, others' tokens, the kinds'
    looks): those who see every site, since whoever edits sites can give themselves any."""
    return bool(user is not None and user.is_active and user.has_perm(PERMISSION))


def remember(found: dict[int, Scope]) -> None:
    now = time.monotonic()
    if len(_recent) > 10_000:
        _recent.clear()
    for pk, scope in found.items():
        _recent[pk] = (now, scope)


def forget() -> None:
    _recent.clear()
    sites_exist.forget()


def _site_table(field: str) -> str:
    from realtime.models import Site

    return str(getattr(Site, field).through._meta.db_table)


def of_users(user_ids: Iterable[int]) -> dict[int, Scope]:
    """Each user's scope, in one query whatever their number (the open streams' check)."""
    from django.db import connection

    ids = sorted(set(user_ids))
    if not ids:
        return {}
    user_model = get_user_model()
    users = user_model._meta.db_table
    groups = user_model.groups.through._meta.db_table
    user_permissions = user_model.user_permissions.through._meta.db_table
    app_label, codename = PERMISSION.split(".")
    query = f"""
WITH permission AS (
    SELECT p.id FROM auth_permission p JOIN django_content_type c ON c.id = p.content_type_id
    WHERE c.app_label = %(app)s AND p.codename = %(codename)s
)
SELECT u.id,
       NOT EXISTS (SELECT 1 FROM realtime_site)
       OR u.is_superuser
       OR EXISTS (SELECT 1 FROM {user_permissions} up
                  WHERE up.user_id = u.id AND up.permission_id IN (SELECT id FROM permission))
       OR EXISTS (SELECT 1 FROM {groups} ug JOIN auth_group_permissions gp USING (group_id)
                  WHERE ug.user_id = u.id AND gp.permission_id IN (SELECT id FROM permission)),
       ARRAY(
           SELECT DISTINCT camera FROM realtime_site s, unnest(s.cameras) AS camera
           WHERE s.id IN (SELECT site_id FROM {_site_table("users")} su WHERE su.user_id = u.id)
              OR s.id IN (SELECT sg.site_id FROM {_site_table("groups")} sg
                          JOIN {groups} ug USING (group_id) WHERE ug.user_id = u.id)
       )
FROM {users} u
WHERE u.id = ANY(%(ids)s) AND u.is_active
"""
    with connection.cursor() as cursor:
        cursor.execute(query, {"app": app_label, "codename": codename, "ids": ids})
        rows = cursor.fetchall()
    found: dict[int, Scope] = dict.fromkeys(ids, NOTHING)  # inactive or gone: nothing
    for pk, everything, of_sites in rows:
        found[pk] = EVERYTHING if everything else frozenset(of_sites)
    remember(found)
    return found


class _EveryScope:
    """all_scopes(), read again when it is CACHE_SECONDS old (once per batch at most)."""

    CACHE_SECONDS = 5.0

    def __init__(self) -> None:
        self.value: set[Scope] = {EVERYTHING}
        self.read_at = -1e9

    async def __call__(self) -> set[Scope]:
        from channels.db import database_sync_to_async

        if time.monotonic() - self.read_at > self.CACHE_SECONDS:
            self.value = await database_sync_to_async(all_scopes)()
            self.read_at = time.monotonic()
        return self.value

    def forget(self) -> None:
        self.read_at = -1e9


every_scope = _EveryScope()


def all_scopes() -> set[Scope]:
    """Every scope some user has now (publishing to Pushpin, which holds streams of each)."""
    from realtime.models import Site

    if not Site.objects.exists():
        return {EVERYTHING}
    granted = set(Site.objects.values_list("users", flat=True)) | set(
        Site.objects.values_list("groups__user", flat=True)
    )
    granted.discard(None)
    return {EVERYTHING, *of_users(granted).values()}
