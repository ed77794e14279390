"""The console's silence controls: silence a firing alert, expire a silence early.

The form is a page of its own (GET), not inside the live part of the console: the live
refresh replaces that part every 5 s and would wipe a reason being typed. Each POST
checks the permission first (403 naming the role), then the input (400 saying what is
wrong, nothing sent to Alertmanager), then asks Alertmanager; the audit row is written
only after Alertmanager said yes.
"""

from __future__ import annotations

from django.contrib import messages
from django.http import HttpRequest, HttpResponse
from django.shortcuts import redirect
from django.template.response import TemplateResponse
from django.views.decorators.http import require_http_methods, require_POST

from ops.alerts import silences
from ops.alerts.models import Alert
from ops.console.views import console_view, needs


def _alert(alert_id: int) -> Alert | None:
    return Alert.objects.filter(pk=alert_id).first()


def _problem(request: HttpRequest, status: int, title: str, detail: str) -> HttpResponse:
    context = {"status": status, "title": title, "detail": detail}
    return TemplateResponse(request, "ops/console/problem.html", context, status=status)


def _form_page(request: HttpRequest, alert: Alert, *, error: str = "", status: int = 200) -> HttpResponse:
    context = {
        "alert": alert,
        "error": error,
        "durations": silences.DURATION_LABELS,
        "chosen_duration": request.POST.get("duration", "1h"),
        "reason": request.POST.get("reason", ""),
        "silenceable": silences.silenceable(alert),
        "configured": silences.configured(),
        "perms": request.console_permissions,
        "user": request.user,
        "max_reason": silences.MAX_REASON,
    }
    return TemplateResponse(request, "ops/console/silence.html", context, status=status)


@require_http_methods(["GET", "POST"])
@console_view
def silence_alert(request: HttpRequest, alert_id: int) -> HttpResponse:
    if request.method == "POST":
        return _silence(request, alert_id)
    alert = _alert(alert_id)
    if alert is None:
        return _no_alert(request, alert_id)
    return _form_page(request, alert)


def _no_alert(request: HttpRequest, alert_id: int) -> HttpResponse:
    return _problem(request, 404, "Not found", f"There is no alert #{alert_id} in the alert store.")


@needs("can_silence")
def _silence(request: HttpRequest, alert_id: int) -> HttpResponse:
    # The permission first (the decorator), then the alert, then the input.
    alert = _alert(alert_id)
    if alert is None:
        return _no_alert(request, alert_id)
    try:
        made = silences.silence(
            alert, duration=request.POST.get("duration"), reason=request.POST.get("reason"), user=request.user
        )
    except silences.InvalidSilence as exc:
        return _form_page(request, alert, error=f"Nothing changed: {exc}", status=400)
    except silences.SilenceUnavailable as exc:
        return _form_page(request, alert, error=f"Nothing changed: {exc}.", status=503)
    messages.success(
        request,
        f"{alert.alertname} silenced in Alertmanager for {silences.DURATION_LABELS[made.duration]}, until "
        f"{made.ends_at:%Y-%m-%d %H:%M:%S} UTC (silence {made.silence_id}). Firing alerts still show here.",
    )
    return redirect("console")


@require_POST
@console_view
@needs("can_silence")
def expire_silence(request: HttpRequest, silence_id: str) -> HttpResponse:
    try:
        done = silences.expire(silence_id, user=request.user)
    except silences.InvalidSilence as exc:
        return _problem(request, 400, "Refused", f"Nothing changed: {exc}")
    except silences.SilenceUnavailable as exc:
        messages.error(request, f"Nothing changed: {exc}.")
        return redirect("console")
    messages.success(
        request,
        f"Silence {done.silence_id} ({done.alertname or 'no alertname'}) expired: its alerts notify again.",
    )
    return redirect("console")
