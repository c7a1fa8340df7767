"""Contacts and alert rules in the admin, for holders of `realtime.manage_notifications`
only (a contact's URL may hold a chat's token), with the checks of the TOML file
(realtime.alerts.validators): what one refuses, the other does too. Registered by
realtime.admin, which imports this module.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from django import forms
from django.contrib import admin
from django.core.exceptions import ValidationError
from django.http import HttpRequest
from django.utils.translation import gettext_lazy as _
from django.utils.translation import ngettext

from realtime.access import scopes
from realtime.alerts import validators
from realtime.alerts.models import Contact, EscalationStep, Rule
from realtime.alerts.rules_file import RULE_KEYS
from realtime.violations import kinds

PERMISSION = "realtime.manage_notifications"


def manages_notifications(user: Any) -> bool:
    return bool(user is not None and user.is_active and user.has_perm(PERMISSION))


class NotificationsPermission:
    """View, add, change and delete: the one permission, whatever the model's own say."""

    def has_view_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return manages_notifications(request.user)

    def has_add_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return manages_notifications(request.user)

    def has_change_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return manages_notifications(request.user)

    def has_delete_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return manages_notifications(request.user)


def checked(check: Callable[[Any], None], value: Any) -> Any:
    """`value`, or the check's ValidationError for the field."""
    check(value)
    return value


class ContactForm(forms.ModelForm):  # type: ignore[type-arg]
    class Meta:
        model = Contact
        fields = ["name", "url"]
        widgets = {"url": forms.TextInput(attrs={"size": 80, "autocomplete": "off"})}
        labels = {"name": _("name"), "url": _("URL")}
        help_texts = {
            "url": _(
                "mailto:ADDRESS (sent with the server's e-mail settings), or an Apprise URL: "
                "ntfy://topic, slack://..., workflows://... (Teams), json://host/path"
            )
        }

    def clean_name(self) -> Any:
        return checked(validators.check_name, self.cleaned_data.get("name"))

    def clean_url(self) -> Any:
        return checked(validators.check_contact_url, self.cleaned_data.get("url"))


class AnyKindField(forms.MultipleChoiceField):
    """Checkboxes of the kinds; a slug that is none of them reaches check_kinds, which
    says so as the file's load does."""

    def valid_value(self, value: Any) -> bool:
        return True


class SecondsForm(forms.ModelForm):  # type: ignore[type-arg]
    """Times in seconds checked by check_seconds (the file's message), not by the field's own
    range (the model's is not checked again for a field already refused)."""

    seconds_fields: tuple[str, ...] = ()

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        for name in self.seconds_fields:
            self.fields[name].validators = []


class RuleForm(SecondsForm):
    seconds_fields = ("consolidate_seconds", "cooldown_seconds")

    kinds = AnyKindField(
        label=_("kinds"),
        required=False,
        widget=forms.CheckboxSelectMultiple,
        help_text=_("None: every kind."),
    )
    cameras = forms.CharField(
        label=_("cameras"),
        required=False,
        help_text=_("Camera numbers and ranges, like 1,2,5-9. None: every camera of the sites."),
        widget=forms.TextInput(attrs={"size": 60}),
    )

    class Meta:
        model = Rule
        # The file's keys (one list of what a rule is), its steps in the inline.
        fields = [key for key in RULE_KEYS if key != "escalate"]
        labels = {
            "name": _("name"),
            "sites": _("sites"),
            "notify": _("notify"),
            "consolidate_seconds": _("consolidate (seconds)"),
            "cooldown_seconds": _("cool-down (seconds)"),
            "when_unwatched": _("when nobody watches"),
        }
        help_texts = {
            "sites": _("None: every camera, in a site or not."),
            "notify": _("Sent a message for each violation the rule covers."),
            "consolidate_seconds": _(
                "One message per this many seconds, with the count and the first few; "
                "0: one per violation."
            ),
            "cooldown_seconds": _("No new message about a camera within this many seconds."),
            "when_unwatched": _(
                "When no open live table shows the violation's camera: send the first "
                "escalation step at once."
            ),
        }

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        known = [(kind.slug, f"{kind.label} ({kind.slug})") for kind in kinds.registry()]
        gone = [(slug, slug) for slug in self.instance.kinds if slug not in dict(known)]
        field = self.fields["kinds"]
        assert isinstance(field, forms.ChoiceField)
        field.choices = known + gone
        self.initial["cameras"] = scopes.format_cameras(self.instance.cameras or [])

    def clean_name(self) -> Any:
        return checked(validators.check_name, self.cleaned_data.get("name"))

    def clean_kinds(self) -> Any:
        return checked(validators.check_kinds, list(self.cleaned_data.get("kinds") or []))

    def clean_cameras(self) -> list[int]:
        try:
            numbers = scopes.parse_cameras(self.cleaned_data.get("cameras") or "")
        except scopes.BadCameras as exc:
            raise ValidationError(str(exc)) from exc
        return checked(validators.check_cameras, numbers)  # type: ignore[no-any-return]

    def clean_consolidate_seconds(self) -> Any:
        return checked(validators.check_seconds, self.cleaned_data.get("consolidate_seconds"))

    def clean_cooldown_seconds(self) -> Any:
        return checked(validators.check_seconds, self.cleaned_data.get("cooldown_seconds"))

    def clean_when_unwatched(self) -> Any:
        return checked(validators.check_when_unwatched, self.cleaned_data.get("when_unwatched"))


