"""Citizen Card pages: sign in with the card, register a key online, recover the PIN / unlock.

Thin: parse → call ``services`` / ``selfservice`` → render or redirect. No JavaScript: the card
page is a form posted to the citizen's card agent, and the agent's page posts the answer back
to :func:`card_return`. Refusals are pages in the citizen's language with a 4xx status.
"""

from __future__ import annotations

import datetime as dt
import functools
from urllib.parse import urlencode

from cryptography.hazmat.primitives.serialization import Encoding
from django.conf import settings
from django.contrib import messages
from django.core.exceptions import ValidationError
from django.http import HttpResponse, HttpResponseNotFound
from django.shortcuts import redirect, render
from django.urls import reverse
from django.utils import translation
from django.utils.translation import gettext as _
from django.utils.translation import ngettext
from django.views.decorators.cache import never_cache
from django.views.decorators.csrf import csrf_exempt
from django.views.decorators.http import require_http_methods, require_POST

from chave import clock, policy
from chave.codes.models import Purpose
from chave.codes.services import latest_code
from chave.identity import services as identity
from chave.identity.models import ContactKind, KeyStatus, mask
from chave.login import services as login
from chave.login.forms import CodeForm, NewPinForm
from chave.login.views import _refusal_text
from chave.portal import services as area
from chave.portal.forms import NewPinWithCodeForm

from . import protocol, selfservice, services
from .forms import ContactsForm
from .pki import DevPki, PkiError
from .verification import CardRefused

SESSION_REGISTRATION = "chave.card.registration"
SESSION_RECOVERY = "chave.card.recovery"
KINDS = (ContactKind.MOBILE, ContactKind.EMAIL)


def _language() -> str:
    return translation.get_language() or "pt-pt"


def _posted(request):
    return request.POST if request.method == "POST" else None


def _refused(request, reason: str, status: int = 400):
    return render(request, "card/refused.html", {"message": services.refusal_text(reason), "reason": reason},
                  status=status)


def card_page(back: str, *methods: str):
    """A page for the holder of a card verified in this session; without one, read the card
    first and come back to ``back``. The view gets ``(request, card)``."""

    def wrap(view):
        @never_cache
        @require_http_methods(list(methods))
        @functools.wraps(view)
        def page(request):
            card = services.verified_card(request)
            if card is None:
                return redirect(reverse("card:login") + "?" + urlencode({"next": reverse(back)}))
            return view(request, card)

        return page

    return wrap


def registration_step(*methods: str):
    """A step of the session's registration in progress: the view gets ``(request, card, key, data)``."""

    def wrap(view):
        @card_page("card:register", *methods)
        @functools.wraps(view)
        def step(request, card):
            found = _registration(request, card)
            if found is None:
                return redirect("card:register")
            return view(request, card, *found)

        return step

    return wrap


def recovery_step(*methods: str):
    """A step of recovery for a card holder whose key may get a new PIN: ``(request, card, key)``."""

    def wrap(view):
        @card_page("card:recover", *methods)
        @functools.wraps(view)
        def step(request, card):
            key, why = selfservice.recoverable_key(card)
            if key is None:
                return render(request, "card/recover_refused.html", {"reason": why, "card": card}, status=403)
            return view(request, card, key)

        return step

    return wrap


# --- Signing in with the card ----------------------------------------------------------------


@never_cache
@require_http_methods(["GET"])
def start(request):
    """The card page: a new challenge and the form that takes it to the card agent."""
    try:
        form = services.issue_challenge(request, next_url=request.GET.get("next", ""))
    except CardRefused as exc:
        return _refused(request, exc.reason, status=429)
    target = login.login_for(request)
    response = render(request, "card/login.html", {
        "agent": form, "login_for": target, "card_only": bool(target) and not login.pin_login_reaches(target.min_level),
        "agent_command": "chave card-agent",
    })
    # The agent accepts the form only from our origin, so the browser must say it: under the
    # site's stricter policy an https page posting to http://127.0.0.1 sends "Origin: null".
    # "origin" sends the origin alone (never the path) with the form.
    response["Referrer-Policy"] = "origin"
    return response


