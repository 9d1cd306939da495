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

from authlib.oauth2 import OAuth2Error
from authlib.oauth2.base import invalid_error_characters
from authlib.oauth2.rfc6749 import (
    AccessDeniedError,
    InvalidRequestError,
    InvalidScopeError,
)
from authlib.oidc.core.errors import (
    ConsentRequiredError,
    LoginRequiredError,
    RequestNotSupportedError,
    RequestURINotSupportedError,
)
from django.core.exceptions import RequestDataTooBig, SuspiciousOperation
from django.http import JsonResponse
from django.shortcuts import redirect, render
from django.utils.translation import gettext as _
from django.views.decorators.cache import never_cache
from django.views.decorators.csrf import csrf_exempt

from chave import clock
from chave.federation import attributes
from chave.federation import services as federation
from chave.federation.levels import LEVEL_URIS
from chave.identity.models import Key, KeyStatus
from chave.login import services as login_services
from chave.throttle import services as throttle

from . import claims as claims_module
from . import keys, services
from .models import AuthorizationCode, RelyingParty, Token, token_hash
from .server import PrivateKeyJwt, issuer, server

PENDING = "chave.oidc.pending"
# Input bounds (formats, not rules): an OAuth parameter longer than this is refused, a nonce must
# fit where it is kept, and the whole request must fit in the session while the citizen signs in.
MAX_PARAMETER_LENGTH = 2048
MAX_NONCE_LENGTH = AuthorizationCode._meta.get_field("nonce").max_length
MAX_QUERY_LENGTH = 8192
# Authlib writes these into error descriptions, which RFC 6749 limits to printable ASCII
# without the double quote and the backslash: a value outside that makes the library fail.
_ECHOED_BY_LIBRARY = ("response_type", "client_id", "redirect_uri")


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
        "authorization_response_iss_parameter_supported": True,
        "grant_types_supported": ["authorization_code", "refresh_token"],
        "subject_types_supported": ["pairwise", "public"],
        "id_token_signing_alg_values_supported": ["RS256", "ES256"],
        "token_endpoint_auth_methods_supported": ["private_key_jwt", "client_secret_basic"],
        "token_endpoint_auth_signing_alg_values_supported": PrivateKeyJwt.ALGORITHMS,
        "code_challenge_methods_supported": ["S256"],
        "scopes_supported": list(claims_module.SCOPES),
        "claims_supported": ["sub", "iss", "aud", "exp", "iat", "auth_time", "nonce", "acr", "amr", "sid",
                             *claims_module.CLAIMS.values(),
                             claims_module.ATTRIBUTE_STATUS_CLAIM],
        "claims_parameter_supported": True,
        "request_parameter_supported": False,
        "request_uri_parameter_supported": False,
        "acr_values_supported": list(LEVEL_URIS.values()),
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


def _oauth_error_page(request, error: str, description: str = ""):
    return render(request, "oidc/error.html", {"error": error, "description": description}, status=400)


def _error(request, error: OAuth2Error, state: str | None = None):
    """Back to the portal when its redirect URI was validated (with its ``state``, RFC 6749
    §4.1.2.1); otherwise a page for the citizen (never a redirect to an unchecked address)."""
    if getattr(error, "redirect_uri", None):
        if not error.state and state and len(state) <= MAX_PARAMETER_LENGTH:
            error.state = state
        return server().handle_response(*error())
    return _oauth_error_page(request, error.error, error.get_error_description() or "")


def _parameters(request):
    """The request's parameters as lists (query string, and the form body of a POST)."""
    lists: dict[str, list[str]] = {}
    for source in (request.GET, request.POST) if request.method == "POST" else (request.GET,):
        for name in source:
            lists.setdefault(name, []).extend(source.getlist(name))
    return lists


def _check_before_library(parameters: dict[str, list[str]]) -> str | None:
    """What makes a request unfit even to be validated (answered with a page), or None."""
    for name, values in parameters.items():
        if any(len(v) > MAX_PARAMETER_LENGTH for v in values) or len(name) > MAX_PARAMETER_LENGTH:
            return "A parameter is too long."
    for name in _ECHOED_BY_LIBRARY:
        if any(invalid_error_characters(v) for v in parameters.get(name, [])):
            return f"'{name}' holds characters it may not."
    return None


