"""The streams' names, and what each stream keeps: one home for the rule.

A stream's name is a base and, when a user's sites limit what they see, a scope:

    violations                  the JSON of /events/violations/
    table/<kind>/<camera>       the live table's `<tr>` rows ("*" for any kind or camera)
    admin/<kind>/<camera>       the admin changelist's rows
    table.de/<kind>/<camera>    the same rows, in German (a language other than
                                LANGUAGE_CODE's names its layout: rows are drawn in it)
    <base>~1-3,7                the same, of cameras 1, 2, 3 and 7 only ("~none": none)

The server names every stream from the user's scope (realtime.access.scopes), never from
what a client sends. django-eventstream calls these names channels; so do Pushpin's.
"""

from __future__ import annotations

from typing import Any

from django.conf import settings
from django.utils import translation

from realtime.access import scopes
from realtime.streams.membership import Keeps
from realtime.violations import cameras, kinds

# The stream of /events/violations/ (the JSON of each change).
JSON_STREAM = "violations"
# The forms a change is drawn in as a row: the live table's, the admin changelist's.
FORMS = ("table", "admin")
# A form and the language it is drawn in: "table" (LANGUAGE_CODE's), "table.de".
Layout = str
LANGUAGE_MARK = "."
# Between the base name and its scope.
SEPARATOR = "~"
ANY = "*"


class BadStreamName(ValueError):
    pass


def scoped(base: str, scope: scopes.Scope) -> str:
    """The stream name of `base` ("violations", "table/*/3") for a scope."""
    if scope is None:
        return base
    return f"{base}{SEPARATOR}{scopes.format_cameras(scope) or 'none'}"


def base_of(name: str) -> str:
    """The base name of a stream name, whatever follows it (a client's resume point)."""
    return name.partition(SEPARATOR)[0]


_split_cache: dict[str, tuple[str, scopes.Scope]] = {}


def split(name: str) -> tuple[str, scopes.Scope]:
    """The base name and the scope of a stream name (BadStreamName if the scope is not one)."""
    found = _split_cache.get(name)
    if found is not None:
        return found
    base, separator, spec = name.partition(SEPARATOR)
    scope: scopes.Scope = None
    if separator:
        try:
            scope = frozenset() if spec == "none" else frozenset(scopes.parse_cameras(spec))
        except scopes.BadCameras as exc:
            raise BadStreamName(str(exc)) from exc
        if spec != "none" and (not scope or scopes.format_cameras(scope) != spec):
            raise BadStreamName(f"not a stream's scope: {spec[:40]!r}")
    if len(_split_cache) > 10_000:
        _split_cache.clear()
    _split_cache[name] = (base, scope)
    return base, scope


def default_language() -> str:
    return translation.get_supported_language_variant(settings.LANGUAGE_CODE)


def layout(form: str, language: str | None = None) -> Layout:
    """The layout of a form drawn in a language (None: the active one); the default
    language's is the form alone, as before there were others."""
    language = translation.get_supported_language_variant(language or translation.get_language())
    return form if language == default_language() else f"{form}{LANGUAGE_MARK}{language}"


def layouts() -> tuple[Layout, ...]:
    """Every layout a change may be drawn in: each form in each language of LANGUAGES."""
    return tuple(layout(form, code) for form in FORMS for code, _ in settings.LANGUAGES)


def split_layout(name: Layout) -> tuple[str, str]:
    """A layout's form and language ("table.de": "table", "de")."""
    form, _, language = name.partition(LANGUAGE_MARK)
    return form, language or default_language()


def without_language(base: str) -> str:
    """A stream's base name in the default language: a client that resumes a stream it
    followed in another language (the user changed it since) resumes the same changes."""
    head, slash, rest = base.partition("/")
    return f"{head.partition(LANGUAGE_MARK)[0]}{slash}{rest}"


def rows(layout: Layout, kind: str | None, camera: int | None) -> str:
    """The rows stream of a layout that keeps a kind's (None: every kind's) changes of a
    camera (None: every camera's)."""
    return f"{layout}/{kind or ANY}/{ANY if camera is None else camera}"


def parse_rows(name: str) -> tuple[Layout, str | None, int | None]:
    """A rows stream's base name: its layout, kind and camera (BadStreamName if it is not)."""
    layout, _, rest = name.partition("/")
    kind, _, camera = rest.partition("/")
    if layout not in layouts() or (kind != ANY and kind not in kinds.knowing(slug=kind).by_slug):
        raise BadStreamName(f"not a rows stream: {name[:80]}")
    if camera != ANY and cameras.CAMERA.fullmatch(camera) is None:
        raise BadStreamName(f"not a rows stream: {name[:80]}")
    return layout, (None if kind == ANY else kind), (None if camera == ANY else int(camera))


def is_live_table(base: str) -> bool:
    """Whether a base name is a live table's rows stream (in any language), as opposed to
    the JSON stream or the admin changelist's rows."""
    return split_layout(base.partition("/")[0])[0] == "table"


def rows_camera(name: str) -> int | None:
    """The camera a rows stream's base name keeps ("table/*/3": 3), None for every one."""
    camera = name.rpartition("/")[2]
    return int(camera) if cameras.CAMERA.fullmatch(camera) else None


def rows_streams_for(layout: Layout, kind: str, camera: Any) -> list[str]:
    """Every rows stream a row of this kind and camera belongs to (one per filter keeping it)."""
    of_cameras: list[int | None] = [None]
    if cameras.is_camera(camera):
        of_cameras.append(camera)
    return [rows(layout, k, c) for k in (None, kind) for c in of_cameras]


def is_known(name: str) -> bool:
    """Whether a name is one of a stream this server serves."""
    try:
        base, _ = split(name)
        if base != JSON_STREAM:
            parse_rows(base)
    except BadStreamName:
        return False
    return True


def keeper(base: str, scope: scopes.Scope) -> Keeps:
    """Which cameras' changes a stream keeps: its camera if it names one, within its scope."""
    in_scope = scopes.keeper(scope)
    camera = None if base == JSON_STREAM else rows_camera(base)
    if camera is None:
        return in_scope
    return lambda c: c == camera and in_scope(c)
