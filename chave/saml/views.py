"""SAML 2.0 endpoints: signed metadata, single sign-on (HTTP-POST and HTTP-Redirect), consent.

The SSO endpoint checks the request (:func:`chave.saml.services.receive`) without the session
(a portal's cross-site POST carries no ``SameSite=Lax`` cookie), keeps it under a one-use
reference and sends the browser on to ``/saml/continue/<reference>``, a top-level GET that does
carry Chave's session. From there on the flow is the federation's: sign in at the level the
request needs (SSO when the session already has it), consent on the shared consent page, then a
signed Response posted to the SP's ACS (the citizen presses the page's one button: no script runs
on Chave's pages).
"""

from __future__ import annotations

import datetime as dt
from urllib.parse import urlsplit

from django.conf import settings
from django.db import transaction
from django.http import HttpResponse
from django.shortcuts import redirect, render
from django.utils.translation import gettext as _
from django.views.decorators.cache import never_cache
from django.views.decorators.csrf import csrf_exempt
from saml2 import BINDING_HTTP_POST, BINDING_HTTP_REDIRECT, samlp

from chave import clock, policy
from chave.federation import attributes
from chave.federation import services as federation
from chave.identity.models import Key
from chave.login import services as login_services

from . import idp, services
from .models import ServiceProvider

PENDING = "chave.saml.pending"
# AuthTabPresentationPolicies' tabs as Chave's sign-in methods (chave.login.services.LOGIN_METHODS).
TABS = {"CMD": "pin", "QRCODE": "app", "CC": "card"}


def metadata(request):
    """The IdP's signed metadata (what a portal registers in place of autenticacao.gov's)."""
    response = HttpResponse(idp.metadata(), content_type="application/samlmetadata+xml")
    response["Cache-Control"] = f"public, max-age={policy.get('oidc_jwks_max_age_seconds')}"
    return response


def _error_page(request, message, status=400):
    return render(request, "saml/error.html", {"message": message}, status=status)


def _post_to_acs(request, sp: ServiceProvider, acs: str, saml_response: str, relay_state: str | None,
                 succeeded: bool):
    """The HTTP-POST binding: a page whose one button posts the response to the ACS."""
    fields = [("SAMLResponse", saml_response)]
    if relay_state is not None:
        fields.append(("RelayState", relay_state))
    return _post_fields(request, sp, acs, fields, succeeded)


def _post_fields(request, sp: ServiceProvider, acs: str, fields: list, succeeded: bool):
    parts = urlsplit(acs)
    page = render(request, "oidc/form_post.html", {
        "action": acs, "fields": fields, "host": parts.hostname, "portal": sp.relying_party.name,
        "succeeded": succeeded})
    page["Cache-Control"] = "no-store"
    if settings.CHAVE_CONTENT_SECURITY_POLICY:
        page["Content-Security-Policy"] = f"{settings.CHAVE_CONTENT_SECURITY_POLICY}; form-action {acs}"
    return page


def _answer_error(request, sp, parsed, top, sub, message, *, outcome="refused", citizen=None):
    federation_audit(sp, outcome, citizen=citizen, reason=message)
    return _post_to_acs(request, sp, parsed.acs, services.error_response(sp, parsed, top, sub, message),
                        parsed.relay_state, succeeded=False)


def federation_audit(sp, outcome, citizen=None, **details):
    from chave.audit import services as audit

    audit.record("saml.authn", outcome=outcome, citizen=citizen, client_id=sp.relying_party.client_id, **details)


