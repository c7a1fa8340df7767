"""Handing a message to its contact: `mailto:` through Django's e-mail (EMAIL_HOST, ...),
anything else through Apprise. Every delivery carries the message's id: the e-mail's
Message-ID, and an `Idempotency-Key` header on the HTTP ones (json://, form://, xml://),
so that a message sent again (a worker that died after sending, before recording it) is
one the receiver can recognise.
"""

from __future__ import annotations

import logging
import smtplib
from urllib.parse import SplitResult, unquote, urlencode, urlsplit, urlunsplit

import apprise
from django.conf import settings
from django.core.mail import EmailMessage

EMAIL, APPRISE = "email", "apprise"
# Apprise's schemes that make a plain HTTP request, whose headers a URL's "+Name=value"
# parameters set.
HTTP_SCHEMES = {"json", "jsons", "form", "forms", "xml", "xmls"}


def channel(url: str) -> str:
    return EMAIL if url.startswith("mailto:") else APPRISE


def deliver(url: str, subject: str, body: str, message_id: int) -> str | None:
    """Sends; None when handed over, else what went wrong, in a line."""
    if not url:
        return "the contact is gone"
    if channel(url) == EMAIL:
        return _email(url, subject, body, message_id)
    return _apprise(url, subject, body, message_id)


def _email(url: str, subject: str, body: str, message_id: int) -> str | None:
    addresses = [a.strip() for a in unquote(urlsplit(url).path).split(",") if a.strip()]
    domain = urlsplit(settings.REALTIME_PUBLIC_URL).hostname or "localhost"
    email = EmailMessage(
        subject,
        body,
        settings.DEFAULT_FROM_EMAIL,
        addresses,
        headers={"Message-ID": f"<alert-{message_id}@{domain}>"},
    )
    try:
        email.send()
    except (OSError, smtplib.SMTPException) as exc:
        return f"{type(exc).__name__}: {exc}"[:500]
    return None


def with_idempotency_key(url: str, message_id: int) -> str:
    parts = urlsplit(url)
    if parts.scheme not in HTTP_SCHEMES:
        return url
    header = urlencode({"+Idempotency-Key": str(message_id)})
    query = f"{parts.query}&{header}" if parts.query else header
    return urlunsplit(SplitResult(parts.scheme, parts.netloc, parts.path, query, parts.fragment))


def _apprise(url: str, subject: str, body: str, message_id: int) -> str | None:
    notifier = apprise.Apprise()
    if not notifier.add(with_idempotency_key(url, message_id)):
        return "not a URL Apprise knows"
    with apprise.LogCapture(level=logging.WARNING) as captured:  # type: ignore[no-untyped-call]
        delivered = notifier.notify(body=body, title=subject)
    if delivered:
        return None
    said = [line for line in captured.getvalue().splitlines() if line.strip()]
    return (said[-1] if said else "not delivered")[:500]
