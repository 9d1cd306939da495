"""The signing pages of the personal area (``/area/sign/``) and the validation page (``/validate/``).

Thin: parse → call a service → render or redirect; no JavaScript needed. Signing pages need a
signed-in session at assurance level 3 or more (:func:`signing_area`); the session keeps only the
batch id of the documents being signed, never a PIN or a code.
"""

from __future__ import annotations

import datetime as dt

import functools
import tempfile
from urllib.parse import urlencode

from django.conf import settings
from django.contrib import messages
from django.core.exceptions import ValidationError
from django.http import FileResponse, Http404, HttpResponse, JsonResponse
from django.shortcuts import redirect, render
from django.urls import reverse
from django.utils.translation import gettext as _
from django.utils.translation import gettext_lazy, ngettext
from django.views.decorators.cache import never_cache
from django.views.decorators.csrf import csrf_exempt
from django.views.decorators.http import require_http_methods, require_POST, require_safe

from chave import clock, formats, policy
from chave.codes.models import Purpose
from chave.codes.services import latest_code
from chave.audit import services as audit
from chave.identity.models import ContactKind, Key, mask
from chave.login import services as login
from chave.portal import services as area_services
from chave.throttle import services as throttle

from . import area, pades, services
from .api import ApiError, Throttled, copy_body, refusal
from .forms import CodeForm, NewSigningPinForm, PageViewForm, PlacementForm, SigningPinForm, UploadForm

SESSION_BATCH = "chave.signing.batch"
MIN_LEVEL = 3


def signing_area(view=None, *, recent: bool = False):
    """Views get ``(request, who, key)``; below level 3 the citizen signs in again (by SMS).
    ``recent``: a change to signing itself (activate, new signing PIN, deactivate) also needs a
    sign-in within ``area_reauth_seconds``, as the personal area's security changes do."""

    def decorate(view):
        @functools.wraps(view)
        @never_cache
        def wrapper(request, *args, **kwargs):
            who = login.signed_in(request)
            params = {"next": request.get_full_path()}
            if who is None or who.assurance_level < MIN_LEVEL:
                if who is not None:
                    messages.info(request, _("Signing needs a sign-in with a code by SMS (level 3 or more)."))
                    params["again"] = "1"
                return redirect(f"{reverse('portal:enter')}?{urlencode(params)}")
            if recent and not area_services.is_recent(who):
                messages.info(request, _("For your security, sign in again to do this."))
                params["again"] = "1"
                return redirect(f"{reverse('portal:enter')}?{urlencode(params)}")
            key = Key.objects.select_related("citizen").filter(pk=who.key_id).first()
            if key is None:
                raise Http404
            return view(request, who, key, *args, **kwargs)

        return wrapper

    return decorate(view) if view is not None else decorate


def _refusal_text(reason: str, attempts_left: int = 0) -> str:
    return {
        "wrong": ngettext("The signing PIN is wrong. You can try %(n)d more time.",
                          "The signing PIN is wrong. You can try %(n)d more times.", attempts_left) % {"n": attempts_left},
        "must_change": _("Signing is blocked after too many wrong signing PINs: choose a new signing PIN."),
        "not_active": _("Signing is not active."),
        "throttled": _("Too many attempts: try again later."),
        "wrong_code": ngettext("The security code is wrong. You can try %(n)d more time.",
                               "The security code is wrong. You can try %(n)d more times.", attempts_left) % {
                                   "n": attempts_left},
        "code_expired": _("The security code expired or was used: start again."),
        "code_not_sent": _("We could not send the security code now: try again later."),
        "too_many_hashes": _("Too many documents at once."),
    }.get(reason, _("Signing failed: start again."))


@signing_area
@require_safe
def home(request, who, key):
    credential = services.active_credential(key.citizen)
    return render(request, "signing/home.html", {
        "credential": credential, "renewed_on": services.renewed_on(credential), "upload_form": UploadForm(),
        "max_documents": policy.get("signing_area_max_documents"),
    })


