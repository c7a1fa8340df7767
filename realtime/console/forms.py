"""What an operator's POST may carry, checked at the edge: each refusal is a 400 that says
why in one sentence (`first_error`), and nothing is changed.
"""

from __future__ import annotations

import re
from typing import Any

from django import forms
from django.conf import settings
from django.core.validators import RegexValidator
from django.utils.functional import lazy
from django.utils.translation import gettext, gettext_lazy, gettext_noop
from django.utils.translation import gettext as _

from realtime.models import Acknowledgement, Shelf
from realtime.violations import cameras, kinds, queries
from realtime.violations.kinds import Kind

# A note keeps line breaks and tabs; PostgreSQL's text refuses NUL, the rest would garble it.
NOTE_CONTROL_CHARACTERS = re.compile(r"[\x00-\x08\x0b\x0c\x0e-\x1f\x7f]")
# A shelf's reason is one line.
ANY_CONTROL_CHARACTER = re.compile(r"[\x00-\x1f\x7f]")
# A bulk acknowledgement names each violation as KIND:ID ("ppe:12"): at most this many.
ACKNOWLEDGE_AT_ONCE = 500  # below Django's DATA_UPLOAD_MAX_NUMBER_FIELDS (1000)
# More than this many at once and the page asks first, naming the number.
CONFIRM_ABOVE = 10
VIOLATION_REF = re.compile(r"([a-z0-9_-]{1,40}):([0-9]{1,19})", re.ASCII)


def first_error(form: forms.Form) -> str:
    """The first thing wrong with a form, as one sentence."""
    for errors in form.errors.values():
        for error in errors:
            return str(error)
    return _("Bad request.")


def _lazy(message: str, **values: Any) -> Any:
    """`message` (marked with gettext_noop) translated when shown, its values put in."""
    return lazy(lambda: gettext(message) % values, str)()


def _minutes_error(limit: int) -> str:
    return _("minutes must be a whole number from 1 to %(limit)s") % {"limit": limit}


NOTE_CONTROL = gettext_lazy(
    "A note cannot contain control characters other than line breaks and tabs."
)
REASON_CONTROL = gettext_lazy("A reason cannot contain control characters.")


def _without(pattern: re.Pattern[str], message: Any) -> RegexValidator:
    return RegexValidator(pattern, message, inverse_match=True)


class NoteForm(forms.Form):
    text = forms.CharField(
        max_length=Acknowledgement.NOTE_MAX,
        error_messages={
            "required": gettext_lazy("A note needs some text."),
            "max_length": _lazy(
                gettext_noop("A note has at most %(limit)s characters."),
                limit=Acknowledgement.NOTE_MAX,
            ),
            "null_characters_not_allowed": NOTE_CONTROL,
        },
        validators=[_without(NOTE_CONTROL_CHARACTERS, NOTE_CONTROL)],
    )


class CameraField(forms.CharField):
    """A camera number (realtime.violations.cameras), as an int."""

    def to_python(self, value: Any) -> int | None:  # type: ignore[override]
        text = super().to_python(value)
        if text is None or text in self.empty_values:
            return None
        try:
            return cameras.parse(text)
        except cameras.BadCamera as exc:
            raise forms.ValidationError(self.error_messages["invalid"], code="invalid") from exc


class ShelfForm(forms.Form):
    CAMERA = gettext_lazy("camera must be a camera number")

    camera = CameraField(error_messages={"required": CAMERA, "invalid": CAMERA})
    minutes = forms.CharField()
    reason = forms.CharField(
        required=False,
        max_length=Shelf.REASON_MAX,
        error_messages={
            "max_length": _lazy(
                gettext_noop("A reason has at most %(limit)s characters."),
                limit=Shelf.REASON_MAX,
            ),
            "null_characters_not_allowed": REASON_CONTROL,
        },
        validators=[_without(ANY_CONTROL_CHARACTER, REASON_CONTROL)],
    )

    def clean_minutes(self) -> int:
        # A whole number of ASCII digits: not "1e3", "²", "+5" or "60.0".
        limit = settings.REALTIME_SHELF_MAX_MINUTES
        text = self.cleaned_data["minutes"]
        if re.fullmatch(r"[0-9]{1,6}", text, re.ASCII) is None or not 1 <= int(text) <= limit:
            raise forms.ValidationError(_minutes_error(limit))
        return int(text)

    def full_clean(self) -> None:
        super().full_clean()
        # "minutes" missing is the same sentence as "minutes" wrong.
        if "minutes" in self.errors:
            limit = settings.REALTIME_SHELF_MAX_MINUTES
            self.errors["minutes"] = self.error_class([_minutes_error(limit)])


class ViolationRefsField(forms.Field):
    """`violation=KIND:ID`, repeated: the violations wanted, by kind."""

    widget = forms.MultipleHiddenInput

    def clean(self, value: Any) -> dict[Kind, set[int]]:
        refs = [str(ref) for ref in (value or [])]
        if not refs:
            raise forms.ValidationError(_("Select at least one violation."))
        if len(refs) > ACKNOWLEDGE_AT_ONCE:
            raise forms.ValidationError(
                _("At most %(limit)s violations at once.") % {"limit": ACKNOWLEDGE_AT_ONCE}
            )
        wanted: dict[Kind, set[int]] = {}
        for ref in refs:
            match = VIOLATION_REF.fullmatch(ref)
            kind = kinds.knowing(slug=match[1]).by_slug.get(match[1]) if match else None
            if match is None or kind is None or int(match[2]) > queries.BIGINT_MAX:
                raise forms.ValidationError(
                    _("Not a violation: %(ref)s (expected KIND:ID, as ppe:12).")
                    % {"ref": repr(ref[:60])}
                )
            wanted.setdefault(kind, set()).add(int(match[2]))
        return wanted


class AcknowledgeManyForm(forms.Form):
    violation = ViolationRefsField()
