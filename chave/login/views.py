"""The login pages: parse → call a service → render or redirect. No JavaScript needed.

Every refusal is a page in the citizen's language with a 4xx status (400 for input, 429 for
throttling); a step asked for out of order sends the citizen to the step their login is at,
or to the start with a message when there is none.
"""

from __future__ import annotations

import datetime as dt
import math

from django.contrib import messages
from django.core.exceptions import ValidationError
from django.db import transaction
from django.shortcuts import redirect, render
from django.utils import translation
from django.utils.translation import gettext as _
from django.utils.translation import gettext_noop, ngettext
from django.views.decorators.cache import never_cache
from django.views.decorators.http import require_http_methods, require_POST, require_safe

from chave import formats, clock, policy
from chave.codes.models import Purpose
from chave.codes.services import sent_codes
from chave.identity import services as identity
from chave.app.services import device_label
from chave.identity.models import mask

from . import services
from .forms import ChannelForm, CodeForm, CredentialsForm, NewPinForm
from .models import LoginTransaction

TX = LoginTransaction.Status
SESSION_QR = "chave.login.app_qr"
STEP_OF_STATUS = {TX.PIN_OK: "login:channel", TX.CODE_SENT: "login:code", TX.PIN_CHANGE: "login:change_pin",
                  TX.APP_WAIT: "login:approve"}

# One answer for every refused PIN step, so that nobody learns whether a number has a key.
GENERIC_REFUSAL = gettext_noop(
    "The mobile number, e-mail or PIN is not correct. After several wrong PINs the key is locked "
    "for a while, and its owner is told by SMS or e-mail."
)


def _language() -> str:
    return translation.get_language() or "pt-pt"


def _posted(request):
    """The submitted data on POST (possibly empty, so that "required" errors show), else None."""
    return request.POST if request.method == "POST" else None


def _expired(request):
    messages.error(request, _("Your sign-in has expired or was not started. Please start again."))
    return redirect("login:start")


def _elsewhere(request):
    """A step asked for out of order: go to the step the login is at, or start again."""
    tx = services.current(request)
    if tx is None or tx.status not in STEP_OF_STATUS:
        return _expired(request)
    return redirect(STEP_OF_STATUS[tx.status])


@never_cache
@require_http_methods(["GET", "POST"])
def start(request):
    target = services.login_for(request)
    hint = target.login_hint if target and request.method == "GET" else ""
    form = CredentialsForm(_posted(request), initial={"identifier": hint} if hint else None)
    status = 200
    # A portal asking for a level no PIN and code reach: only the Citizen Card is offered.
    card_only = bool(target) and not services.pin_login_reaches(target.min_level)
    if request.method == "POST" and card_only:
        return render(request, "login/start.html", {"form": CredentialsForm(None), "login_for": target,
                                                    "card_only": True}, status=400)
    if request.method == "POST":
        status = 400
        if form.is_valid():
            kind, value = form.cleaned_data["identifier"]
            key = identity.find_key_by_contact(kind, value)
            ip = services.client_ip(request)
            decision = identity.check_login_pin(key, form.cleaned_data["pin"], ip=ip, channel="web")
            if decision.ok:
                answer = _after_right_pin(request, form, decision)
                if answer is not None:
                    return answer
            elif decision.reason == "throttled":
                form.add_error(None, _("Too many attempts from this connection. Please try again later."))
                status = 429
            elif decision.reason == "temporary_pin_expired":
                # Only said after a correct PIN, so it reveals nothing to someone guessing.
                form.add_error(None, _("Your temporary PIN has expired. Ask for a new one at a counter or with "
                                       "your Citizen Card in the personal area."))
            else:
                form.add_error(None, _(GENERIC_REFUSAL))
    target = services.login_for(request)
    return render(request, "login/start.html", {"form": form, "login_for": target, "card_only": card_only,
                                                "methods": services.login_methods(target)}, status=status)


