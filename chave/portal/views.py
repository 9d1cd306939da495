"""The personal area's pages: parse → call a service → render or redirect. No JavaScript needed.

Every page needs a signed-in session (:func:`area`); without one the citizen goes to the entry
page (the key's login, or the Citizen Card) and comes back. Changing a contact, cancelling the
key and exporting one's data also need a recent sign-in (``area_reauth_seconds``); an older
session signs in again first. A two-step action (a code to type) keeps only its transaction and,
for a contact, the new value in the session; never a PIN or a code.
"""

from __future__ import annotations

import datetime as dt
import functools
import json
from urllib.parse import urlencode

from django.contrib import messages
from django.core.exceptions import ValidationError
from django.core.paginator import Paginator
from django.http import Http404, HttpResponse
from django.shortcuts import get_object_or_404, redirect, render
from django.urls import reverse
from django.utils import timezone, translation
from django.utils.translation import gettext as _
from django.utils.translation import gettext_lazy
from django.views.decorators.cache import never_cache
from django.views.decorators.http import (
    require_http_methods,
    require_POST,
    require_safe,
)

from chave import clock, formats
from chave.audit import labels
from chave.audit.models import AuditEvent
from chave.federation.attributes import ATTRIBUTES
from chave.federation.models import RelyingParty
from chave.identity.models import DocType, IllegalTransition, KeyStatus, mask
from chave.login import services as login
from chave.login.views import CODE_REFUSALS, _refusal_text

from . import services
from .forms import CancelForm, CodeForm, ContactForm, NewPinWithCodeForm, PinForm
from .places import places

SESSION_PENDING = "chave.portal.pending"
HISTORY_PAGE_SIZE = 20
MAX_NEXT_LENGTH = 512
UNUSABLE = {KeyStatus.CANCELLED, KeyStatus.EXPIRED, KeyStatus.PENDING}

# How the citizen signed in, for the home page (the audit's channel labels: chave/audit/labels.py).
METHOD_LABELS = labels.CHANNELS


def _language() -> str:
    return translation.get_language() or "pt-pt"


def _posted(request):
    return request.POST if request.method == "POST" else None


def _safe_next(value) -> str:
    """A path of the personal area to come back to, else the area's home."""
    home = reverse("portal:home")
    if (isinstance(value, str) and value.startswith(home) and len(value) <= MAX_NEXT_LENGTH
            and "//" not in value and "\\" not in value and value.isprintable()):
        return value
    return home


def _enter(request, *, again: bool = False):
    query = {"next": _safe_next(request.get_full_path())}
    if again:
        query["again"] = "1"
    return redirect(f"{reverse('portal:enter')}?{urlencode(query)}")


def area(*, recent: bool = False, usable: bool = False):
    """Views of the area get ``(request, who, key)``. Signed out → the entry page; ``recent`` → a
    sign-in within ``area_reauth_seconds``; ``usable`` → a key that is not cancelled, expired or
    pending (the home page says why otherwise)."""

    def decorate(view):
        @functools.wraps(view)
        @never_cache
        def wrapper(request, *args, **kwargs):
            who = login.signed_in(request)
            key = services.key_of(who)
            if key is None:
                return _enter(request)
            if usable and key.effective_status(clock.now()) in UNUSABLE:
                messages.error(request, _("Your key is cancelled or expired: this cannot be done any more."))
                return redirect("portal:home")
            if recent and not services.is_recent(who):
                messages.info(request, _("For your security, sign in again to do this."))
                return _enter(request, again=True)
            return view(request, who, key, *args, **kwargs)

        return wrapper

    return decorate


# --- Entry --------------------------------------------------------------------------------------


@never_cache
@require_safe
def enter(request):
    """How to enter: the key (PIN + code) or the Citizen Card; both come back to ``next``."""
    target = _safe_next(request.GET.get("next"))
    who = login.signed_in(request)
    again = request.GET.get("again") == "1"
    if services.key_of(who) is not None and not (again and not services.is_recent(who)):
        return redirect(target)
    return render(request, "portal/enter.html", {
        "next": target, "again": again, "key_url": f"{reverse('portal:enter_key')}?{urlencode({'next': target})}",
    })


@never_cache
@require_safe
def enter_key(request):
    """Ask the key's login pages for a sign-in that comes back to the area."""
    login.request_login(request, portal="", min_level=0, return_to=_safe_next(request.GET.get("next")))
    return redirect("login:start")


# --- Home ---------------------------------------------------------------------------------------


