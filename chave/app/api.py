"""The open app API under ``/app/api/`` (``openapi.json``; ``chave/app/API.md``): JSON in and out,
every call after pairing signed by the device key (``signatures.py``). Views parse → call a
service → answer; refusals are ``{"error": code, "message": words in the caller's language}``
with a 4xx status (429 with ``Retry-After``). Every answer carries ``Chave-Time`` (the service's
clock, in milliseconds) so that the app can correct its own clock for signatures and offline codes.
"""

from __future__ import annotations

import functools
import io
import json
from pathlib import Path

from django.http import HttpResponse, JsonResponse
from django.utils.translation import gettext as _
from django.views.decorators.cache import never_cache
from django.views.decorators.csrf import csrf_exempt

from chave import clock, policy
from chave.login.services import client_ip
from chave.login.views import CODE_REFUSALS
from chave.signing.api import ApiError, _has_nul, copy_body

from . import push, services
from .services import AppRefusal

MAX_BODY_BYTES = 64 * 1024
OPENAPI = Path(__file__).resolve().parent / "openapi.json"


def _answer(status: int, payload) -> HttpResponse:
    response = HttpResponse(status=204) if status == 204 else JsonResponse(
        payload, status=status, json_dumps_params={"ensure_ascii": False})
    response["Cache-Control"] = "no-store"
    response["Chave-Time"] = str(int(clock.now().timestamp() * 1000))
    return response


def _read(request) -> tuple[bytes, dict]:
    buffer = io.BytesIO()
    try:
        copy_body(request, buffer, MAX_BODY_BYTES)
    except ApiError:
        raise AppRefusal(413, "too_large", _("The request is too large.")) from None
    raw = buffer.getvalue()
    if request.method != "POST" or not raw:
        return raw, {}
    try:
        body = json.loads(raw)
    except (ValueError, RecursionError):
        raise AppRefusal(400, "invalid_json", _("The body is not JSON.")) from None
    if not isinstance(body, dict):
        raise AppRefusal(400, "invalid_json", _("The body must be a JSON object."))
    if _has_nul(body):
        raise AppRefusal(400, "invalid_json", _("Strings in the body may not contain the NUL character."))
    return raw, body


def endpoint(*methods: str, signed: bool = True, pending: bool = False):
    """``view(request, device, body, ip, **kwargs) -> (status, payload)``; ``signed``: a device's
    signed call (``pending``: also a device waiting for its SMS code)."""

    def decorate(view):
        @csrf_exempt
        @never_cache
        @functools.wraps(view)
        def wrapped(request, **kwargs):
            ip = client_ip(request)
            try:
                if request.method not in methods:
                    raise AppRefusal(405, "method_not_allowed", _("This call takes %(methods)s.")
                                     % {"methods": " or ".join(methods)})
                raw, body = _read(request)
                device = services.authenticate(request, raw, ip=ip, pending=pending) if signed else None
                status, payload = view(request, device, body, ip, **kwargs) if signed else view(
                    request, raw, body, ip, **kwargs)
                response = _answer(status, payload)
            except AppRefusal as refusal:
                response = _answer(refusal.status, {"error": refusal.code, "message": str(refusal.message)})
                if refusal.retry_after:
                    response["Retry-After"] = str(refusal.retry_after)
            return response

        return wrapped

    return decorate


def _text(body: dict, name: str, *, required: bool = True, max_length: int = 500):
    value = body.get(name)
    if value is None and not required:
        return None
    if not isinstance(value, str) or len(value) > max_length:
        raise AppRefusal(400, "invalid_request", _("Give %(name)s as text.") % {"name": name})
    return value


# --- Public ------------------------------------------------------------------------------------


@endpoint("GET", signed=False)
def config(request, raw, body, ip):
    """What an app needs before pairing: the Web Push key and the choices it offers."""
    return 200, {
        "vapid_public_key": push.vapid_public_key(),
        "offline_periods": policy.get("app_offline_periods"),
        "offline_digits": policy.get("code_digits"),
        "poll_seconds": policy.get("app_poll_seconds"),
        "max_devices": policy.get("app_max_devices"),
        "device_name_max_length": policy.get("app_device_name_max_length"),
    }


@csrf_exempt
def not_found(request, rest=""):
    return _answer(404, {"error": "not_found", "message": _("There is no such call. See openapi.json.")})


def openapi(request):
    response = HttpResponse(OPENAPI.read_bytes(), content_type="application/json")
    response["Access-Control-Allow-Origin"] = "*"
    return response


# --- Pairing ---------------------------------------------------------------------------------------


@endpoint("POST", signed=False)
def pair(request, raw, body, ip):
    """Register a device with a pairing code; the call is signed by the new key itself."""
    jwk = body.get("public_key")
    call = services.signed_call_headers(request.META)
    if call is not None and call.device_id != "-":
        raise AppRefusal(400, "invalid_request", _("A new device signs with Chave-Device: -."))
    services.check_signature(request, raw, jwk if isinstance(jwk, dict) else {}, call, ip=ip)
    registered = services.register_device(
        pairing_code=_text(body, "pairing_code", max_length=40), jwk=jwk, name=body.get("name"),
        push=body.get("push_subscription"), language=body.get("language"), ip=ip)
    return 201, {**_device(registered.device), "confirmation_sent_to": registered.sent_to,
                 "confirmation_sent": registered.code_sent}