class StepForm(SecondsForm):
    seconds_fields = ("after_seconds",)

    class Meta:
        model = EscalationStep
        fields = ["after_seconds", "notify"]
        widgets = {"notify": forms.CheckboxSelectMultiple}
        labels = {"after_seconds": _("after (seconds)"), "notify": _("notify")}
        help_texts = {
            "after_seconds": _(
                "Sent while the violation is not acknowledged (nor its camera shelved) this "
                "many seconds after it."
            )
        }

    def clean_after_seconds(self) -> Any:
        return checked(validators.check_seconds, self.cleaned_data.get("after_seconds"))


class StepInline(NotificationsPermission, admin.TabularInline):  # type: ignore[type-arg]
    model = EscalationStep
    form = StepForm
    extra = 0
    verbose_name = _("escalation step")
    verbose_name_plural = _("escalation steps")


@admin.register(Contact)
class ContactAdmin(NotificationsPermission, admin.ModelAdmin):  # type: ignore[type-arg]
    form = ContactForm
    list_display = ["name", "channel", "used_by"]
    search_fields = ["name"]

    def get_queryset(self, request: HttpRequest) -> Any:
        return super().get_queryset(request).prefetch_related("rules", "escalations__rule")

    @admin.display(description=_("through"))
    def channel(self, obj: Contact) -> str:
        # Only the scheme in the list: the rest may be a token, shown on the contact's page.
        return obj.url.partition(":")[0]

    @admin.display(description=_("used by"))
    def used_by(self, obj: Contact) -> str:
        names = {rule.name for rule in obj.rules.all()}
        names |= {step.rule.name for step in obj.escalations.all()}
        return ", ".join(sorted(names)) or "-"


@admin.register(Rule)
class RuleAdmin(NotificationsPermission, admin.ModelAdmin):  # type: ignore[type-arg]
    form = RuleForm
    inlines = [StepInline]
    filter_horizontal = ["sites", "notify"]
    list_display = ["name", "covers", "notified"]
    search_fields = ["name"]

    def get_queryset(self, request: HttpRequest) -> Any:
        return super().get_queryset(request).prefetch_related("sites", "notify", "steps")

    @admin.display(description=_("covers"))
    def covers(self, obj: Rule) -> str:
        parts = [
            ", ".join(obj.kinds) or _("every kind"),
            ", ".join(site.name for site in obj.sites.all()) or _("every site"),
            scopes.format_cameras(obj.cameras) or _("every camera"),
        ]
        return " · ".join(str(part) for part in parts)

    @admin.display(description=_("notifies"))
    def notified(self, obj: Rule) -> str:
        names = ", ".join(contact.name for contact in obj.notify.all()) or "-"
        steps = len(obj.steps.all())
        if not steps:
            return names
        then = ngettext(
            "%(names)s, then %(steps)s escalation step",
            "%(names)s, then %(steps)s escalation steps",
            steps,
        )
        return then % {"names": names, "steps": steps}