def _new_pin_page(request, key, *, activating: bool, save, done: str):
    """Activation and a signing PIN change ask the same question: a new signing PIN, twice."""
    form = NewSigningPinForm(request.POST or None, birth_date=key.citizen.birth_date)
    if request.method == "POST" and form.is_valid():
        try:
            save(form.cleaned_data["new_pin"])
        except ValidationError as e:
            form.add_error("new_pin", e)
        else:
            messages.success(request, done)
            return redirect("signing:home")
    return render(request, "signing/pin.html", {"form": form, "activating": activating})


@signing_area(recent=True)
@require_http_methods(["GET", "POST"])
def activate(request, who, key):
    return _new_pin_page(request, key, activating=True, done=_("Signing is active: your signing certificate was issued."),
                         save=lambda pin: services.activate_signing(key, pin, by="citizen", ip=login.client_ip(request),
                                                                    channel="area"))


@signing_area(recent=True)
@require_http_methods(["GET", "POST"])
def change_pin(request, who, key):
    credential = services.active_credential(key.citizen)
    if credential is None:
        return redirect("signing:home")
    return _new_pin_page(request, key, activating=False, done=_("Your signing PIN was changed."),
                         save=lambda pin: services.change_signing_pin(credential, pin, ip=login.client_ip(request),
                                                                      channel="area"))


@signing_area(recent=True)
@require_POST
def deactivate(request, who, key):
    if services.deactivate_signing(key.citizen, by="citizen", ip=login.client_ip(request), channel="area"):
        messages.success(request, _("Signing is deactivated: your signing certificate was revoked."))
    return redirect("signing:home")


@signing_area
@require_POST
def upload(request, who, key):
    form = UploadForm(request.POST)
    files = request.FILES.getlist("documents")
    problem = ""
    if not form.is_valid():
        problem = _("Choose a signature level.")
    elif not files:
        problem = _("Choose one or more PDF files.")
    elif len(files) > policy.get("signing_area_max_documents"):
        problem = _("At most %(n)d documents at once.") % {"n": policy.get("signing_area_max_documents")}
    elif sum(f.size for f in files) > policy.get("signing_area_max_bytes"):
        problem = _("The files are too large.")
    if not problem:
        try:
            batch = area.upload(who.citizen_id, [(f.name, f.file) for f in files], form.cleaned_data["level"])
        except pades.PdfError as e:
            problem = _("%(name)s is not a PDF that can be signed (damaged or protected).") % {"name": str(e)}
    if problem:
        messages.error(request, problem)
        return redirect("signing:home")
    request.session[SESSION_BATCH] = batch.id
    return redirect("signing:place")


def _batch(request, who):
    return area.load(request.session.get(SESSION_BATCH), who.citizen_id)


def _action(data, count: int) -> tuple[str, int]:
    """Which button sent the place page, for which document: a click on its page image, a page to
    show (a thumbnail, the previous or next pages), "preview" (show the page and corner chosen in
    the lists), or else the signing step (Continue, or Enter in the signing PIN field)."""
    for index in range(count):
        for action, name in (("click", "at.x"), ("click", "at.y"), ("show", "show"), ("preview", "preview")):
            if f"d{index}-{name}" in data:
                return action, index
    return "sign", -1


def _document_view(index: int, document: area.Document, form, page: int) -> dict:
    """One document on the place page: the image of ``page`` to click on, the placement over it,
    and the thumbnails around ``page``, THUMBNAILS_PER_PAGE at a time."""
    per = area.THUMBNAILS_PER_PAGE
    first = (page - 1) // per * per + 1
    last = min(first + per - 1, document.pages)
    where = area.shown(document)
    width, height = area.view_size(document, page)
    return {"index": index, "document": document, "form": form, "shown": page, "width": width, "height": height,
            "where": where, "marker": where if where and where.page == page else None,
            "thumbnails": range(first, last + 1),
            "previous": (first - per, first - 1) if first > 1 else None,
            "next": (last + 1, min(last + per, document.pages)) if last < document.pages else None}


