"""OpenID Connect endpoints: discovery, JWKS, authorize (+ consent), token, userinfo.

The authorize endpoint decides, in order: is the request valid (Authlib; errors go back to the
portal once its redirect URI is known, else an error page); does the citizen need to sign in
(no session, a level below what the portal needs, ``prompt=login``, ``max_age`` exceeded —
``prompt=none`` turns that into ``login_required``); does the citizen need to be asked about
attributes (``consent_required`` under ``prompt=none``); then it issues the code.
"""

from __future__ import annotations

import datetime as dt
import json
import secrets

from authlib.oauth2 import OAuth2Error
from authlib.oauth2.rfc6749 import InvalidRequestError, InvalidScopeError
from authlib.oidc.core.errors import ConsentRequiredError, LoginRequiredError
from django.http import HttpResponseNotAllowed, JsonResponse
from django.shortcuts import redirect, render
from django.utils.translation import gettext as _
from django.views.decorators.cache import never_cache
from django.views.decorators.csrf import csrf_exempt
from django.views.decorators.http import require_http_methods

from chave import clock
from chave.identity.models import Key, KeyStatus
from chave.login import services as login_services

from . import claims as claims_module
from . import keys, services
from .models import Consent, RelyingParty, Token, token_hash
from .server import issuer, server

PENDING = "chave.oidc.pending"


def _json(data, status=200):
    response = JsonResponse(data, status=status)
    response["Cache-Control"] = "no-store"
    return response


def discovery(request):
    base = issuer()
    return JsonResponse({
        "issuer": base,
        "authorization_endpoint": base + "/oidc/authorize",
        "token_endpoint": base + "/oidc/token",
        "userinfo_endpoint": base + "/oidc/userinfo",
        "jwks_uri": base + "/oidc/jwks",
        "end_session_endpoint": base + "/oidc/logout",
        "response_types_supported": ["code"],
        "response_modes_supported": ["query"],
        "grant_types_supported": ["authorization_code", "refresh_token"],
        "subject_types_supported": ["pairwise", "public"],
        "id_token_signing_alg_values_supported": ["RS256", "ES256"],
        "token_endpoint_auth_methods_supported": ["private_key_jwt", "client_secret_basic"],
        "token_endpoint_auth_signing_alg_values_supported": ["RS256", "PS256", "ES256"],
        "code_challenge_methods_supported": ["S256"],
        "scopes_supported": list(claims_module.SCOPES),
        "claims_supported": ["sub", "iss", "aud", "exp", "iat", "auth_time", "nonce", "acr", "amr", "sid",
                             *[a.claim for a in claims_module.ATTRIBUTES.values()],
                             claims_module.ATTRIBUTE_STATUS_CLAIM],
        "claims_parameter_supported": True,
        "request_parameter_supported": False,
        "request_uri_parameter_supported": False,
        "acr_values_supported": list(claims_module.ACR_URIS.values()),
        "prompt_values_supported": ["none", "login", "consent"],
        "backchannel_logout_supported": True,
        "backchannel_logout_session_supported": True,
        "frontchannel_logout_supported": False,
        "ui_locales_supported": ["pt-PT", "en"],
        "service_documentation": base + "/faq/",
    })


def jwks(request):
    response = JsonResponse(keys.jwks())
    response["Cache-Control"] = "public, max-age=300"
    return response


def _error(request, error: OAuth2Error):
    """Back to the portal when its redirect URI was validated; otherwise a page for the citizen."""
    if getattr(error, "redirect_uri", None):
        return server().handle_error_response(request, error)
    return render(request, "oidc/error.html", {"error": error.error, "description": error.get_error_description()},
                  status=400)


def _parse_claims_parameter(raw):
    if not raw:
        return None
    try:
        value = json.loads(raw)
    except ValueError:
        value = None
    if not isinstance(value, dict) or not all(isinstance(value.get(s, {}), dict) for s in ("id_token", "userinfo")):
        raise InvalidRequestError("The 'claims' parameter must be a JSON object.")
    return value