@csrf_exempt  # portals POST here cross-site (HTTP-POST binding); the request is signed, nothing acts on a session
@never_cache
def sso(request):
    """The single sign-on service for both bindings. A request that cannot be tied to an approved
    SP and a registered ACS gets a 400 page; once they are known, errors are signed SAML statuses
    posted to the ACS."""
    if request.method == "POST":
        binding, source = BINDING_HTTP_POST, request.POST
    elif request.method == "GET":
        binding, source = BINDING_HTTP_REDIRECT, request.GET
    else:
        return _error_page(request, _("Use GET or POST."), status=405)
    if any(len(source.getlist(name)) > 1 for name in source):
        return _error_page(request, _("A parameter is repeated."))
    try:
        sp, parsed = services.receive(binding=binding, raw=source.get("SAMLRequest"),
                                      relay_state=source.get("RelayState"), sig_alg=source.get("SigAlg"),
                                      signature=source.get("Signature"))
        reference = services.remember(sp, parsed)
    except services.Refusal as refusal:
        return _error_page(request, refusal.message)
    except services.Answer as answer:
        return _answer_error(request, answer.sp, answer.parsed, answer.top, answer.sub, answer.message)
    return redirect("saml:continue", reference=reference)


def _usable_key(who):
    if who is None:
        return None
    key = Key.with_citizen(who.key_id)
    if key is None or key.effective_status(clock.now()) not in login_services.USABLE_KEY_STATUSES:
        return None
    return key


def _pending_request(request):
    pending = request.session.get(PENDING)
    if not pending:
        return None, None, None
    sp = services.approved_provider(pending["sp"]) if isinstance(pending["sp"], int) else None
    if sp is None:
        request.session.pop(PENDING, None)
        return None, None, None
    return pending, sp, services.ParsedRequest(**pending["parsed"])


@never_cache
def continue_request(request, reference: str | None = None):
    """Where the browser brings a checked request (``reference``, once) and comes back to after
    signing in and consenting (no reference: the request kept in the session): decide, then answer.

    The reference's visit decides at once (to the login, the consent page or the answer) rather
    than redirecting to the reference-less address first: a round trip less on a phone's network,
    and the reference is already spent, so reloading either address answers with an error page."""
    if request.method != "GET":
        return _error_page(request, _("Use GET."), status=405)
    if reference is not None:
        taken = services.take(reference)
        if taken is None:
            return _error_page(request, _("This sign-in request was already used or has expired. Go back to the "
                                          "portal and sign in again."))
        sp, parsed = taken
        pending = request.session[PENDING] = {
            "sp": sp.pk, "parsed": parsed.__dict__, "client_id": sp.relying_party.client_id,
            "query": parsed.request_id, "requested_at": None}
        return _decide(request, pending, sp, parsed)
    pending, sp, parsed = _pending_request(request)
    if pending is None:
        return _error_page(request, _("There is no sign-in in progress."))
    return _decide(request, pending, sp, parsed)


def _decide(request, pending, sp, parsed):
    party = sp.relying_party
    who = login_services.signed_in(request)
    key = _usable_key(who)
    if key is None:
        who = None
    required = federation.required_level(party, parsed.levels)
    decision = federation.login_decision(party, who, required=required, fresh_login=parsed.force,
                                         pending=pending, request_key=parsed.request_id)
    if decision.needs_login:
        if parsed.passive:
            request.session.pop(PENDING, None)
            return _answer_error(request, sp, parsed, samlp.STATUS_RESPONDER, samlp.STATUS_NO_PASSIVE,
                                 "The citizen must sign in, and the request is passive.")
        request.session[PENDING] = {**pending, "requested_at": clock.now().isoformat()}
        login_services.request_login(request, portal=party.name, min_level=decision.required_level,
                                     return_to="/saml/continue", hide=[TABS[t] for t in parsed.hide],
                                     first=TABS.get(parsed.default_tab or "", ""), cancel_to="/saml/cancel")
        return redirect("login:start")
    asked, required_attributes = services.requested_attributes(sp, parsed, key.citizen)
    consent = federation.consent_state(key.citizen, party, asked)
    # A refused attribute that this request says it needs is asked about again.
    undecided = consent.undecided + [a for a in consent.withheld if a in required_attributes]
    if undecided and not decision.just_consented:
        if parsed.passive:
            request.session.pop(PENDING, None)
            return _answer_error(request, sp, parsed, samlp.STATUS_RESPONDER, samlp.STATUS_NO_PASSIVE,
                                 "The citizen must be asked for consent, and the request is passive.")
        request.session[PENDING] = {**pending, "consent": undecided, "required": required_attributes}
        return redirect("saml:consent")
    request.session.pop(PENDING, None)
    with transaction.atomic():  # the SSO session, the SP on it and the audit link (not the signing)
        sso = federation.sso_session(request, key, who)
        federation.served(sso, party)
        federation.record_authorization(party, key, who, request, protocol="saml")
    granted = federation.consent_state(key.citizen, party, asked).granted
    response = services.success_response(sp, parsed, key=key, level=who.assurance_level,
                                         auth_time=dt.datetime.fromisoformat(who.auth_time), granted=granted,
                                         address=login_services.client_ip(request),
                                         session_index=services.session_index(sso, sp))
    return _post_to_acs(request, sp, parsed.acs, response, parsed.relay_state, succeeded=True)


