"""What a contact's or rule's values may be: one set of checks for the TOML file
(realtime.alerts.config) and the admin (realtime.alerts.admin), so that neither accepts what
the other refuses. Each raises Django's ValidationError with a message for people.
"""

from __future__ import annotations

import contextvars
import logging
import re
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import apprise
from django.core.exceptions import ValidationError
from django.core.validators import validate_email
from django.utils.translation import gettext_lazy as _

from realtime.alerts.models import NAME_MAX, Contact, Rule
from realtime.violations import cameras, kinds

# The largest number of seconds a PositiveIntegerField (a PostgreSQL integer) holds.
MAX_SECONDS = 2**31 - 1
MAX_URL = Contact._meta.get_field("url").max_length or 2000
WHEN_UNWATCHED = ("", Rule.ESCALATE_NOW)
# Apprise's own e-mail schemes: e-mail goes through Django's settings instead.
APPRISE_EMAIL = ("mailto://", "mailtos://")


def check_name(name: Any) -> None:
    if not isinstance(name, str) or not name.strip() or len(name) > NAME_MAX:
        raise ValidationError(
            _("a name is text of 1 to %(most)s characters"), params={"most": NAME_MAX}
        )


def check_contact_url(url: Any) -> None:
    """`mailto:` and an e-mail address, or a URL Apprise accepts (it is not contacted)."""
    if not isinstance(url, str) or not url.strip():
        raise ValidationError(_("a contact needs a URL: mailto:ADDRESS or an Apprise URL"))
    if len(url) > MAX_URL:
        raise ValidationError(_("a URL of at most %(most)s characters"), params={"most": MAX_URL})
    if url.lower().startswith(APPRISE_EMAIL):
        raise ValidationError(
            _("an e-mail contact is mailto:ADDRESS, sent with the server's e-mail settings")
        )
    if url.lower().startswith("mailto:"):
        address = url[len("mailto:") :]
        try:
            validate_email(address)
        except ValidationError:
            raise ValidationError(
                _("'%(address)s' is not an e-mail address"), params={"address": address}
            ) from None
        return
    reason = apprise_refusal(url)
    if reason is not None and url.lower().startswith("msteams://"):
        raise ValidationError(
            _(
                "Apprise no longer has msteams:// (Microsoft retired those webhooks): a Teams "
                "channel's workflow is workflows://HOST/WORKFLOW/SIGNATURE"
            )
        )
    if reason is not None:
        raise ValidationError(
            _("not a URL Apprise accepts (%(reason)s)"), params={"reason": reason}
        )


def apprise_refusal(url: str) -> str | None:
    """Why Apprise refuses `url` (from its log, without the URL: it may hold a token), or None
    when it accepts it."""
    with _apprise_log() as said:
        accepted = apprise.Apprise.instantiate(url) is not None
    if accepted:
        return None
    # Apprise's words without any URL (the whole or its masked form "json://1...1/hook")
    reasons = [
        re.sub(r"\S*://\S*", "", line.replace(url, "")).partition(": ")[0].strip(" :.")
        for line in said
    ]
    return "; ".join(filter(None, reasons)) or "Unsupported URL"


def check_kinds(slugs: Any) -> None:
    if not isinstance(slugs, list | tuple) or not all(isinstance(s, str) for s in slugs):
        raise ValidationError(_("not a list of the kinds' short names"))
    for slug in slugs:
        if slug not in kinds.knowing(slug=slug).by_slug:
            raise ValidationError(_("unknown kind '%(kind)s'"), params={"kind": slug})


def check_cameras(numbers: Any) -> None:
    if not isinstance(numbers, list | tuple):
        raise ValidationError(_("not a list of camera numbers"))
    for number in numbers:
        if not cameras.is_camera(number) or not 0 <= number <= cameras.MAX_CAMERA:
            raise ValidationError(
                _("not a camera number: %(value)s"), params={"value": _shown(number)}
            )


def check_seconds(value: Any) -> None:
    if not isinstance(value, int) or isinstance(value, bool):
        raise ValidationError(
            _("not a whole number of seconds: %(value)s"), params={"value": _shown(value)}
        )
    if value < 0:
        raise ValidationError(_("negative time %(value)s"), params={"value": value})
    if value > MAX_SECONDS:
        raise ValidationError(
            _("more than %(most)s seconds: %(value)s"), params={"most": MAX_SECONDS, "value": value}
        )


def check_when_unwatched(value: Any) -> None:
    if value not in WHEN_UNWATCHED:
        raise ValidationError(
            _('neither "" nor "escalate-now": %(value)s'),
            params={"value": _shown(value)},
        )


def check_names(names: Any) -> list[str]:
    """A list of names (contacts, sites), as a list of str."""
    if not isinstance(names, list | tuple) or not all(isinstance(n, str) for n in names):
        raise ValidationError(_("not a list of names"))
    return list(names)


def _shown(value: Any) -> str:
    """A value as the file would write it, cut short."""
    text = f'"{value}"' if isinstance(value, str) else str(value).lower()
    return text if len(text) <= 40 else text[:39] + "…"


def messages(error: ValidationError) -> list[str]:
    """A ValidationError's messages, rendered (in the active language)."""
    return [str(message) for message in error.messages]


# Apprise logs each refusal at ERROR: kept from the logs of a server that only validated a
# URL someone typed, and given back as the reason. A context variable, not a change of the
# logger's level: a worker in the same process logs its own Apprise errors meanwhile.
_capture: contextvars.ContextVar[list[str] | None] = contextvars.ContextVar(
    "apprise_capture", default=None
)


class _CaptureApprise(logging.Filter):
    def filter(self, record: logging.LogRecord) -> bool:
        said = _capture.get()
        if said is None:
            return True
        if record.levelno >= logging.WARNING:
            said.append(record.getMessage())
        return False


logging.getLogger("apprise").addFilter(_CaptureApprise())


@contextmanager
def _apprise_log() -> Iterator[list[str]]:
    said: list[str] = []
    token = _capture.set(said)
    try:
        yield said
    finally:
        _capture.reset(token)
