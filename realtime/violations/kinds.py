"""The kinds of violation: configuration in the database (realtime_kind), not code.

Each kind is a detectors' table with its label, colour and place on the page. The three
built-in ones come from migration 0008; `manage.py add_kind` adds more. Every process
keeps the list in memory and reads it again when it is a few seconds old, or at once
when it meets a kind or table it does not know (a kind added meanwhile).
"""

from __future__ import annotations

import threading
import time
from dataclasses import dataclass, field
from functools import cached_property

from channels.db import database_sync_to_async
from django.db.models import Model
from django.utils.translation import gettext, gettext_noop
from psycopg import sql

# Read again after this long: labels and colours edited in the admin show up by then.
REFRESH_SECONDS = 5.0
# Not more often than this for a table the bus names that is not a kind (any watched
# table's changes travel on the bus, kinds or not).
UNKNOWN_REFRESH_SECONDS = 1.0


# The built-in kinds' labels (migration 0008 writes them), translated when shown; a label
# a plant gave in the admin is its own word, shown as written.
BUILT_IN_LABELS = frozenset(
    {gettext_noop("Person in zone"), gettext_noop("LOTO"), gettext_noop("PPE")}
)


@dataclass(frozen=True)
class Kind:
    slug: str
    given_label: str  # as the admin holds it
    schema: str
    table: str
    colour: str = "#666666"
    position: int = 100
    sound: str = ""  # a static file, or "" for the default sound

    @property
    def label(self) -> str:
        """The badge's words, in the active language for a built-in kind's own label."""
        if self.given_label in BUILT_IN_LABELS:
            return gettext(self.given_label)
        return self.given_label

    @property
    def qualified(self) -> str:
        """The table, quoted for SQL."""
        return sql.Identifier(self.schema, self.table).as_string()

    @property
    def model(self) -> type[Model] | None:
        """The Django model of a built-in kind's table (its admin changelist), else None."""
        from realtime.models import HumanDetection, LotoDetection, PpeDetection

        for model in (HumanDetection, LotoDetection, PpeDetection):
            if model._meta.db_table == self.table:
                return model
        return None


@dataclass(frozen=True)
class Registry:
    kinds: tuple[Kind, ...] = ()
    by_slug: dict[str, Kind] = field(init=False, compare=False, hash=False)
    by_table: dict[str, Kind] = field(init=False, compare=False, hash=False)

    def __post_init__(self) -> None:
        object.__setattr__(self, "by_slug", {kind.slug: kind for kind in self.kinds})
        object.__setattr__(self, "by_table", {kind.table: kind for kind in self.kinds})

    def __iter__(self):  # type: ignore[no-untyped-def]
        return iter(self.kinds)

    @cached_property
    def version(self) -> int:
        """Changes whenever anything that is drawn changes: a key for rendering caches."""
        return hash(self.kinds)


class _Cache:
    def __init__(self) -> None:
        self.registry: Registry | None = None
        self.loaded_at = 0.0
        self.lock = threading.Lock()


_cache = _Cache()


def load() -> Registry:
    from realtime.models import ViolationKind

    kinds = tuple(
        Kind(k.slug, k.label, k.schema_name, k.table_name, k.colour, k.position, k.sound)
        for k in ViolationKind.objects.order_by("position", "slug")
    )
    registry = Registry(kinds)
    if kinds:  # none: not migrated yet (a server may start first); ask again next time
        with _cache.lock:
            _cache.registry, _cache.loaded_at = registry, time.monotonic()
    return registry


def registry() -> Registry:
    """The kinds, at most REFRESH_SECONDS old. Sync code only (it may query)."""
    current = _cache.registry
    if current is None or time.monotonic() - _cache.loaded_at > REFRESH_SECONDS:
        return load()
    return current


def knowing(slug: str | None = None, table: str | None = None) -> Registry:
    """The kinds, read again first if `slug` or `table` is not among them (sync code: a
    request that names a kind; the query is as cheap as the request's own session's)."""
    current = registry()
    unknown = (slug is not None and slug not in current.by_slug) or (
        table is not None and table not in current.by_table
    )
    return load() if unknown else current


def cached() -> Registry:
    """The kinds as last read, without a query: for code on the event loop."""
    return _cache.registry or Registry()


async def arefresh(table: str | None = None) -> Registry:
    """For async code: read the kinds again if they are stale or do not know `table`."""
    current = _cache.registry
    age = time.monotonic() - _cache.loaded_at
    stale = current is None or age > REFRESH_SECONDS
    unknown = table is not None and current is not None and table not in current.by_table
    if stale or (unknown and age > UNKNOWN_REFRESH_SECONDS):
        loaded: Registry = await database_sync_to_async(load)()
        return loaded
    assert current is not None
    return current


def forget() -> None:
    """Read the kinds again at the next use (after `add_kind`, and in tests)."""
    with _cache.lock:
        _cache.registry, _cache.loaded_at = None, 0.0