def _after_right_pin(request, form, decision):
    """Open the login and send its code, in one transaction: the login's row, the code, its
    message and task, and the audit commit together. None (with the form's error) when no code
    can be sent."""
    with transaction.atomic():
        target = services.login_for(request)
        tx = services.start(request, key=decision.key, must_change_pin=decision.must_change_pin,
                            portal=target.portal if target else "",
                            required_level=target.min_level if target else 0)
        options = services.login_options(tx.key, tx.required_level)
        if not options and tx.required_level and services.login_options(tx.key):
            form.add_error(None, _("%(portal)s asks for assurance level %(level)d, which a code to your "
                                   "registered contacts cannot reach. Register a mobile number for SMS codes.")
                           % {"portal": tx.portal, "level": tx.required_level})
        elif not options:
            form.add_error(None, _("No contact of this key can receive codes now. Contact the help line."))
        elif len(options) == 1:
            return _send_and_continue(request, tx, options[0].channel, options=options)
        else:
            return redirect("login:channel")
    return None


def _send_and_continue(request, tx, channel, *, sent_message: str = "", options=None):
    result = services.send_code(tx, channel, ip=services.client_ip(request), language=_language(), options=options)
    if result is None:
        messages.error(request, _("Choose one of the options shown."))
        return redirect("login:channel")
    if not result.sent:
        messages.error(request, _refusal_text(result))
        if tx.status == TX.PIN_OK:
            several = len(services.login_options(tx.key, tx.required_level)) > 1
            return redirect("login:channel") if several else redirect("login:start")
    elif sent_message:
        messages.success(request, sent_message)
    return redirect("login:code")


def _refusal_text(result) -> str:
    """Why no code was sent, in words: how long to wait ("in 38 minutes (at 10:55)") and what else
    can be done meanwhile."""
    wait = formats.wait_until(result.retry_at) if result.retry_at else ""
    return {
        "cooldown": _("Please wait: you can ask for a new code %(wait)s.") % {"wait": wait},
        "too_many_sends": _("You have asked for the most codes allowed for this sign-in. Please start again."),
        "rate_limited": _("Too many codes were sent to this contact recently. You can ask for a new one "
                          "%(wait)s. Meanwhile, you can receive the code another way (if your key has another "
                          "contact or the Chave app), or sign in with your Citizen Card and its reader.") % {
                              "wait": wait},
        "throttled": _("Too many sign-in requests were sent to your app recently. You can try again %(wait)s, "
                       "or choose another way to receive the code.") % {"wait": wait},
        "country_not_allowed": _("We cannot send SMS to this country. Choose another option or contact the help line."),
    }.get(result.reason, _("The code could not be sent. Please try again."))


@never_cache
@require_http_methods(["GET", "POST"])
def channel(request):
    tx = services.current(request, TX.PIN_OK, TX.CODE_SENT, TX.APP_WAIT)
    if tx is None:
        return _elsewhere(request)
    options = services.login_options(tx.key, tx.required_level)
    usual = services.usual_channel(tx.key, options) if request.method == "GET" else None
    form = ChannelForm(_posted(request), options=options, initial={"channel": usual} if usual else None)
    if request.method == "POST":
        if form.is_valid():
            chosen = form.cleaned_data["channel"]
            if chosen == "app_approve":
                started = services.ask_approval(tx, ip=services.client_ip(request), options=options)
                if started.ok:
                    return redirect("login:approve")
                messages.error(request, _refusal_text(started) if started.reason == "throttled"
                               else _("Choose one of the options shown."))
                return redirect("login:channel")
            if chosen == "app_offline":
                services.use_offline_codes(tx, options)
                return redirect("login:code")
            return _send_and_continue(request, tx, chosen, options=options)
        return render(request, "login/channel.html", {"form": form}, status=400)
    return render(request, "login/channel.html", {"form": form})