@area()
@require_safe
def home(request, who, key):
    status = key.effective_status(clock.now())
    contacts = {c.kind: c for c in key.contacts.filter(verified_at__isnull=False, live=True)}
    return render(request, "portal/home.html", {
        "who": who, "key": key, "citizen": key.citizen, "status": status,
        "status_label": KeyStatus(status).label, "usable": status not in UNUSABLE,
        "mobile": contacts.get("mobile"), "email": contacts.get("email"), "x": contacts.get("x"),
        "x_enabled": "x" in services.area_contact_kinds(),
        "card_holder": key.citizen.doc_type == DocType.CITIZEN_CARD,  # recovery by card is for them only
        "method_label": METHOD_LABELS.get(who.method, who.method),
        "locked": status in (KeyStatus.LOCKED, KeyStatus.BLOCKED),
    })


# --- Two-step actions ---------------------------------------------------------------------------


def _pending(request, action: str, key) -> dict | None:
    data = request.session.get(SESSION_PENDING)
    if isinstance(data, dict) and data.get("action") == action and data.get("key") == key.pk:
        return data
    return None


def _no_pending(request, start: str, **kwargs):
    messages.error(request, _("This step has expired or was already done. Please start again."))
    return redirect(start, **kwargs)


PIN_REFUSALS = {
    "wrong": gettext_lazy("The PIN is not correct. After several wrong PINs the key is locked for a while."),
    "locked": gettext_lazy("Your key is locked after several wrong PINs. You can try again %(when)s."),
    "blocked": gettext_lazy("Your key is blocked. Unlock it with your Citizen Card or at a counter."),
    "throttled": gettext_lazy("Too many attempts from this connection. Please try again later."),
    "no_channel": gettext_lazy("No contact of this key can receive codes now. Contact the help line."),
}


def _pin_refusal(sent) -> str:
    text = PIN_REFUSALS.get(sent.reason)
    if text is None:
        issue = getattr(sent, "issue", None)
        return _refusal_text(issue) if issue else str(PIN_REFUSALS["wrong"])
    when = formats.wait_until(sent.until) if sent.until else ""
    return str(text) % {"when": when} if "%(when)s" in str(text) else str(text)


@area(usable=True)
@require_http_methods(["GET", "POST"])
def pin(request, who, key):
    form = PinForm(_posted(request))
    status = 200
    if request.method == "POST":
        status = 400
        if form.is_valid():
            sent = services.start_pin_change(key, form.cleaned_data["pin"], ip=login.client_ip(request),
                                             language=_language())
            if sent.ok:
                request.session[SESSION_PENDING] = {"action": "pin", "key": key.pk, "tx": sent.transaction,
                                                    "channel": sent.channel, "masked": sent.masked}
                return redirect("portal:pin_confirm")
            form.add_error(None, _pin_refusal(sent))
            status = 429 if sent.reason in ("throttled", "rate_limited") else 400
    return render(request, "portal/pin.html", {"form": form}, status=status)


@area(usable=True)
@require_http_methods(["GET", "POST"])
def pin_confirm(request, who, key):
    pending = _pending(request, "pin", key)
    if pending is None:
        return _no_pending(request, "portal:pin")
    form = NewPinWithCodeForm(_posted(request), birth_date=key.citizen.birth_date,
                              code_confirmed=bool(pending.get("code_ok")))
    context = {"form": form, "pending": pending, "resend": not pending.get("code_ok")}
    if request.method == "POST":
        if form.is_valid():
            ip = login.client_ip(request)
            if not pending.get("code_ok"):
                result = services.check_pin_code(pending["tx"], form.cleaned_data["code"], ip=ip)
                if not result.ok:
                    refusal = CODE_REFUSALS.get(result.reason)
                    form.add_error("code", refusal(result) if refusal else _("Ask for a new code."))
                    return render(request, "portal/pin_confirm.html", context, status=400)
                request.session[SESSION_PENDING] = {**pending, "code_ok": True}
            try:
                services.set_pin(key, form.cleaned_data["new_pin"], ip=ip)
            except ValidationError as exc:
                form = NewPinWithCodeForm(request.POST, birth_date=key.citizen.birth_date, code_confirmed=True)
                form.full_clean()
                form.add_error("new_pin", exc)
                return render(request, "portal/pin_confirm.html", {**context, "form": form, "resend": False},
                              status=400)
            request.session.pop(SESSION_PENDING, None)
            messages.success(request, _("Your PIN was changed. We told you so on your contacts."))
            return redirect("portal:home")
        return render(request, "portal/pin_confirm.html", context, status=400)
    return render(request, "portal/pin_confirm.html", context)