def _arrange(batch, placements, viewers, action: str, chosen: int, shown: list[int]) -> str:
    """Save what the lists say for every document, then what ``action`` did to document
    ``chosen``; ``shown`` (the page each document shows) follows. Returns a notice, or ""."""
    notice = ""
    for i, (form, viewer) in enumerate(zip(placements, viewers, strict=True)):
        area.arrange(batch, i, page=form.cleaned_data["page"], position=form.cleaned_data["position"])
        shown[i] = viewer.cleaned_data["shown"] or shown[i]
    clicked = viewers[chosen].clicked() if action == "click" else None
    if clicked:
        shown[chosen], fx, fy = clicked
        area.place_at(batch, chosen, page=shown[chosen], fx=fx, fy=fy)
    elif action == "click":
        notice = _("To place the signature with the keyboard, choose the page and a position in the lists.")
    elif action == "show":
        shown[chosen] = viewers[chosen].cleaned_data["show"] or shown[chosen]
    else:  # preview or the signing step: each document shows its chosen page
        shown[:] = [d.page or page for d, page in zip(batch.documents, shown, strict=True)]
    batch.save()
    return notice


@signing_area
@require_http_methods(["GET", "POST"])
def place(request, who, key):
    batch = _batch(request, who)
    credential = services.active_credential(key.citizen)
    if batch is None or credential is None:
        return redirect("signing:home")
    data = request.POST if request.method == "POST" else None
    documents = batch.documents
    placements = [PlacementForm(data, prefix=f"d{i}", document=d) for i, d in enumerate(documents)]
    viewers = [PageViewForm(data, prefix=f"d{i}", document=d) for i, d in enumerate(documents)]
    action, chosen = _action(data or {}, len(documents))
    # Clicks and page changes never submit the signing step: the PIN typed so far is not read.
    pin_form = SigningPinForm(data if action == "sign" else None)
    shown = [d.page or 1 for d in documents]
    error = notice = ""
    if data is not None and not all(f.is_valid() for f in placements + viewers):
        problems = [e for f in viewers for errors in f.errors.values() for e in errors]
        error = problems[0] if problems else _("Check the page and the position of each document.")
    elif data is not None:
        notice = _arrange(batch, placements, viewers, action, chosen, shown)
        placements = [PlacementForm(prefix=f"d{i}", document=d) for i, d in enumerate(documents)]
        if action == "sign" and pin_form.is_valid():
            try:
                started = area.prepare(batch, credential, pin=pin_form.cleaned_data["signing_pin"],
                                       ip=login.client_ip(request))
            except pades.PdfError:
                started = None
                error = _("A document could not be prepared for signing.")
            if started is not None and started.ok:
                return redirect("signing:code")
            if started is not None:
                error = _refusal_text(started.reason, started.pin.attempts_left if started.pin else 0)
    items = [_document_view(i, d, f, page)
             for i, (d, f, page) in enumerate(zip(documents, placements, shown, strict=True))]
    return render(request, "signing/place.html", {"documents": items, "pin_form": pin_form, "error": error,
                                                  "notice": notice, "batch": batch}, status=400 if error else 200)


@signing_area
@require_safe
def page_image(request, who, key, index: int, page: int, kind: str = "thumbnail"):
    batch = _batch(request, who)
    png = area.page_image(batch, index, page, kind) if batch else None
    if png is None:
        raise Http404
    return HttpResponse(png, content_type="image/png")


@signing_area
@require_http_methods(["GET", "POST"])
def code(request, who, key):
    batch = _batch(request, who)
    credential = services.active_credential(key.citizen)
    if batch is None or credential is None or not batch.process_id:
        return redirect("signing:home")
    form = CodeForm(request.POST or None)
    error = ""
    if request.method == "POST" and form.is_valid():
        result = area.sign(batch, credential, form.cleaned_data["code"], ip=login.client_ip(request))
        if result.ok:
            return redirect("signing:done")
        error = _refusal_text(result.reason, result.attempts_left)
    refused = bool(error) or (request.method == "POST" and bool(form.errors))
    from chave.app.services import signing_device

    device = signing_device(key)  # the code went to the Chave app on this device
    # Where the code went and how long it lasts, as the login's code page says it.
    pending = services.find_request(batch.process_id, via="area")
    sent = latest_code(Purpose.SIGNING, pending.code_transaction) if pending and pending.code_transaction else None
    kind = {"sms": ContactKind.MOBILE, "email": ContactKind.EMAIL, "x": ContactKind.X}.get(sent.channel) if sent else None
    return render(request, "signing/code.html", {
        "form": form, "batch": batch, "error": error, "app_device": device.name if device else "",
        "sent": sent, "masked": mask(kind, sent.destination) if kind else "",
        "lifetime": formats.duration(policy.code_lifetime("signing")),
        "expired": bool(sent and sent.expires_at <= clock.now()),
    }, status=400 if refused else 200)