@never_cache
def consent(request):
    """The shared consent page for the SAML request in ``PENDING``: the attributes the SP asked for,
    those it needs (``isRequired``, or registered mandatory) fixed, the others refusable. "Do not
    sign in" answers ``RequestDenied``."""
    if request.method not in ("GET", "POST"):
        return _error_page(request, _("This page only accepts GET and POST."), status=405)
    pending, sp, parsed = _pending_request(request)
    who = login_services.signed_in(request)
    key = _usable_key(who)
    if pending is None or "consent" not in pending or key is None:
        return _error_page(request, _("There is no sign-in in progress."))
    party = sp.relying_party
    rows = attributes.consent_rows(key, pending["consent"], set(pending.get("required") or []))
    if request.method == "POST":
        decision = request.POST.get("decision")
        if decision == "refuse":
            request.session.pop(PENDING, None)
            federation.record_consent(key.citizen, party, granted=[], remember=False, protocol="saml",
                                      refused=[r["name"] for r in rows if not r["mandatory"]])
            return _answer_error(request, sp, parsed, samlp.STATUS_RESPONDER, samlp.STATUS_REQUEST_DENIED,
                                 "The citizen did not sign in to this portal.")
        if decision != "allow":
            return render(request, "oidc/consent.html", {"portal": party, "rows": rows}, status=400)
        chosen = set(request.POST.getlist("attribute"))
        granted = [r["name"] for r in rows if r["mandatory"] or r["name"] in chosen]
        refused = [r["name"] for r in rows if r["name"] not in granted]
        federation.record_consent(key.citizen, party, granted=granted, refused=refused, protocol="saml")
        pending = {**pending, "consented": True}
        pending.pop("consent")
        request.session[PENDING] = pending
        return redirect("saml:resume")
    return render(request, "oidc/consent.html", {"portal": party, "rows": rows})


@never_cache
def cancel(request):
    """"Cancel and go back to the portal" on a sign-in page (a CSRF-protected POST): the login of
    the request in ``PENDING`` ends and the SP gets a signed Response with the status the
    autenticacao.gov manual gives for a sign-in that was not done (``Responder`` /
    ``AuthnFailed``). Without such a request, a page says the sign-in has already ended."""
    if request.method != "POST":
        return render(request, "login/cancel_gone.html", status=405)
    if not login_services.may_cancel(request, request.POST.get("request")):
        return render(request, "login/cancel_gone.html", status=400)
    pending, sp, parsed = _pending_request(request)
    if pending is None:
        login_services.cancel_login(request)
        return render(request, "login/cancel_gone.html", status=400)
    request.session.pop(PENDING, None)
    citizen = login_services.cancel_login(request)
    return _answer_error(request, sp, parsed, samlp.STATUS_RESPONDER, samlp.STATUS_AUTHN_FAILED,
                         "The citizen cancelled the sign-in.", outcome="abandoned", citizen=citizen)