def _code_context(tx, form):
    now = clock.now()
    sent = sent_codes(Purpose.LOGIN, str(tx.pk))  # newest first: a few rows at most
    code = sent[0] if sent else None
    cooldown = dt.timedelta(seconds=policy.get("code_resend_cooldown_seconds"))
    max_sends = policy.get("code_max_sends_per_transaction")
    sends = len(sent)
    if tx.channel == "app_offline":  # the app makes the code: nothing is sent, nothing to resend
        sends = max_sends
    resend_at = code.created_at + cooldown if code else now
    kind = services.KIND_OF_CHANNEL.get(tx.channel)
    code_live = bool(code and code.expires_at > now and code.invalidated_at is None and code.used_at is None)
    return {
        "form": form,
        "channel": tx.channel,
        "digits": policy.get("code_digits"),
        "masked": mask(kind, tx.destination) if kind else device_label(tx.destination),
        "code_live": code_live,
        "code_expired": bool(code and code.expires_at <= now and code.used_at is None),
        "expires_at": code.expires_at if code_live else None,
        "minutes_left": max(1, int((code.expires_at - now).total_seconds() + 59) // 60) if code_live else 0,
        "can_resend": sends < max_sends and resend_at <= now,
        "resend_at": resend_at if sends < max_sends else None,
        "several_channels": len(services.login_options(tx.key, tx.required_level)) > 1,
    }


CODE_REFUSALS = {
    "wrong": lambda r: ngettext("The code is not correct. You can try %(n)d more time.",
                                "The code is not correct. You can try %(n)d more times.", r.attempts_left) % {
                                    "n": r.attempts_left},
    "spent": lambda r: _("Too many wrong codes: this code no longer works. Ask for a new code."),
    "expired": lambda r: _("This code has expired. Ask for a new code."),
    "used": lambda r: _("This code was already used. Ask for a new code."),
    "invalidated": lambda r: _("A newer code was sent: use the most recent message."),
    "rate_limited": lambda r: _("Too many codes were typed for this key recently. Please try again later."),
}


@never_cache
@require_http_methods(["GET", "POST"])
def code(request):
    tx = services.current(request, TX.CODE_SENT)
    if tx is None:
        return _elsewhere(request)
    form = CodeForm(_posted(request))
    if request.method == "POST":
        if form.is_valid():
            try:
                result = services.verify(request, tx, form.cleaned_data["code"])
            except services.StaleTransaction:
                return _elsewhere(request)
            if result.ok:
                return redirect("login:change_pin") if tx.must_change_pin else _after_login(request)
            refusal = CODE_REFUSALS.get(result.reason)
            form.add_error("code", refusal(result) if refusal else _("Ask for a new code."))
        return render(request, "login/code.html", _code_context(tx, form), status=400)
    return render(request, "login/code.html", _code_context(tx, form))


APPROVAL_REFUSALS = {
    "wrong_number": gettext_noop("You tapped another number in the Chave app, so this sign-in was refused. If it was "
                                 "you, start again."),
    "reported": gettext_noop("You said in the Chave app that this sign-in was not yours: it was refused and your key "
                             "is locked for a while. We told you on your contacts."),
    "expired": gettext_noop("The Chave app did not answer in time. Start again, or choose another way to sign in."),
}


@never_cache
@require_http_methods(["GET", "POST"])
def approve(request):
    """Waiting for the approval in the app: the number to match, a meta refresh every few seconds
    and a "Continue" button (no script). Approved → signed in; refused or expired → said why."""
    from chave.app import services as app

    tx = services.current(request, TX.APP_WAIT)
    if tx is None:
        return _elsewhere(request)
    waiting = app.approval_of(str(tx.pk))
    try:
        if services.approved(request, tx, waiting):
            return redirect("login:change_pin") if tx.must_change_pin else _after_login(request)
    except services.StaleTransaction:
        return _elsewhere(request)
    now = clock.now()
    if waiting is not None and waiting.status in (waiting.Status.APPROVED, waiting.Status.COMPLETED):
        return _elsewhere(request)  # another request of this browser is signing in with it
    if waiting is None or waiting.status != waiting.Status.PENDING or waiting.expires_at <= now:
        reason = "expired" if waiting is None or waiting.status == waiting.Status.PENDING else (
            "reported" if waiting.status == waiting.Status.REPORTED else "wrong_number")
        if reason != "expired":
            services.abandon(request, tx)
        return render(request, "login/approve.html", {"refused": _(APPROVAL_REFUSALS[reason]), "reason": reason},
                      status=400 if reason != "expired" else 200)
    return render(request, "login/approve.html", {
        "number": waiting.number, "expires_at": waiting.expires_at, "refresh": policy.get("app_refresh_seconds"),
    })


@never_cache
@require_http_methods(["GET", "POST"])
def app_sign_in(request):
    """Sign in with the Chave app on this computer: a QR code that changes every few seconds (the
    page refreshes itself, no script) and its short code; the app scans it and the citizen types
    the PIN there. POST starts a new code."""
    from chave.app import services as app
    from chave.app.area_views import qr_image

    target = services.login_for(request)
    if target and target.min_level > policy.assurance_level("app"):
        return redirect("login:start")
    ip = services.client_ip(request)
    held = request.session.get(SESSION_QR) or {}
    found = app.qr_of_session(held.get("id"), held.get("binder")) if request.method == "GET" else None
    now = clock.now()
    if found is not None and found.status == found.Status.APPROVED:
        taken = app.take_qr(found)
        request.session.pop(SESSION_QR, None)
        if taken is not None and taken.key is not None and taken.device is not None:
            services.complete_app_login(request, taken.key, device=taken.device,
                                        portal=target.portal if target else "")
            return _after_login(request)
        found = None
    if found is not None and found.status == found.Status.REFUSED:
        request.session.pop(SESSION_QR, None)
        messages.error(request, _("The sign-in was refused in the app. Here is a new code."))
        found = None
    if found is None or found.expires_at <= now or found.status not in (found.Status.PENDING, found.Status.SCANNED):
        try:
            found, binder = app.start_qr(portal=target.portal if target else "",
                                         required_level=target.min_level if target else 0, ip=ip)
        except app.AppRefusal as refusal:
            return render(request, "login/app_sign_in.html", {"refusal": refusal.message}, status=refusal.status)
        request.session[SESSION_QR] = {"id": str(found.pk), "binder": binder}
        if request.method == "POST":
            return redirect("login:app")
    codes_now = app.qr_codes(found, now)
    # Look again soon enough to notice the app's answer, and as the QR code changes.
    until_change = math.ceil((codes_now.next_change - now).total_seconds())
    return render(request, "login/app_sign_in.html", {
        "sign_in": found, "scanned": found.status == found.Status.SCANNED, "qr": qr_image(codes_now.link),
        "typed": codes_now.typed, "refresh": max(1, min(until_change, policy.get("app_refresh_seconds"))),
        "step": policy.get("app_qr_step_seconds"), "login_for": target,
        "device": found.device.name if found.device else "",
    })


@never_cache
@require_POST
def resend(request):
    tx = services.current(request, TX.CODE_SENT)
    if tx is None:
        return _elsewhere(request)
    if tx.channel == "app_offline":
        return redirect("login:code")
    channel = f"app:{tx.destination}" if tx.channel == "app" else tx.channel
    return _send_and_continue(request, tx, channel,
                              sent_message=_("We sent you a new code. Only the most recent one works."))


@never_cache
@require_http_methods(["GET", "POST"])
def change_pin(request):
    tx = services.current(request, TX.PIN_CHANGE)
    if tx is None:
        return _elsewhere(request)
    form = NewPinForm(_posted(request), birth_date=tx.key.citizen.birth_date)
    if request.method == "POST":
        if form.is_valid():
            try:
                services.set_new_pin(request, tx, form.cleaned_data["new_pin"])
            except ValidationError as exc:
                form.add_error("new_pin", exc)
            except services.StaleTransaction:
                return _elsewhere(request)
            else:
                messages.success(request, _("Your new PIN is set."))
                return _after_login(request)
        return render(request, "login/change_pin.html", {"form": form}, status=400)
    return render(request, "login/change_pin.html", {"form": form})


def _after_login(request):
    target = services.after_login_url(request)
    return redirect(target) if target else redirect("login:done")


@never_cache
@require_safe
def done(request):
    who = services.signed_in(request)
    if who is None:
        return redirect("login:start")
    return render(request, "login/done.html", {"who": who, "auth_time": dt.datetime.fromisoformat(who.auth_time)})


@require_POST
def logout(request):
    frames = services.sign_out(request)
    if frames:
        # Portals with a front-channel logout URI are told by the browser: a page whose hidden
        # frames load them (Front-Channel Logout 1.0), instead of the redirect home.
        from chave.security import allow_frames

        return allow_frames(render(request, "login/signed_out.html", {"frames": frames}), frames)
    messages.success(request, _("You have signed out."))
    return redirect("public:home")