@signing_area
@require_POST
def resend(request, who, key):
    batch = _batch(request, who)
    pending = services.find_request(batch.process_id, via="area") if batch else None
    if pending is None or pending.credential.citizen_id != who.citizen_id:
        return redirect("signing:home")
    issue = services.resend_code(pending, ip=login.client_ip(request))
    if issue.sent:
        messages.success(request, _("We sent you a new security code."))
    else:
        messages.error(request, _("A new code cannot be sent now: wait a little and try again."))
    return redirect("signing:code")


@signing_area
@require_safe
def done(request, who, key):
    batch = _batch(request, who)
    if batch is None or not all(d.signed for d in batch.documents):
        return redirect("signing:home")
    return render(request, "signing/done.html", {"batch": batch, "documents": list(enumerate(batch.documents))})


@signing_area
@require_safe
def download(request, who, key, index: int):
    batch = _batch(request, who)
    if batch is None or not (0 <= index < len(batch.documents)) or not batch.documents[index].signed:
        raise Http404
    name = batch.documents[index].name.rsplit(".", 1)[0] + "-signed.pdf"
    # Streamed from the file in chunks: a large signed PDF is not loaded whole.
    response = FileResponse(open(batch.path(index, "signed"), "rb"), content_type="application/pdf")
    response["Content-Disposition"] = f'attachment; filename="{name.replace(chr(34), "")}"'
    return response


# --- Validation ------------------------------------------------------------------------------


def _validation_gate(ip) -> throttle.ThrottleDecision:
    """Validation is open to anyone and takes large files: ``signing_validate_per_ip`` documents
    per client IP, counted before the upload is read."""
    return throttle.hit(("signing_validate_per_ip", ip or ""))


def _validate(content, ip):
    result = pades.report(content)
    audit.record("signing.validate", outcome="ok", ip=ip, signatures=len(result.signatures))
    return result


COVERAGE = {
    "entire_file": gettext_lazy("The whole document."),
    "entire_revision": gettext_lazy("The document as it was when signed; what was added later is listed below."),
}
CHANGES = {
    "none": gettext_lazy("No changes."),
    "lta_updates": gettext_lazy("Only data for checking the signature in the long term (this does not change the "
                                "content)."),
    "form_filling": gettext_lazy("Form fields were filled in."),
    "annotations": gettext_lazy("Comments or annotations were added."),
}
CERTIFICATE_STATUS = {
    "good": gettext_lazy("Valid, not revoked, issued by the Chave signing authority."),
    "revoked": gettext_lazy("Revoked."),
}
LEVELS = {
    "B-B": gettext_lazy("Basic signature, without a time-stamp (PAdES B-B)."),
    "B-T": gettext_lazy("Signature with a time-stamp (PAdES B-T)."),
    "B-LT": gettext_lazy("With a time-stamp and the data to check it in the long term (PAdES B-LT)."),
    "B-LTA": gettext_lazy("With an archive time-stamp, for checking for many years (PAdES B-LTA)."),
}


def _when(iso: str) -> dt.datetime | None:
    try:
        return dt.datetime.fromisoformat(iso) if iso else None
    except ValueError:
        return None


