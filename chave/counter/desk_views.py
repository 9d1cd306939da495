"""Desk pages that involve the citizen screen: registering a citizen, pairing
the screen; and the citizen screen itself (a device, not a staff session).

The clerk's pages refresh themselves (no JavaScript) while a turn is open on the citizen screen,
and show only whether it is done; the screen shows the citizen what to type.
"""

from __future__ import annotations

from django.conf import settings
from django.contrib import messages
from django.core.exceptions import ValidationError
from django.shortcuts import get_object_or_404, redirect, render
from django.urls import reverse
from django.utils.translation import gettext as _
from django.views.decorators.cache import never_cache
from django.views.decorators.http import require_http_methods, require_POST, require_safe

from chave import policy
from chave.identity import services as identity
from chave.identity.models import ContactKind, DocType, mask
from chave.identity.registry import DocumentRef, IdentityRecord
from chave.login.services import client_ip

from . import registration as registrations
from . import screen as screens
from .forms import RegisterForm, ScreenCodeForm, ScreenPinForm, ScreenSigningPinForm
from .models import CounterRegistration, TurnKind
from .views import _open_turn, staff_only

SCREEN_COOKIE = "chave_counter_screen"


# --- The desk --------------------------------------------------------------------------------


@staff_only("citizen.act")
@require_http_methods(["GET", "POST"])
def pair_screen(request):
    """POST: a new one-time pairing link for this desk's citizen screen. GET: the desk's screen."""
    link = None
    if request.method == "POST":
        pairing = screens.start_pairing(request.staff)
        link = request.build_absolute_uri(reverse("counter:screen_pair", args=[pairing.token]))
    return render(request, "counter/pair.html", {"staff": request.staff, "link": link,
                                                 "screen": screens.desk_screen(request.staff)})


def _registration_form_data(form) -> dict:
    d = form.cleaned_data
    contacts = [identity.ContactInput(kind, d[field]) for kind, field in
                ((ContactKind.MOBILE, "mobile"), (ContactKind.EMAIL, "email")) if d.get(field)]
    if d["nationality"] == "foreign":
        doc = DocumentRef(d["doc_type"], d["doc_country"], d["doc_number"])
        record = IdentityRecord(doc=doc, full_name=d["full_name"], given_name=d["given_name"],
                                family_name=d["family_name"], birth_date=d["birth_date"],
                                document_expiry=d["document_expiry"], nif=d["nif"])
    else:
        doc, record = DocumentRef(DocType.CITIZEN_CARD, "PT", d["nic"]), None
    return {"doc": doc, "record": record, "contacts_given": contacts, "pin_by": d["pin_by"],
            "address": d["address"], "reason": d["reason"], "terms_accepted": d["terms"]}


@staff_only("citizen.act")
@require_http_methods(["GET", "POST"])
def register(request):
    form = RegisterForm(request.POST if request.method == "POST" else None)
    if request.method == "POST" and form.is_valid():
        try:
            done = registrations.start(request.staff, **_registration_form_data(form), ip=client_ip(request))
        except ValidationError as error:
            form.add_error(None, error)
        else:
            return redirect("counter:registration", pk=done.pk)
    status = 400 if request.method == "POST" else 200
    return render(request, "counter/register.html", {"staff": request.staff, "form": form}, status=status)


@staff_only("citizen.act")
@require_safe
def registration(request, pk: int):
    found = get_object_or_404(CounterRegistration.objects.select_related("key__citizen", "action"), pk=pk)
    key = found.key
    return render(request, "counter/registration.html", {
        "staff": request.staff, "registration": found, "citizen": key.citizen,
        "contacts": list(key.contacts.all()), "missing": registrations.missing(found),
        "turn": _open_turn(request.staff, key), "screen": screens.desk_screen(request.staff),
    })


@staff_only("citizen.act")
@require_POST
def registration_step(request, pk: int):
    found = get_object_or_404(CounterRegistration, pk=pk)
    step, ip = request.POST.get("step", ""), client_ip(request)
    try:
        if step in (ContactKind.MOBILE, ContactKind.EMAIL):
            registrations.send_code(request.staff, found, step, ip=ip)
        elif step == "pin":
            registrations.ask_pin(request.staff, found)
        elif step == "complete":
            registrations.complete(request.staff, found, ip=ip)
            messages.success(request, _("The key is active."))
            return redirect("counter:citizen", pk=found.key.citizen_id)
    except ValidationError as error:
        messages.error(request, " ".join(error.messages))
    return redirect("counter:registration", pk=pk)


# --- The citizen screen (a paired device, not a staff session) ---------------------------------


@never_cache
@require_http_methods(["GET", "POST"])
def screen_pair(request, token: str):
    """The one-time pairing link, opened on the device that faces the citizen. GET asks to
    confirm (so that a link preview cannot use it up); POST pairs and sets the device cookie."""
    if request.method == "GET":
        return render(request, "counter/screen_pair.html", {})
    paired = screens.pair(token, ip=client_ip(request))
    if paired is None:
        return render(request, "counter/screen_pair.html", {"invalid": True}, status=400)
    response = redirect("counter:screen")
    response.set_cookie(SCREEN_COOKIE, paired[1], httponly=True, samesite="Strict", secure=settings.SECURE_COOKIES,
                        path=reverse("counter:screen"))
    return response


@never_cache
@require_http_methods(["GET", "POST"])
def screen(request):
    device = screens.screen_of(request.COOKIES.get(SCREEN_COOKIE, ""))
    if device is None:
        return render(request, "counter/screen.html", {"unpaired": True}, status=403)
    turn = screens.current_turn(device)
    if turn is None:
        return render(request, "counter/screen.html", {"idle": True})
    form_class = {TurnKind.CODE: ScreenCodeForm, TurnKind.SIGNING: ScreenSigningPinForm}.get(turn.kind, ScreenPinForm)
    form = form_class(request.POST if request.method == "POST" and str(turn.pk) == request.POST.get("turn") else None)
    status = 200
    if form.is_bound:
        status = 400
        if form.is_valid():
            ip = client_ip(request)
            try:
                if turn.kind == TurnKind.CODE:
                    result = screens.submit_code(turn, form.cleaned_data["code"], ip=ip)
                    if not result.ok:
                        raise ValidationError(_code_refusal(result.reason))
                elif turn.kind == TurnKind.SIGNING:
                    screens.submit_signing_pin(turn, form.cleaned_data["pin"], form.cleaned_data["pin_again"], ip=ip)
                else:
                    screens.submit_pin(turn, form.cleaned_data["pin"], form.cleaned_data["pin_again"], ip=ip)
            except ValidationError as error:
                form.add_error(None, error)
            else:
                return render(request, "counter/screen.html", {"thanks": True})
    return render(request, "counter/screen.html", {
        "turn": turn, "form": form, "citizen": turn.key.citizen,
        "destination": mask(turn.contact_kind, turn.contact_value) if turn.contact_kind else "",
        "pin_min": policy.get("pin_min_length"), "pin_max": policy.get("pin_max_length"),
    }, status=status)


def _code_refusal(reason: str) -> str:
    if reason == "wrong":
        return _("This code is not right. Check the last message you received and type it again.")
    return _("This code can no longer be used. Ask at the desk for a new one.")