@never_cache
@require_http_methods(["GET", "POST"])
def authorize(request):
    srv = server()
    who = login_services.signed_in(request)
    key = None
    if who is not None:
        key = Key.objects.select_related("citizen").filter(pk=who.key_id).first()
        if key is None or key.effective_status(clock.now()) not in (KeyStatus.ACTIVE, KeyStatus.LOCKED):
            key, who = None, None
    try:
        grant = srv.get_consent_grant(request, end_user=key)
        data = grant.request.payload.data
        relying_party: RelyingParty = grant.client
        bad_scopes = claims_module.unknown_or_forbidden_scopes(relying_party, data.get("scope"))
        if bad_scopes:
            raise InvalidScopeError(f"Scopes not allowed for this portal: {' '.join(bad_scopes)}",
                                    redirect_uri=grant.redirect_uri)
        try:
            claims_request = _parse_claims_parameter(data.get("claims"))
            decision = services.login_decision(relying_party, who, data, pending=request.session.get(PENDING))
        except InvalidRequestError as exc:
            exc.redirect_uri = grant.redirect_uri
            raise
        prompts = set((data.get("prompt") or "").split())
        if decision.needs_login:
            if "none" in prompts:
                raise LoginRequiredError(redirect_uri=grant.redirect_uri)
            query = request.GET.urlencode() if request.method == "GET" else request.POST.urlencode()
            request.session[PENDING] = {
                "id": secrets.token_urlsafe(12),
                "query": query,
                "client_id": relying_party.client_id,
                "portal": relying_party.name,
                "min_level": decision.required_level,
                "requested_at": clock.now().isoformat(),
            }
            login_services.request_login(request, portal=relying_party.name, min_level=decision.required_level,
                                         return_to="/oidc/authorize?" + query)
            return redirect("login:start")
        requested = claims_module.requested_attributes(relying_party, data.get("scope"), claims_request)
        consent = services.consent_state(key.citizen, relying_party, requested)
        if consent.undecided or "consent" in prompts and not decision.just_consented:
            if "none" in prompts:
                raise ConsentRequiredError(redirect_uri=grant.redirect_uri)
            request.session[PENDING] = {
                "id": secrets.token_urlsafe(12),
                "query": request.GET.urlencode() if request.method == "GET" else request.POST.urlencode(),
                "client_id": relying_party.client_id,
                "portal": relying_party.name,
                "min_level": decision.required_level,
                "requested_at": (request.session.get(PENDING) or {}).get("requested_at") or clock.now().isoformat(),
                "consent": requested,
                "redirect_uri": grant.redirect_uri,
                "state": data.get("state"),
            }
            return redirect("oidc:consent")
        request.session.pop(PENDING, None)
        sso = services.sso_session(request, key, who)
        sso.relying_parties.add(relying_party)
        grant.request.chave = {
            "sso_session": sso,
            "attributes": consent.granted,
            "withheld": consent.withheld,
            "claims_request": claims_request,
            "acr": claims_module.ACR_URIS[who.assurance_level],
            "amr": claims_module.AMR.get(who.method, ["pin", "mfa"]),
            "auth_time": dt.datetime.fromisoformat(who.auth_time),
        }
        services.record_authorization(relying_party, key, who, request)
        return srv.create_authorization_response(request, grant_user=key, grant=grant)
    except OAuth2Error as error:
        return _error(request, error)


@never_cache
@require_http_methods(["GET", "POST"])
def consent(request):
    pending = request.session.get(PENDING)
    who = login_services.signed_in(request)
    if not pending or "consent" not in pending or who is None:
        return render(request, "oidc/error.html", {"error": "no_request",
                                                    "description": _("There is no sign-in in progress.")}, status=400)
    relying_party = RelyingParty.objects.filter(client_id=pending["client_id"], state=RelyingParty.State.APPROVED).first()
    key = Key.objects.select_related("citizen").filter(pk=who.key_id).first()
    if relying_party is None or key is None:
        request.session.pop(PENDING, None)
        return render(request, "oidc/error.html", {"error": "no_request",
                                                    "description": _("This portal cannot be used now.")}, status=400)
    values = claims_module.attribute_values(key)
    rows = [
        {"name": name, "label": claims_module.ATTRIBUTES[name].label, "value": values.get(name),
         "mandatory": name in relying_party.mandatory_attributes}
        for name in pending["consent"]
    ]
    if request.method == "POST":
        if request.POST.get("decision") == "refuse":
            request.session.pop(PENDING, None)
            services.record_consent(key.citizen, relying_party, granted=[], refused=[r["name"] for r in rows if not r["mandatory"]],
                                    remember=False)
            from authlib.oauth2.rfc6749 import AccessDeniedError

            error = AccessDeniedError(redirect_uri=pending["redirect_uri"])
            error.state = pending.get("state")
            return server().handle_response(*error())
        chosen = set(request.POST.getlist("attribute"))
        granted = [r["name"] for r in rows if r["mandatory"] or r["name"] in chosen]
        refused = [r["name"] for r in rows if r["name"] not in granted]
        services.record_consent(key.citizen, relying_party, granted=granted, refused=refused)
        pending = {**pending, "consented": True}
        pending.pop("consent")
        request.session[PENDING] = pending
        return redirect(f"/oidc/authorize?{pending['query']}")
    return render(request, "oidc/consent.html", {"portal": relying_party, "rows": rows})


def _bearer(request) -> Token | None:
    header = request.META.get("HTTP_AUTHORIZATION", "")
    scheme, _, value = header.partition(" ")
    if scheme.lower() != "bearer" or not value or len(value) > 256:
        return None
    row = Token.objects.select_related("relying_party", "key__citizen").filter(access_token_hash=token_hash(value.strip())).first()
    if row is None or row.is_revoked() or row.is_expired() or not row.relying_party.is_approved or row.key is None:
        return None
    return row


@csrf_exempt
@never_cache
def userinfo(request):
    if request.method not in ("GET", "POST"):
        return HttpResponseNotAllowed(["GET", "POST"])
    token = _bearer(request)
    if token is None:
        response = _json({"error": "invalid_token"}, status=401)
        response["WWW-Authenticate"] = 'Bearer error="invalid_token"'
        return response
    key = token.key
    if key.effective_status(clock.now()) not in (KeyStatus.ACTIVE, KeyStatus.LOCKED):
        response = _json({"error": "invalid_token"}, status=401)
        response["WWW-Authenticate"] = 'Bearer error="invalid_token"'
        return response
    body = {"sub": claims_module.subject(token.relying_party, key.citizen)}
    body.update(claims_module.claims_for(key, token.attributes, token.withheld))
    return _json(body)


@csrf_exempt
@never_cache
def token(request):
    if request.method != "POST":
        return HttpResponseNotAllowed(["POST"])
    return server().create_token_response(request)