def explain(signature: pades.SignatureReport) -> dict:
    """One signature of the report in words: a verdict first (``good``: whether it can be relied
    on), then each detail said as a sentence, never a library value."""
    name = signature.signer_name or signature.signer or _("an unknown signer")
    signed_at = _when(signature.signing_time)
    stamped_at = _when(signature.timestamp)
    when = {"date": formats.day(signed_at), "time": formats.clock_time(signed_at)} if signed_at else None
    good = signature.intact and signature.valid and signature.trusted and signature.changes in ("none", "lta_updates")
    if not signature.intact:
        verdict = _("The document was changed after it was signed: this signature is not valid.")
    elif signature.certificate_status == "revoked":
        verdict = _("Not valid: the signer's certificate was revoked.")
    elif not signature.trusted:
        verdict = _("The document was not changed since it was signed, but the signature is not from a certificate "
                    "Chave can confirm, so it cannot be relied on here.")
    elif not good:
        verdict = _("Valid signature by %(name)s, but the document was changed after it was signed.") % {"name": name}
    elif when:
        verdict = _("Valid signature by %(name)s, signed on %(date)s at %(time)s. The document was not changed "
                    "since.") % {"name": name, **when}
    else:
        verdict = _("Valid signature by %(name)s. The document was not changed since.") % {"name": name}
    return {
        "good": good, "verdict": verdict, "name": name,
        "signed_at": formats.moment(signed_at) if signed_at else _("Not stated."),
        "timestamp": (_("Confirmed by a time-stamp of %(moment)s.") % {"moment": formats.moment(stamped_at)}
                      if stamped_at and signature.timestamp_valid else
                      _("A time-stamp that could not be confirmed.") if stamped_at else _("No time-stamp.")),
        "certificate": CERTIFICATE_STATUS.get(signature.certificate_status, _("Could not be checked.")),
        "coverage": COVERAGE.get(signature.coverage, _("Unclear: part of the document may not be covered.")),
        "changes": CHANGES.get(signature.changes, _("Other changes to the content.")),
        "level": LEVELS.get(signature.level, _("Not known.")),
        "report": signature,
    }


@require_http_methods(["GET", "POST"])
def validate_page(request):
    report, error, status = None, "", 400
    if request.method == "POST":
        ip = login.client_ip(request)
        upload_ = request.FILES.get("document") if _validation_gate(ip).allowed else False
        if upload_ is False:
            error, status = _("Too many documents were checked from this address: try again in a few minutes."), 429
        elif upload_ is None:
            error = _("Choose a signed PDF file.")
        elif upload_.size > policy.get("signing_area_max_bytes"):
            error = _("The file is too large.")
        else:
            try:
                report = _validate(upload_, ip)
            except pades.PdfError:
                error = _("This file is not a PDF that can be read.")
    signatures = [explain(s) for s in report.signatures] if report else []
    return render(request, "signing/validate.html", {"report": report, "signatures": signatures, "error": error},
                  status=status if error else 200)


@csrf_exempt
@require_POST
def validate_api(request):
    """The validation report as JSON for a PDF sent as the body (``application/pdf``), up to
    ``signing_validate_max_bytes``: streamed to a temporary file (spilling to disk past Django's
    in-memory upload size), never held whole in memory; a too large body is refused by its
    ``Content-Length`` before it is read, or as soon as it streams past the limit."""
    ip = login.client_ip(request)
    try:
        gate = _validation_gate(ip)
        if not gate.allowed:
            raise Throttled(gate, "Too many documents were checked from this address: try again later.")
        if request.content_type != "application/pdf":
            raise ApiError(415, "invalid_request", "Send the PDF as application/pdf.")
        with tempfile.SpooledTemporaryFile(max_size=settings.FILE_UPLOAD_MAX_MEMORY_SIZE,
                                           dir=settings.FILE_UPLOAD_TEMP_DIR) as pdf:
            limit = policy.get("signing_validate_max_bytes")
            if not copy_body(request, pdf, limit, too_large="The file is too large."):
                raise ApiError(400, "invalid_request", "The body is empty: send the PDF.")
            pdf.seek(0)
            try:
                result = _validate(pdf, ip)
            except pades.PdfError:
                raise ApiError(400, "invalid_request", "Not a readable PDF.") from None
    except ApiError as e:
        return refusal(e)
    return JsonResponse({"signatures": [s.__dict__ for s in result.signatures],
                         "document_timestamps": result.document_timestamps})