@csrf_exempt  # posted by the card agent's page; bound to the session's challenge instead (services.finish)
@never_cache
@require_http_methods(["GET", "POST"])
def card_return(request):
    """POST: the agent's answer (checked now, any session). GET: finish it in the asking session."""
    if request.method == "POST":
        try:
            answered = services.answer(
                challenge_id=request.POST.get(protocol.F_CHALLENGE_ID, ""),
                origin=request.POST.get(protocol.F_ORIGIN, ""),
                certificate=request.POST.get(protocol.F_CERTIFICATE, ""),
                signature=request.POST.get(protocol.F_SIGNATURE, ""),
                chain=request.POST.getlist(protocol.F_CHAIN),
                ip=login.client_ip(request),
            )
        except CardRefused as exc:
            return _refused(request, exc.reason)
        response = redirect(reverse("card:return") + "?" + urlencode({"c": answered.challenge_id,
                                                                      "f": answered.finish_token}))
        response.status_code = 303
        return response
    try:
        challenge = services.finish(request, challenge_id=request.GET.get("c", ""),
                                    finish_token=request.GET.get("f", ""))
    except CardRefused as exc:
        return _refused(request, exc.reason, status=403 if exc.reason == "other_session" else 400)
    if challenge.purpose == "staff":
        return redirect(challenge.next_url or "counter:login_card")
    card = services.verified_card(request)
    outcome = services.sign_in_with_card(request, card)
    if challenge.next_url:
        return redirect(challenge.next_url)
    target = login.login_for(request)
    if target and outcome.for_portals:
        return redirect(login.after_login_url(request))
    return redirect("card:done")


@never_cache
@require_http_methods(["GET"])
def done(request):
    """Where a card sign-in lands without a destination: who the card proved, and what next."""
    card = services.verified_card(request)
    if card is None:
        return redirect("card:login")
    key = services.citizen_key(card)
    status = key.effective_status(clock.now()) if key else None
    target = login.login_for(request)
    return render(request, "card/done.html", {
        "card": card, "key": key, "status": status, "signed_in": login.signed_in(request),
        "can_register": selfservice.eligibility(card).ok, "login_for": target,
        "blocked": status in (KeyStatus.BLOCKED,),
        "recoverable": status in selfservice.RECOVERABLE,
    })


# --- Test PKI: CRL and OCSP (development and tests) -------------------------------------------


def _dev_pki():
    if settings.IS_PRODUCTION:
        return None
    pki = DevPki()
    return pki if pki.exists() else None


@never_cache
@require_http_methods(["GET"])
def crl(request):
    pki = _dev_pki()
    if pki is None:
        return HttpResponseNotFound("no test PKI", content_type="text/plain")
    try:
        body = pki.crl(now=clock.now()).public_bytes(Encoding.DER)
    except PkiError:
        return HttpResponseNotFound("no test PKI", content_type="text/plain")
    return HttpResponse(body, content_type="application/pkix-crl")


@csrf_exempt  # OCSP clients POST DER requests (RFC 6960 A.1); nothing here acts for a session
@never_cache
@require_POST
def ocsp(request):
    pki = _dev_pki()
    if pki is None:
        return HttpResponseNotFound("no test PKI", content_type="text/plain")
    if request.content_type != "application/ocsp-request" or len(request.body) > 64 * 1024:
        return HttpResponse("send an application/ocsp-request", status=415, content_type="text/plain")
    return HttpResponse(pki.ocsp_response(request.body, now=clock.now()), content_type="application/ocsp-response")


# --- Online registration -----------------------------------------------------------------------


def _registration(request, card):
    """The session's registration in progress for this card (key and contacts to confirm), or None."""
    data = request.session.get(SESSION_REGISTRATION) or {}
    if data.get("nic") != card.nic:
        return None
    key = services.citizen_key(card)
    if key is None or key.pk != data.get("key_id") or key.status != KeyStatus.PENDING:
        return None
    return key, data