def _check_request(parameters: dict[str, list[str]], data: dict) -> None:
    """Checks of ours once the client and redirect URI are known (errors go back to the portal).

    Raises ``InvalidRequestError`` (a repeated parameter, RFC 6749 §3.1; a nonce too long; a
    response mode other than ``query``), ``RequestNotSupportedError`` /
    ``RequestURINotSupportedError`` (request objects are not supported), ``InvalidScopeError``
    (no ``openid``: this is an OpenID Connect provider).
    """
    repeated = sorted(name for name, values in parameters.items() if len(values) > 1)
    if repeated:
        names = " ".join(n for n in repeated if n.isascii() and n.isprintable() and not invalid_error_characters(n))
        raise InvalidRequestError(f"Parameters may not be repeated: {names}"[:200])
    if "request" in data:
        raise RequestNotSupportedError()
    if "request_uri" in data:
        raise RequestURINotSupportedError()
    if len(data.get("nonce") or "") > MAX_NONCE_LENGTH:
        raise InvalidRequestError(f"The 'nonce' is longer than {MAX_NONCE_LENGTH} characters.")
    if data.get("response_mode") not in (None, "query"):
        raise InvalidRequestError("Only 'response_mode=query' is supported.")
    if "openid" not in claims_module.scope_list(data.get("scope")):
        raise InvalidScopeError("The 'openid' scope is required.")


def _parse_claims_parameter(raw):
    """The ``claims`` parameter (OpenID Connect Core §5.5) as a dict, or None when absent.

    Raises ``InvalidRequestError`` unless it is a JSON object whose ``id_token`` and
    ``userinfo`` members, when present, are objects.
    """
    if not raw:
        return None
    try:
        value = json.loads(raw)
    except (ValueError, RecursionError):
        value = None
    if not isinstance(value, dict) or not all(isinstance(value.get(s, {}), dict) for s in ("id_token", "userinfo")):
        raise InvalidRequestError("The 'claims' parameter must be a JSON object (OpenID Connect Core 5.5).")
    return value


def _usable_key(who):
    if who is None:
        return None
    key = Key.objects.select_related("citizen").filter(pk=who.key_id).first()
    if key is None or key.effective_status(clock.now()) not in (KeyStatus.ACTIVE, KeyStatus.LOCKED):
        return None
    return key