@csrf_exempt  # SPs send logout requests cross-site; the request is signed by the SP
@never_cache
def slo(request):
    """The single logout service (SP-initiated): a LogoutRequest signed by an approved SP ends
    Chave's session in this browser, which tells the session's other portals: by back-channel
    (OpenID Connect logout tokens; SAML LogoutRequests over SOAP, sent by the worker) and, for
    those without, by front-channel frames on the signed-out page. Then Chave answers with a signed
    LogoutResponse at the SP's logout service: a redirect (after the page, when it has frames) or
    the page's button posting it (HTTP-POST binding). A request by HTTP-POST is checked, kept
    (its ID once) and continued as a top-level GET (:func:`continue_logout`)."""
    if request.method == "POST":
        binding, source = BINDING_HTTP_POST, request.POST
    elif request.method == "GET":
        binding, source = BINDING_HTTP_REDIRECT, request.GET
    else:
        return _error_page(request, _("Use GET or POST."), status=405)
    if any(len(source.getlist(name)) > 1 for name in source):
        return _error_page(request, _("A parameter is repeated."))
    relay_state = source.get("RelayState")
    if source.get("SAMLResponse") and not source.get("SAMLRequest"):
        # An SP's answer to the LogoutRequest Chave's signed-out page sent it (in a frame): nothing to
        # do, and Chave's own page may show the answer in that frame.
        done = render(request, "oidc/logout_done.html", {"was_signed_in": False})
        done["X-Frame-Options"] = "SAMEORIGIN"
        if settings.CHAVE_CONTENT_SECURITY_POLICY:
            done["Content-Security-Policy"] = settings.CHAVE_CONTENT_SECURITY_POLICY.replace(
                "frame-ancestors 'none'", "frame-ancestors 'self'")
        return done
    try:
        sp, message = services.receive_logout(binding=binding, raw=source.get("SAMLRequest"), relay_state=relay_state,
                                              sig_alg=source.get("SigAlg"), signature=source.get("Signature"))
        if binding == BINDING_HTTP_POST:
            # A cross-site POST carries no SameSite=Lax session cookie: on to a top-level GET that does.
            reference = services.remember_logout(sp, message, relay_state)
    except services.Refusal as refusal:
        return _error_page(request, refusal.message)
    if binding == BINDING_HTTP_POST:
        response = redirect("saml:slo_continue", logout_reference=reference)
        response.status_code = 303
        return response
    return _log_out(request, sp, message, relay_state)


@never_cache
def continue_logout(request, logout_reference: str):
    """Where a LogoutRequest that came by HTTP-POST is carried (``logout_reference``, once) as a
    top-level GET, which brings Chave's session cookie: the logout goes on as :func:`slo`'s."""
    if request.method != "GET":
        return _error_page(request, _("Use GET."), status=405)
    taken = services.take_logout(logout_reference)
    if taken is None:
        return _error_page(request, _("This logout request was already used or has expired. Go back to the "
                                      "portal and sign out again."))
    return _log_out(request, *taken)


def _log_out(request, sp: ServiceProvider, message, relay_state: str | None):
    """End this browser's Chave session for the SP's checked LogoutRequest, tell the session's
    other portals, and answer the SP with a signed LogoutResponse."""
    from chave.oidc.logout import _finish, _signed_out_page, sign_out_of_portals

    request.session.pop(PENDING, None)
    was_signed_in = login_services.signed_in(request) is not None
    frames = sign_out_of_portals(request, initiator=sp.relying_party)
    federation_audit(sp, "logout")
    try:
        binding, address, payload = services.logout_response(sp, message, relay_state)
    except services.Refusal as refusal:
        return _error_page(request, refusal.message, status=200)
    if binding == BINDING_HTTP_REDIRECT:
        # The session's other portals are told first (front-channel frames on the signed-out page).
        return _finish(request, redirect_to=payload[0], was_signed_in=was_signed_in, asked_redirect=False,
                       frames=frames, portal=sp.relying_party.name)
    # HTTP-POST: the signed-out page loads the other portals' frames (the response is not one of
    # them) and its one button posts the signed LogoutResponse to the SP, at the top level.
    return _signed_out_page(request, was_signed_in=was_signed_in, not_returned=False, frames=frames,
                            portal=sp.relying_party.name, continue_form={"action": address, "fields": payload})