@card_page("card:register", "GET", "POST")
def register(request, card):
    decision = selfservice.eligibility(card)
    if not decision.ok:
        return render(request, "card/register_refused.html",
                      {"message": decision.message, "reason": decision.reason, "card": card}, status=403)
    initial = {}
    if decision.pending_key is not None:
        for contact in decision.pending_key.contacts.all():
            initial[contact.kind] = contact.value
    form = ContactsForm(_posted(request), initial=initial)
    if request.method == "POST" and form.is_valid():
        wanted = [identity.ContactInput(kind, form.cleaned_data[kind]) for kind in KINDS if form.cleaned_data[kind]]
        try:
            key, sent = selfservice.start_registration(card, wanted, language=_language(), ip=login.client_ip(request),
                                                       terms_accepted=form.cleaned_data["terms"])
        except ValidationError as exc:
            field = {"mobile_taken": "mobile", "email_taken": "email"}.get(exc.code)
            form.add_error(field, exc)
        else:
            request.session[SESSION_REGISTRATION] = {
                "nic": card.nic, "key_id": key.pk,
                "pending": {c.kind: {"value": c.value, "tx": c.transaction} for c in sent},
            }
            for c in sent:
                if not c.issue.sent:
                    messages.error(request, _refusal_text(c.issue))
            return redirect("card:register_confirm")
    status = 400 if request.method == "POST" else 200
    return render(request, "card/register.html", {"form": form, "card": card, "record": decision.record,
                                                  "resuming": decision.pending_key is not None}, status=status)


def _code_error(result) -> str:
    if result.reason == "wrong":
        return ngettext("The code is not correct. You can try %(n)d more time.",
                        "The code is not correct. You can try %(n)d more times.", result.attempts_left) % {
                            "n": result.attempts_left}
    if result.reason == "expired":
        return _("This code has expired. Ask for a new code.")
    return _("This code can no longer be used. Ask for a new code.")


@registration_step("GET", "POST")
def register_confirm(request, card, key, data):
    pending = data.get("pending", {})
    if not pending:
        return redirect("card:register_pin")
    forms_by_kind = {kind: CodeForm(_posted(request), prefix=kind) for kind in KINDS if kind in pending}
    if request.method == "POST":
        for kind, form in forms_by_kind.items():
            if not form.is_valid():
                continue
            try:
                result = selfservice.confirm_contact(key, kind, pending[kind]["value"],
                                                     transaction_id=pending[kind]["tx"],
                                                     code=form.cleaned_data["code"], ip=login.client_ip(request))
            except ValidationError as exc:
                form.add_error("code", exc)
                continue
            if result.ok:
                pending.pop(kind)
            else:
                form.add_error("code", _code_error(result))
        request.session[SESSION_REGISTRATION] = {**data, "pending": pending}
        if not pending:
            return redirect("card:register_pin")
        forms_by_kind = {k: f for k, f in forms_by_kind.items() if k in pending}
    rows = []
    for kind, form in forms_by_kind.items():
        masked = mask(kind, pending[kind]["value"])
        # Each code field names its contact: two "Security code" fields would look the same.
        form.fields["code"].label = (_("Code sent by SMS to %(masked)s") if kind == ContactKind.MOBILE
                                     else _("Code sent by e-mail to %(masked)s")) % {"masked": masked}
        rows.append({"kind": kind, "form": form, "masked": masked, "resend_at": _resend_at(pending[kind]["tx"])})
    return render(request, "card/register_confirm.html", {"rows": rows, "card": card},
                  status=400 if request.method == "POST" else 200)


def _resend_at(transaction_id: str):
    """When a new code may be asked for (None: now)."""
    code = latest_code(Purpose.CONTACT, transaction_id)
    if code is None:
        return None
    at = code.created_at + dt.timedelta(seconds=policy.get("code_resend_cooldown_seconds"))
    return at if at > clock.now() else None