@area(usable=True)
@require_POST
def resend(request, who, key):
    """Send the pending action's code again (cooldown and send limits apply)."""
    data = request.session.get(SESSION_PENDING)
    action = data.get("action") if isinstance(data, dict) else None
    pending = _pending(request, action, key) if action in ("pin", "contact") else None
    if pending is None:
        return _no_pending(request, "portal:home")
    ip = login.client_ip(request)
    if action == "pin":
        sent = services.send_pin_code(key, ip=ip, language=_language(), transaction_id=pending["tx"])
        issue = sent.issue
        target = "portal:pin_confirm"
    else:
        if not services.is_recent(who):
            return _enter(request, again=True)
        try:
            issue = services.start_contact_change(key, pending["kind"], pending["value"], ip=ip,
                                                  language=_language(), transaction_id=pending["tx"]).issue
        except ValidationError as exc:
            request.session.pop(SESSION_PENDING, None)
            messages.error(request, exc.messages[0])
            return redirect("portal:home")
        target = "portal:contact_confirm"
    if issue is not None and issue.sent:
        messages.success(request, _("We sent you a new code. Only the most recent one works."))
    else:
        messages.error(request, _refusal_text(issue) if issue else str(PIN_REFUSALS["no_channel"]))
    return redirect(target)


# --- Contacts -----------------------------------------------------------------------------------


@area(recent=True, usable=True)
@require_http_methods(["GET", "POST"])
def contact(request, who, key, kind):
    if kind not in services.area_contact_kinds():
        raise Http404()
    current = key.contacts.filter(kind=kind, verified_at__isnull=False, live=True).first()
    if not services.may_replace(who, kind, current):
        # A sign-in by e-mail (level 2) cannot take the mobile number, the level-3 factor.
        return render(request, "portal/contact.html", {
            "kind": kind, "current": current, "stronger": True,
            "card_url": f"{reverse('card:login')}?{urlencode({'next': request.get_full_path()})}",
        }, status=403)
    form = ContactForm(_posted(request), kind=kind)
    status = 200
    if request.method == "POST":
        status = 400
        if form.is_valid():
            value = form.cleaned_data["value"]
            try:
                started = services.start_contact_change(key, kind, value, ip=login.client_ip(request),
                                                        language=_language())
            except ValidationError as exc:
                form.add_error("value", exc)
            else:
                if started.sent:
                    request.session[SESSION_PENDING] = {"action": "contact", "key": key.pk, "kind": kind,
                                                        "value": value, "tx": started.transaction}
                    return redirect("portal:contact_confirm")
                form.add_error(None, _refusal_text(started.issue))
                status = 429 if started.issue.reason == "rate_limited" else 400
    return render(request, "portal/contact.html", {"form": form, "kind": kind, "current": current}, status=status)


@area(recent=True, usable=True)
@require_http_methods(["GET", "POST"])
def contact_confirm(request, who, key):
    pending = _pending(request, "contact", key)
    if pending is None:
        return _no_pending(request, "portal:home")
    current = key.contacts.filter(kind=pending["kind"], verified_at__isnull=False, live=True).first()
    if not services.may_replace(who, pending["kind"], current):
        return redirect("portal:contact", kind=pending["kind"])
    form = CodeForm(_posted(request))
    context = {"form": form, "pending": pending, "masked": mask(pending["kind"], pending["value"]), "resend": True}
    if request.method == "POST":
        if form.is_valid():
            try:
                result = services.confirm_contact_change(key, pending["kind"], pending["value"],
                                                         transaction_id=pending["tx"], code=form.cleaned_data["code"],
                                                         ip=login.client_ip(request))
            except ValidationError as exc:
                request.session.pop(SESSION_PENDING, None)
                messages.error(request, exc.messages[0])
                return redirect("portal:contact", kind=pending["kind"])
            if result.ok:
                request.session.pop(SESSION_PENDING, None)
                messages.success(request, _("Your new contact is confirmed. We told you so on your contacts."))
                return redirect("portal:home")
            refusal = CODE_REFUSALS.get(result.reason)
            form.add_error("code", refusal(result) if refusal else _("Ask for a new code."))
        return render(request, "portal/contact_confirm.html", context, status=400)
    return render(request, "portal/contact_confirm.html", context)


# --- Cancelling the key -------------------------------------------------------------------------