@csrf_exempt  # a portal may POST the request (OpenID Connect Core §3.1.2.1); nothing here acts on the session's behalf
@never_cache
def authorize(request):
    """The authorization endpoint: validate, then sign in, then consent, then the code.

    A request the service cannot tie to a registered client and redirect URI is answered with
    an error page (400); once they are known, every error goes back to the portal with
    ``state``. The browser leaves for the login or consent pages with the request kept in the
    session (``PENDING``: the query, when it was sent away, whether it has just consented) and
    comes back to this same URL.
    """
    if request.method not in ("GET", "POST"):
        return _oauth_error_page(request, "invalid_request", "Use GET or POST.")
    parameters = _parameters(request)
    refusal = _check_before_library(parameters)
    if refusal:
        return _oauth_error_page(request, "invalid_request", refusal)
    query = request.GET.urlencode() if request.method == "GET" else request.POST.urlencode()
    state = (parameters.get("state") or [None])[0]
    srv = server()
    who = login_services.signed_in(request)
    key = _usable_key(who)
    if key is None:
        who = None
    try:
        grant = srv.get_consent_grant(request, end_user=key)
        data = grant.request.payload.data
        relying_party: RelyingParty = grant.client
        try:
            _check_request(parameters, data)
            if len(query) > MAX_QUERY_LENGTH:
                raise InvalidRequestError("The request is too long.")
            bad_scopes = claims_module.unknown_or_forbidden_scopes(relying_party, data.get("scope"))
            if bad_scopes:
                names = " ".join(s for s in bad_scopes if not invalid_error_characters(s))
                raise InvalidScopeError(f"Scopes not allowed for this portal: {names}"[:300])
            claims_request = _parse_claims_parameter(data.get("claims"))
            pending = request.session.get(PENDING)
            decision = services.login_decision(relying_party, who, data, pending=pending, query=query,
                                               claims_request=claims_request)
        except OAuth2Error as exc:
            exc.redirect_uri = grant.redirect_uri
            raise
        same_request = bool(pending) and pending.get("query") == query
        prompts = set((data.get("prompt") or "").split())
        if decision.needs_login:
            if "none" in prompts:
                raise LoginRequiredError(redirect_uri=grant.redirect_uri)
            request.session[PENDING] = {
                "query": query,
                "client_id": relying_party.client_id,
                "requested_at": clock.now().isoformat(),
            }
            login_services.request_login(request, portal=relying_party.name, min_level=decision.required_level,
                                         return_to="/oidc/authorize?" + query)
            return redirect("login:start")
        requested = claims_module.requested_attributes(relying_party, data.get("scope"), claims_request,
                                                       key.citizen)
        consent = federation.consent_state(key.citizen, relying_party, requested)
        ask_again = "consent" in prompts and bool(requested) and not decision.just_consented
        if consent.undecided or ask_again:
            if "none" in prompts:
                raise ConsentRequiredError(redirect_uri=grant.redirect_uri)
            request.session[PENDING] = {
                "query": query,
                "client_id": relying_party.client_id,
                # A login this very request asked for stays fresh for prompt=login and max_age.
                "requested_at": pending.get("requested_at") if same_request else None,
                "consent": requested if ask_again else consent.undecided,
                "redirect_uri": grant.redirect_uri,
                "state": data.get("state"),
            }
            return redirect("oidc:consent")
        request.session.pop(PENDING, None)
        sso = federation.sso_session(request, key, who)
        sso.relying_parties.add(relying_party)
        grant.request.chave = {
            "sso_session": sso,
            "attributes": consent.granted,
            "withheld": consent.withheld,
            "claims_request": claims_request,
            "acr": LEVEL_URIS[who.assurance_level],
            "amr": claims_module.AMR.get(who.method, ["pin", "mfa"]),
            "auth_time": dt.datetime.fromisoformat(who.auth_time),
        }
        federation.record_authorization(relying_party, key, who, request)
        return srv.create_authorization_response(request, grant_user=key, grant=grant)
    except OAuth2Error as error:
        return _error(request, error, state)


def _no_request(request, description):
    return render(request, "oidc/error.html", {"error": "no_request", "description": description}, status=400)


@never_cache
def consent(request):
    """The consent page of the request in ``PENDING``: each attribute asked for with its value,
    the mandatory ones marked and fixed, the others refusable. "Share" records the choice and
    returns to the request; "Do not sign in" returns ``access_denied`` to the portal. Without
    a request waiting for consent (or signed out) it is a 400 page; the POST is CSRF-protected.
    """
    if request.method not in ("GET", "POST"):
        return _no_request(request, _("This page only accepts GET and POST."))
    pending = request.session.get(PENDING)
    who = login_services.signed_in(request)
    if not pending or "consent" not in pending or who is None:
        return _no_request(request, _("There is no sign-in in progress."))
    relying_party = RelyingParty.objects.filter(client_id=pending["client_id"], state=RelyingParty.State.APPROVED).first()
    key = _usable_key(who)
    if relying_party is None or key is None:
        request.session.pop(PENDING, None)
        return _no_request(request, _("This portal cannot be used now."))
    values = attributes.attribute_values(key)
    rows = [
        {"name": name, "label": attributes.ATTRIBUTES[name].label, "value": values.get(name),
         "mandatory": name in relying_party.mandatory_attributes}
        for name in pending["consent"] if name in attributes.ATTRIBUTES
    ]
    if request.method == "POST":
        decision = request.POST.get("decision")
        if decision == "refuse":
            request.session.pop(PENDING, None)
            federation.record_consent(key.citizen, relying_party, granted=[],
                                    refused=[r["name"] for r in rows if not r["mandatory"]], remember=False)
            error = AccessDeniedError(description="The citizen did not sign in to this portal.",
                                      redirect_uri=pending["redirect_uri"])
            error.state = pending.get("state")
            return server().handle_response(*error())
        if decision != "allow":
            return render(request, "oidc/consent.html", {"portal": relying_party, "rows": rows}, status=400)
        chosen = set(request.POST.getlist("attribute"))
        granted = [r["name"] for r in rows if r["mandatory"] or r["name"] in chosen]
        refused = [r["name"] for r in rows if r["name"] not in granted]
        federation.record_consent(key.citizen, relying_party, granted=granted, refused=refused)
        pending = {**pending, "consented": True}
        pending.pop("consent")
        request.session[PENDING] = pending
        return redirect(f"/oidc/authorize?{pending['query']}")
    return render(request, "oidc/consent.html", {"portal": relying_party, "rows": rows})