@registration_step("POST")
def register_resend(request, card, key, data):
    kind = request.POST.get("kind", "")
    entry = data.get("pending", {}).get(kind)
    if entry is None:
        return redirect("card:register_confirm")
    started = selfservice.resend_code(key, kind, entry["value"], transaction_id=entry["tx"], language=_language(),
                                      ip=login.client_ip(request))
    if started.sent:
        entry["tx"] = started.transaction
        request.session[SESSION_REGISTRATION] = data
        messages.success(request, _("We sent a new code."))
    else:
        messages.error(request, _refusal_text(started.issue))
    return redirect("card:register_confirm")


@registration_step("GET", "POST")
def register_pin(request, card, key, data):
    if data.get("pending"):
        return redirect("card:register_confirm")
    form = NewPinForm(_posted(request), birth_date=key.citizen.birth_date)
    if request.method == "POST" and form.is_valid():
        try:
            key = selfservice.finish_registration(card, key, form.cleaned_data["new_pin"], ip=login.client_ip(request))
        except ValidationError as exc:
            form.add_error("new_pin", exc)
        else:
            request.session.pop(SESSION_REGISTRATION, None)
            services.sign_in_with_card(request, card)
            return redirect("card:register_done")
    return render(request, "card/register_pin.html", {"form": form, "card": card},
                  status=400 if request.method == "POST" else 200)


@card_page("card:register", "GET")
def register_done(request, card):
    key = services.citizen_key(card)
    if key is None or key.status != KeyStatus.ACTIVE:
        return redirect("card:register")
    return render(request, "card/register_done.html", {
        "card": card, "key": key, "contacts": selfservice.verified_contacts(key),
    })


# --- Recovering the PIN / unlocking -------------------------------------------------------------


@recovery_step("GET", "POST")
def recover(request, card, key):
    status = key.effective_status(clock.now())
    if request.method == "POST":
        sent = area.send_pin_code(key, ip=login.client_ip(request), language=_language(), task="recover")
        if sent.ok:
            request.session[SESSION_RECOVERY] = {"nic": card.nic, "key_id": key.pk, "tx": sent.transaction,
                                                 "channel": sent.channel, "masked": sent.masked, "code_ok": False}
            return redirect("card:recover_pin")
        messages.error(request, _refusal_text(sent.issue) if sent.issue else
                       _("No contact of this key can receive codes now. Contact the help line."))
    return render(request, "card/recover.html", {"card": card, "key": key, "status": status,
                                                 "locked": status in (KeyStatus.LOCKED, KeyStatus.BLOCKED)})


@recovery_step("GET", "POST")
def recover_pin(request, card, key):
    data = request.session.get(SESSION_RECOVERY) or {}
    if data.get("nic") != card.nic or data.get("key_id") != key.pk:
        return redirect("card:recover")
    form = NewPinWithCodeForm(_posted(request), birth_date=key.citizen.birth_date, code_confirmed=data["code_ok"])
    if request.method == "POST" and form.is_valid():
        ip = login.client_ip(request)
        if not data["code_ok"]:
            result = area.check_pin_code(data["tx"], form.cleaned_data["code"], ip=ip)
            if result.ok:
                data["code_ok"] = True
                request.session[SESSION_RECOVERY] = data
            else:
                form.add_error("code", _code_error(result))
        if data["code_ok"]:
            try:
                selfservice.recover(card, key, form.cleaned_data["new_pin"], ip=ip)
            except ValidationError as exc:
                form = NewPinWithCodeForm(request.POST, birth_date=key.citizen.birth_date, code_confirmed=True)
                form.is_valid()
                form.add_error("new_pin", exc)
            else:
                request.session.pop(SESSION_RECOVERY, None)
                services.sign_in_with_card(request, card)
                return redirect("card:recover_done")
    return render(request, "card/recover_pin.html", {
        "form": form, "card": card, "channel": data["channel"], "masked": data["masked"],
        "code_ok": data["code_ok"],
    }, status=400 if request.method == "POST" else 200)


@card_page("card:recover", "GET")
def recover_done(request, card):
    return render(request, "card/recover_done.html", {"card": card})
