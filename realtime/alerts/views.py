"""/notifications/: the messages sent about violations, the failed first, and a failed one
sent again. For users with `realtime.view_notifications`, each within their scope."""

from __future__ import annotations

from django import forms
from django.contrib import messages
from django.contrib.auth.decorators import login_required, permission_required
from django.http import Http404, HttpRequest, HttpResponse, HttpResponseRedirect
from django.shortcuts import render
from django.urls import reverse
from django.utils.http import url_has_allowed_host_and_scheme
from django.utils.translation import gettext as _
from django.utils.translation import gettext_lazy
from django.views.decorators.http import require_GET, require_POST

from realtime.access import scopes
from realtime.alerts import sent
from realtime.alerts.models import Notification
from realtime.console.forms import first_error
from realtime.console.views import bad_request

# Far beyond any outbox an operator pages through; an OFFSET past it is a typo or a probe.
LAST_PAGE = 10_000


class PageForm(forms.Form):
    page = forms.IntegerField(
        required=False,
        min_value=1,
        max_value=LAST_PAGE,
        error_messages={
            "invalid": gettext_lazy("page must be a whole number from 1"),
            "min_value": gettext_lazy("page must be a whole number from 1"),
            "max_value": gettext_lazy("page must be at most %(limit_value)s"),
        },
    )


@login_required
@permission_required(sent.VIEW_PERMISSION, raise_exception=True)
@require_GET
def notifications(request: HttpRequest) -> HttpResponse:
    form = PageForm(request.GET)
    if not form.is_valid():
        return bad_request(_("Bad page: %(why)s") % {"why": first_error(form)})
    found = sent.page(scopes.of_user(request.user), form.cleaned_data["page"] or 1)
    return render(request, "realtime/notifications.html", {"page": found})


@login_required
@permission_required(sent.VIEW_PERMISSION, raise_exception=True)
@require_POST
def resend(request: HttpRequest, key: int) -> HttpResponse:
    """A failed message handed back to the worker, which sends it again as the same message;
    then back to the page it came from (`next`), saying so."""
    try:
        sent.resend(key, scope=scopes.of_user(request.user), by=request.user.get_username())
    except sent.NoSuchMessage:
        raise Http404("No such message") from None
    except sent.NotFailed as exc:
        status = dict(Notification.STATUSES)[exc.status]
        return bad_request(
            _("Only a failed message can be sent again; message %(key)s is %(status)s.")
            % {"key": key, "status": status}
        )
    messages.success(request, _("Message %(key)s will be sent again.") % {"key": key})
    back = request.POST.get("next", "")
    if not back.startswith(reverse("notifications")) or not url_has_allowed_host_and_scheme(
        back, allowed_hosts={request.get_host()}, require_https=request.is_secure()
    ):
        back = reverse("notifications")
    return HttpResponseRedirect(back, status=303)