def _device(device) -> dict:
    return {
        "id": str(device.pk), "name": device.name, "status": device.status,
        "holder": device.key.citizen.given_name,
        "offline_period": device.offline_period, "push": bool(device.push_endpoint),
        "paired_at": device.activated_at.isoformat() if device.activated_at else None,
    }


CONFIRM_REFUSALS = {
    **CODE_REFUSALS,  # the login's words for a code: wrong, spent, expired, used, invalidated
    "malformed": lambda r: _("The code has %(n)d digits.") % {"n": policy.get("code_digits")},
    "too_many": lambda r: _("Your key already has the most devices allowed. Remove one first."),
    "key_unusable": lambda r: _("Your key cannot be used now."),
}


@endpoint("POST", pending=True)
def confirm(request, device, body, ip):
    if device.status != "pending":
        raise AppRefusal(409, "not_pending", _("This device is paired already."))
    confirmed = services.confirm_device(device, _text(body, "code", max_length=20), ip=ip)
    if not confirmed.ok:
        words = CONFIRM_REFUSALS.get(confirmed.reason, lambda r: _("Ask for a new code."))(confirmed)
        raise AppRefusal(403 if confirmed.reason in ("too_many", "key_unusable") else 400, confirmed.reason, words)
    device.refresh_from_db()
    return 200, {**_device(device), "offline": {
        "secret": confirmed.secret, "algorithm": "SHA256", "digits": policy.get("code_digits"),
        "period": device.offline_period}}


@endpoint("POST", pending=True)
def resend(request, device, body, ip):
    issue = services.send_confirmation(device, ip=ip)
    if not issue.sent:
        refusal = AppRefusal(429 if issue.reason in ("cooldown", "rate_limited") else 409, issue.reason,
                             _("You cannot ask for a new code now. Please try again later."))
        if issue.retry_at:
            refusal.retry_after = max(1, int((issue.retry_at - clock.now()).total_seconds()))
        raise refusal
    return 200, {"confirmation_sent": True}


# --- The device ----------------------------------------------------------------------------------


@endpoint("GET")
def device_info(request, device, body, ip):
    return 200, _device(device)


@endpoint("POST")
def settings_(request, device, body, ip):
    """Change the device's name, offline-code lifetime, push subscription or language."""
    unknown = set(body) - {"name", "offline_period", "push_subscription", "language"}
    if unknown:
        raise AppRefusal(400, "invalid_request", _("Unknown setting: %(name)s.") % {"name": sorted(unknown)[0]})
    if "name" in body:
        services.rename_device(device, body["name"], by="app", ip=ip)
    if "offline_period" in body:
        services.set_offline_period(device, body["offline_period"], ip=ip)
    if "push_subscription" in body:
        services.set_push_subscription(device, body["push_subscription"], ip=ip)
    if "language" in body:
        services.set_language(device, body["language"])
    device.refresh_from_db()
    return 200, _device(device)


@endpoint("POST")
def unpair(request, device, body, ip):
    services.remove_device(device, by="app", ip=ip, channel=services.CHANNEL)
    return 204, None


@endpoint("GET")
def inbox(request, device, body, ip):
    return 200, {**services.inbox(device), "poll_seconds": policy.get("app_poll_seconds")}


@endpoint("POST")
def dismiss(request, device, body, ip, item_id):
    if not services.dismiss(device, item_id):
        raise AppRefusal(404, "not_found", _("This code is no longer here."))
    return 204, None


# --- Sign-ins ------------------------------------------------------------------------------------


@endpoint("POST")
def approval(request, device, body, ip, request_id):
    answer = services.answer_approval(device, str(request_id), answer=body.get("answer"), number=body.get("number"),
                                      ip=ip)
    return 200, {"result": answer.result}


@endpoint("POST")
def qr_scan(request, device, body, ip):
    found = services.scan_qr(device, _text(body, "code", max_length=300), ip=ip)
    return 200, {"id": str(found.pk), "portal": found.portal or "Chave", "created_at": found.created_at.isoformat(),
                 "pin_until": (found.scanned_at + services.dt.timedelta(seconds=policy.get("app_qr_pin_seconds")))
                 .isoformat()}


PIN_WORDS = {
    "throttled": lambda: _("Too many attempts from this connection. Please try again later."),
    "temporary_pin": lambda: _("Your PIN is temporary: sign in once with your number and PIN to choose your own."),
}


@endpoint("POST")
def qr_approve(request, device, body, ip, request_id):
    decision = services.approve_qr(device, str(request_id), body.get("pin"), ip=ip)
    if not decision.ok:
        # One answer for a wrong PIN and a locked or blocked key, as at the login page.
        words = PIN_WORDS.get(decision.reason, lambda: _(
            "The PIN is not correct. After several wrong PINs the key is locked for a while, and its owner is "
            "told by SMS or e-mail."))()
        raise AppRefusal(429 if decision.reason == "throttled" else 403,
                         decision.reason if decision.reason in PIN_WORDS else "wrong_pin", words)
    return 200, {"result": "approved"}


@endpoint("POST")
def qr_decline(request, device, body, ip, request_id):
    services.decline_qr(device, str(request_id), ip=ip)
    return 200, {"result": "declined"}
