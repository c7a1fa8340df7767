"""What an operator's POST may carry, checked at the edge: each refusal is a 400 that says
why in one sentence (`first_error`), and nothing is changed.
"""

from __future__ import annotations

import re
from typing import Any

from django import forms
from django.conf import settings
from django.core.validators import RegexValidator

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
    return "Bad request."


def _without(pattern: re.Pattern[str], message: str) -> RegexValidator:
    return RegexValidator(pattern, message, inverse_match=True)


class NoteForm(forms.Form):
    text = forms.CharField(
        max_length=Acknowledgement.NOTE_MAX,
        error_messages={
            "required": "A note needs some text.",
            "max_length": f"A note has at most {Acknowledgement.NOTE_MAX} characters.",
            "null_characters_not_allowed": (
                "A note cannot contain control characters other than line breaks and tabs."
            ),
        },
        validators=[
            _without(
                NOTE_CONTROL_CHARACTERS,
                "A note cannot contain control characters other than line breaks and tabs.",
            )
        ],
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
    CAMERA = "camera must be a camera number"

    camera = CameraField(error_messages={"required": CAMERA, "invalid": CAMERA})
    minutes = forms.CharField()
    reason = forms.CharField(
        required=False,
        max_length=Shelf.REASON_MAX,
        error_messages={
            "max_length": f"A reason has at most {Shelf.REASON_MAX} characters.",
            "null_characters_not_allowed": "A reason cannot contain control characters.",
        },
        validators=[_without(ANY_CONTROL_CHARACTER, "A reason cannot contain control characters.")],
    )

    def clean_minutes(self) -> int:
        # A whole number of ASCII digits: not "1e3", "²", "+5" or "60.0".
        limit = settings.REALTIME_SHELF_MAX_MINUTES
        text = self.cleaned_data["minutes"]
        if re.fullmatch(r"[0-9]{1,6}", text, re.ASCII) is None or not 1 <= int(text) <= limit:
            raise forms.ValidationError(f"minutes must be a whole number from 1 to {limit}")
        return int(text)

    def full_clean(self) -> None:
        super().full_clean()
        # "minutes" missing is the same sentence as "minutes" wrong.
        if "minutes" in self.errors:
            limit = settings.REALTIME_SHELF_MAX_MINUTES
            self.errors["minutes"] = self.error_class(
                [f"minutes must be a whole number from 1 to {limit}"]
            )


class ViolationRefsField(forms.Field):
    """`violation=KIND:ID`, repeated: the violations wanted, by kind."""

    widget = forms.MultipleHiddenInput

    def clean(self, value: Any) -> dict[Kind, set[int]]:
        refs = [str(ref) for ref in (value or [])]
        if not refs:
            raise forms.ValidationError("Select at least one violation.")
        if len(refs) > ACKNOWLEDGE_AT_ONCE:
            raise forms.ValidationError(f"At most {ACKNOWLEDGE_AT_ONCE} violations at once.")
        wanted: dict[Kind, set[int]] = {}
        for ref in refs:
            match = VIOLATION_REF.fullmatch(ref)
            kind = kinds.knowing(slug=match[1]).by_slug.get(match[1]) if match else None
            if match is None or kind is None or int(match[2]) > queries.BIGINT_MAX:
                raise forms.ValidationError(
                    f"Not a violation: {ref[:60]!r} (expected KIND:ID, as ppe:12)."
                )
            wanted.setdefault(kind, set()).add(int(match[2]))
        return wanted


class AcknowledgeManyForm(forms.Form):
    violation = ViolationRefsField()