@area(recent=True, usable=True)
@require_http_methods(["GET", "POST"])
def cancel(request, who, key):
    # Entered with the Citizen Card a moment ago: the card is the stronger proof (and a blocked
    # key's PIN cannot be checked); entered with the key: its PIN, typed again.
    ask_pin = who.method != "citizen_card"
    form = CancelForm(_posted(request), ask_pin=ask_pin)
    status = 200
    if request.method == "POST":
        status = 400
        if form.is_valid():
            ip = login.client_ip(request)
            decision = services.check_pin(key, form.cleaned_data["pin"], ip=ip) if ask_pin else None
            if decision is not None and not decision.ok:
                form.add_error("pin" if decision.reason == "wrong" else None, _pin_refusal(decision))
                status = 429 if decision.reason == "throttled" else 400
            else:
                try:
                    services.cancel_key(key, ip=ip)
                except IllegalTransition:
                    return _no_pending(request, "portal:home")
                request.session.flush()
                return render(request, "portal/cancelled.html")
    return render(request, "portal/cancel.html", {"form": form, "ask_pin": ask_pin}, status=status)


# --- History ------------------------------------------------------------------------------------


def _history_row(event: AuditEvent, finder) -> dict:
    detail = event.detail or {}
    portal = detail.get("portal") or ""
    if not portal and detail.get("client_id"):
        portal = RelyingParty.objects.filter(client_id=detail["client_id"]).values_list("name", flat=True).first() or ""
    if not portal and event.event == "login":
        portal = "Chave"
    report = getattr(event, "not_me_report", None)
    shows_outcome = labels.shows_outcome(event.event) and bool(event.outcome)
    return {
        "event": event, "label": labels.event_label(event.event),
        "ok": not shows_outcome or labels.successful(event.outcome), "outcome": event.outcome,
        "outcome_label": labels.outcome_label(event.outcome) if shows_outcome else "",
        "portal": portal, "method": labels.channel_label(event.channel),
        "level": detail.get("level"), "place": finder.place(event.ip) if event.ip else None,
        "reported": report is not None, "device": detail.get("device_name") or "",
    }


@area()
@require_safe
def history(request, who, key):
    """The key's events, newest first, a page at a time, under a heading for each day."""
    page = Paginator(services.history(key.citizen), HISTORY_PAGE_SIZE).get_page(request.GET.get("page"))
    finder = places()
    days: list[dict] = []
    for event in page.object_list:
        day = timezone.localdate(event.at)
        if not days or days[-1]["day"] != day:
            days.append({"day": day, "rows": []})
        days[-1]["rows"].append(_history_row(event, finder))
    return render(request, "portal/history.html", {"page": page, "days": days, "today": clock.today()})


@area()
@require_http_methods(["GET", "POST"])
def not_me(request, who, key, event_id):
    event = get_object_or_404(AuditEvent.objects.select_related("not_me_report"), pk=event_id, citizen=key.citizen)
    row = _history_row(event, places())
    if request.method == "POST" and row["reported"]:
        messages.info(request, _("You reported this as not you."))
        return redirect("portal:history")
    if request.method == "POST":
        report = services.report_not_me(key, event, ip=login.client_ip(request))
        request.session.flush()
        return render(request, "portal/reported.html", {"report": report, "row": row})
    return render(request, "portal/not_me.html", {"row": row})


# --- Portals ------------------------------------------------------------------------------------


@area()
@require_safe
def portals(request, who, key):
    rows = [
        {"consent": c, "shared": [ATTRIBUTES[n].label for n in c.granted if n in ATTRIBUTES],
         "refused": [ATTRIBUTES[n].label for n in c.refused if n in ATTRIBUTES]}
        for c in services.consents(key.citizen)
    ]
    return render(request, "portal/portals.html", {"rows": rows})


@area()
@require_POST
def revoke(request, who, key, client_id):
    if not services.revoke_portal(key.citizen, client_id):
        return _no_pending(request, "portal:portals")
    messages.success(request, _("The portal no longer has your consent. It will ask again at your next sign-in."))
    return redirect("portal:portals")


# --- Export -------------------------------------------------------------------------------------


@area(recent=True)
@require_http_methods(["GET", "POST"])
def export(request, who, key):
    if request.method == "GET":
        return render(request, "portal/export.html")
    data = services.export(key.citizen, ip=login.client_ip(request))
    response = HttpResponse(json.dumps(data, ensure_ascii=False, indent=2), content_type="application/json")
    stamp = dt.datetime.fromisoformat(data["exported_at"]).strftime("%Y%m%d-%H%M%S")
    response["Content-Disposition"] = f'attachment; filename="chave-my-data-{stamp}.json"'
    return response