def _json_error(status: int, error: str, description: str, **headers):
    response = _json({"error": error, "error_description": description}, status=status)
    response["Pragma"] = "no-cache"
    for name, value in headers.items():
        response[name.replace("_", "-")] = value
    return response


def _throttled(request, name: str):
    """A 429 JSON error when the client address used up ``name``, else None."""
    decision = throttle.hit((name, login_services.client_ip(request) or ""))
    if decision.allowed:
        return None
    return _json_error(429, "temporarily_unavailable", "Too many requests from this address: try again later.",
                       Retry_After=str(decision.retry_after_seconds))


def _bearer(request) -> tuple[Token | None, bool]:
    """The live access token the request carries, and whether it carried one at all."""
    header = request.META.get("HTTP_AUTHORIZATION", "")
    if not header:
        return None, False
    scheme, _sep, value = header.partition(" ")
    value = value.strip()
    if scheme.lower() != "bearer" or not value or len(value) > 256:
        return None, True
    row = Token.objects.select_related("relying_party", "key__citizen").filter(access_token_hash=token_hash(value)).first()
    if row is None or row.is_revoked() or row.is_expired() or not row.relying_party.is_approved or row.key is None:
        return None, True
    if row.key.effective_status(clock.now()) not in (KeyStatus.ACTIVE, KeyStatus.LOCKED):
        return None, True
    return row, True


@csrf_exempt
@never_cache
def userinfo(request):
    """The claims the citizen agreed to share, for a live access token of an approved party
    (RFC 6750 header only). 401 with ``WWW-Authenticate`` when the token is missing (no error
    code, §3.1) or not valid (``invalid_token``)."""
    if request.method not in ("GET", "POST"):
        return _json_error(405, "invalid_request", "Use GET or POST.", Allow="GET, POST")
    refused = _throttled(request, "oidc_userinfo_per_ip")
    if refused:
        return refused
    token, presented = _bearer(request)
    if token is None:
        if not presented:
            return _json_error(401, "invalid_token", "Send the access token in the Authorization header.",
                               WWW_Authenticate='Bearer realm="chave"')
        return _json_error(401, "invalid_token", "The access token is not valid.",
                           WWW_Authenticate='Bearer realm="chave", error="invalid_token"')
    key = token.key
    body = {"sub": attributes.subject(token.relying_party, key.citizen)}
    body.update(claims_module.claims_for(key, token.attributes, token.withheld))
    return _json(body)


@csrf_exempt
@never_cache
def token(request):
    """The token endpoint (RFC 6749 §3.2): a form POST, each parameter once, in the body only.
    Every refusal is a JSON error with a 4xx status (405 for another method).

    The body is ``application/x-www-form-urlencoded`` (RFC 6749 Appendix B); a
    ``multipart/form-data`` form carries the same fields and is accepted too; JSON or any other
    type is refused."""
    if request.method != "POST":
        return _json_error(405, "invalid_request", "Use POST.", Allow="POST")
    refused = _throttled(request, "oidc_token_per_ip")  # before any client assertion is verified
    if refused:
        return refused
    if request.content_type not in ("application/x-www-form-urlencoded", "multipart/form-data"):
        return _json_error(400, "invalid_request", "Send the parameters as application/x-www-form-urlencoded.")
    if request.GET:
        return _json_error(400, "invalid_request", "Send the parameters in the request body, not the URL.")
    try:
        form = request.POST
    except (RequestDataTooBig, SuspiciousOperation):
        return _json_error(400, "invalid_request", "The request is too large.")
    for name in form:
        values = form.getlist(name)
        if len(values) > 1:
            return _json_error(400, "invalid_request", "Parameters may not be repeated.")
        if len(values[0]) > MAX_PARAMETER_LENGTH * 4 or len(name) > MAX_PARAMETER_LENGTH:
            return _json_error(400, "invalid_request", "A parameter is too long.")
    return server().create_token_response(request)
