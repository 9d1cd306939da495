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
import re

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
from django.conf import settings
from django.core.exceptions import RequestDataTooBig, SuspiciousOperation
from django.db import transaction
from django.http import JsonResponse
from django.shortcuts import redirect, render
from django.utils import translation
from django.utils.translation import gettext as _
from django.views.decorators.cache import never_cache
from django.views.decorators.csrf import csrf_exempt

from chave import clock, policy
from chave.audit import services as audit
from chave.compiled import Compiled, first
from chave.federation import attributes
from chave.federation import services as federation
from chave.federation.levels import LEVEL_URIS, supported_uris
from chave.identity.models import Key, KeyStatus
from chave.login import services as login_services
from chave.throttle import services as throttle

from . import claims as claims_module
from . import dpop, jar, keys, pushed, services
from .models import AuthorizationCode, RelyingParty, Token, client_settings, token_hash
from .logout import ui_language
from .server import PrivateKeyJwt, as_sentence, endpoint_url, issuer, server, token_endpoint

_TOKEN = Compiled(lambda token_hash: first(Token.objects.select_related("relying_party", "key__citizen")
                                           .filter(access_token_hash=token_hash)), str)

PENDING = "chave.oidc.pending"
# Input bounds (formats, not rules): an OAuth parameter longer than this is refused, a nonce must
# fit where it is kept, and the whole request must fit in the session while the citizen signs in.
MAX_PARAMETER_LENGTH = 2048
MAX_NONCE_LENGTH = AuthorizationCode._meta.get_field("nonce").max_length
MAX_QUERY_LENGTH = 8192
_JKT = re.compile(r"[A-Za-z0-9_-]{43}")
# Authlib writes these into error descriptions, which RFC 6749 limits to printable ASCII
# without the double quote and the backslash: a value outside that makes the library fail.
_ECHOED_BY_LIBRARY = ("response_type", "client_id", "redirect_uri")


def _json(data, status=200):
    response = JsonResponse(data, status=status)
    response["Cache-Control"] = "no-store"
    return response


def metadata() -> dict:
    """What the provider supports, for OpenID Connect Discovery and RFC 8414 alike: every endpoint
    and feature it has, and nothing it has not."""
    base = issuer()
    return {
        "issuer": base,
        "authorization_endpoint": base + "/oidc/authorize",
        "token_endpoint": base + "/oidc/token",
        "userinfo_endpoint": base + "/oidc/userinfo",
        "jwks_uri": base + "/oidc/jwks",
        "end_session_endpoint": base + "/oidc/logout",
        "response_types_supported": ["code"],
        "response_modes_supported": ["query", "form_post"],
        "authorization_response_iss_parameter_supported": True,
        "grant_types_supported": ["authorization_code", "refresh_token", "client_credentials"],
        "subject_types_supported": ["pairwise", "public"],
        "id_token_signing_alg_values_supported": ["RS256", "ES256"],
        "token_endpoint_auth_methods_supported": ["private_key_jwt", "client_secret_basic"],
        "token_endpoint_auth_signing_alg_values_supported": PrivateKeyJwt.ALGORITHMS,
        "code_challenge_methods_supported": ["S256"],
        "scopes_supported": claims_module.scopes_supported(),
        "claims_supported": ["sub", "iss", "aud", "exp", "iat", "auth_time", "nonce", "acr", "amr", "sid",
                             *claims_module.CLAIMS.values(), "email_verified", "phone_number_verified",
                             claims_module.ATTRIBUTE_STATUS_CLAIM],
        "claims_parameter_supported": True,
        "request_parameter_supported": True,
        "request_object_signing_alg_values_supported": jar.ALGORITHMS,
        # Only request_uri values from Chave's own pushed request endpoint: none is fetched.
        "request_uri_parameter_supported": False,
        "acr_values_supported": supported_uris(),
        "prompt_values_supported": ["none", "login", "consent"],
        "backchannel_logout_supported": True,
        "backchannel_logout_session_supported": True,
        "frontchannel_logout_supported": True,
        "frontchannel_logout_session_supported": True,
        "ui_locales_supported": ["pt-PT", "en"],
        "service_documentation": base + "/faq/",
        "revocation_endpoint": base + "/oidc/revoke",
        "revocation_endpoint_auth_methods_supported": ["private_key_jwt", "client_secret_basic"],
        "revocation_endpoint_auth_signing_alg_values_supported": PrivateKeyJwt.ALGORITHMS,
        "introspection_endpoint": base + "/oidc/introspect",
        "introspection_endpoint_auth_methods_supported": ["private_key_jwt", "client_secret_basic"],
        "introspection_endpoint_auth_signing_alg_values_supported": PrivateKeyJwt.ALGORITHMS,
        "pushed_authorization_request_endpoint": base + "/oidc/par",
        "dpop_signing_alg_values_supported": dpop.ALGORITHMS,
        "require_pushed_authorization_requests": False,  # per portal: see its registration
    }


def _public_document(data: dict) -> JsonResponse:
    """A document any client may cache and read from a browser (discovery, JWKS)."""
    response = JsonResponse(data)
    response["Cache-Control"] = f"public, max-age={policy.get('oidc_jwks_max_age_seconds')}"
    response["Access-Control-Allow-Origin"] = "*"
    return response


def discovery(request):
    return _public_document(metadata())


def authorization_server_metadata(request):
    """RFC 8414: the same metadata at ``/.well-known/oauth-authorization-server``."""
    return _public_document(metadata())


def jwks(request):
    return _public_document(keys.jwks())


def _oauth_error_page(request, error: str, description: str = ""):
    return render(request, "oidc/error.html", {"error": error, "description": description}, status=400)


def _error(request, error: OAuth2Error, state: str | None = None, response_mode: str | None = None):
    """Back to the portal when its redirect URI was validated (with its ``state``, RFC 6749
    §4.1.2.1, in the request's response mode); otherwise a page for the citizen (never a
    redirect to an unchecked address)."""
    as_sentence(error)
    if getattr(error, "redirect_uri", None):
        if not error.state and state and len(state) <= MAX_PARAMETER_LENGTH:
            error.state = state
        return to_portal(request, server().handle_response(*error()), response_mode, getattr(error, "portal", None))
    return _oauth_error_page(request, error.error, error.get_error_description() or "")


FORM_POST = "form_post"


def to_portal(request, response, response_mode: str | None, portal: RelyingParty | None = None):
    """An authorization response (a redirect to the portal's validated redirect URI) in the
    response mode asked for: as it is for ``query``; for ``form_post`` (OAuth 2.0 Form Post
    Response Mode) a page whose one button posts the same parameters to the redirect URI — no
    script runs on Chave's pages, so the citizen presses it."""
    if response_mode != FORM_POST or response.status_code != 302:
        return response
    from urllib.parse import parse_qsl, urlsplit, urlunsplit

    parts = urlsplit(response["Location"])
    action = urlunsplit((parts.scheme, parts.netloc, parts.path, "", ""))
    fields = parse_qsl(parts.query, keep_blank_values=True)
    page = render(request, "oidc/form_post.html", {
        "action": action, "fields": fields, "host": parts.hostname, "portal": portal.name if portal else parts.hostname,
        "succeeded": any(name == "code" for name, _value in fields)})
    page["Cache-Control"] = "no-store"
    # The page posts to the portal: Chave's policy plus that one form target.
    if settings.CHAVE_CONTENT_SECURITY_POLICY:
        page["Content-Security-Policy"] = f"{settings.CHAVE_CONTENT_SECURITY_POLICY}; form-action {action}"
    return page


def _response_mode(parameters: dict[str, list[str]]) -> str | None:
    modes = parameters.get("response_mode") or []
    return modes[0] if len(modes) == 1 else None


def _remember_language(response, language: str | None):
    """``ui_locales`` named a language we speak: the login and consent pages use it, as Django's
    language cookie carries it (the citizen may still switch on each page)."""
    if language:
        response.set_cookie(settings.LANGUAGE_COOKIE_NAME, language, max_age=settings.LANGUAGE_COOKIE_AGE,
                            secure=settings.LANGUAGE_COOKIE_SECURE, httponly=settings.LANGUAGE_COOKIE_HTTPONLY,
                            samesite=settings.LANGUAGE_COOKIE_SAMESITE)
    return response


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
    response mode other than ``query`` or ``form_post``), ``RequestNotSupportedError`` /
    ``RequestURINotSupportedError`` (request objects are not supported), ``InvalidScopeError``
    (no ``openid``: this is an OpenID Connect provider).
    """
    repeated = sorted(name for name, values in parameters.items() if len(values) > 1)
    if repeated:
        names = [n for n in repeated if n.isascii() and n.isprintable() and not invalid_error_characters(n)]
        if len(names) == 1:
            raise InvalidRequestError(f"The parameter '{names[0]}' may not be repeated.")
        raise InvalidRequestError(("These parameters may not be repeated: " + ", ".join(names))[:200] + ".")
    if "request" in data:
        raise RequestNotSupportedError()
    if "request_uri" in data:
        raise RequestURINotSupportedError()
    if len(data.get("nonce") or "") > MAX_NONCE_LENGTH:
        raise InvalidRequestError(f"The 'nonce' is longer than {MAX_NONCE_LENGTH} characters.")
    if data.get("dpop_jkt") is not None and not _JKT.fullmatch(data["dpop_jkt"]):
        raise InvalidRequestError("'dpop_jkt' must be a JWK SHA-256 thumbprint (RFC 9449 section 10).")
    if data.get("response_mode") not in (None, "query", FORM_POST):
        raise InvalidRequestError("The response mode must be 'query' or 'form_post'.")
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
    key = Key.with_citizen(who.key_id)
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
    pushed_request = None
    try:
        if len(parameters.get("request_uri") or []) == 1:
            pushed_request = pushed.resolve(request, _single(parameters, "client_id"), parameters["request_uri"][0])
            parameters = _replace_parameters(request, pushed_request.parameters)
        elif len(parameters.get("request") or []) == 1:
            client = server().query_client(_single(parameters, "client_id"))
            if client is None:
                return _oauth_error_page(request, "invalid_client", "The client does not exist on this server.")
            flat = {name: values[0] for name, values in parameters.items()}
            parameters = _replace_parameters(request, request_object_parameters(client, flat))
    except pushed.UnusableRequestUri as exc:
        return _oauth_error_page(request, "invalid_request_uri", str(exc))
    except OAuth2Error as error:
        as_sentence(error)
        return _oauth_error_page(request, error.error, error.get_error_description())
    states = parameters.get("state") or []
    state = states[0] if len(states) == 1 else None  # a repeated state is not echoed
    response_mode = _response_mode(parameters)
    locales = parameters.get("ui_locales") or []
    language = ui_language(locales[0]) if len(locales) == 1 else None
    with translation.override(language or translation.get_language()):
        response = _authorize(request, parameters, query, state, response_mode, pushed_request)
    return _remember_language(response, language)


def _single(parameters: dict[str, list[str]], name: str) -> str | None:
    values = parameters.get(name) or []
    return values[0] if len(values) == 1 else None


def _replace_parameters(request, parameters: dict[str, str]) -> dict[str, list[str]]:
    """The request carries ``parameters`` (a pushed request's, a request object's) and nothing
    else from here on: what the library and our checks read."""
    from django.http import QueryDict

    query = QueryDict(mutable=True)
    for name, value in parameters.items():
        query[name] = value
    request.GET, request._post = query, QueryDict()
    request.method = "GET"
    return {name: [value] for name, value in parameters.items()}


def validate_authorization_request(request, parameters: dict[str, list[str]], end_user=None, query: str = ""):
    """The authorization request's checks, the library's and ours: returns (grant, claims
    request, essential acr values). Raises ``OAuth2Error``; once the client and redirect URI are
    known the error carries the redirect URI (and is answered there)."""
    grant = server().get_consent_grant(request, end_user=end_user)
    data = grant.request.payload.data
    try:
        _check_request(parameters, data)
        if len(query) > MAX_QUERY_LENGTH:
            raise InvalidRequestError("The request is too long.")
        services.parse_max_age(data.get("max_age"))
        claims_request = _parse_claims_parameter(data.get("claims"))
        essential_acr = claims_module.essential_acr(claims_request)
        if essential_acr is not None and not claims_module.levels_from_acr_values(" ".join(essential_acr)):
            raise UnmetAuthenticationRequirementsError(
                "None of the essential 'acr' values names a level of assurance Chave provides.")
    except OAuth2Error as exc:
        exc.redirect_uri = grant.redirect_uri
        raise
    return grant, claims_request, essential_acr


def request_object_parameters(client: RelyingParty, parameters: dict[str, str]) -> dict[str, str]:
    """The parameters of a request carrying a signed request object (``request``, RFC 9101): those
    of the object alone, once verified against the portal's registered keys; the others as they
    are when there is none. Raises ``InvalidRequestObjectError`` (see :mod:`chave.oidc.jar`)."""
    if "request" not in parameters:
        return parameters
    from . import jar

    return jar.parameters_of(client, parameters["request"], outer_client_id=parameters.get("client_id"))


def _authorize(request, parameters, query: str, state: str | None, response_mode: str | None, pushed_request=None):
    srv = server()
    relying_party = None
    who = login_services.signed_in(request)
    key = _usable_key(who)
    if key is None:
        who = None
    try:
        grant, claims_request, essential_acr = validate_authorization_request(request, parameters, key, query)
        data = grant.request.payload.data
        relying_party: RelyingParty = grant.client
        try:
            if pushed_request is None and client_settings(relying_party).par_required:
                raise InvalidRequestError("This portal must push its authorization requests first (RFC 9126).")
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
                # Where a cancelled login is answered (``access_denied``, :func:`cancel`).
                "redirect_uri": grant.redirect_uri,
                "state": data.get("state"),
                "response_mode": response_mode,
            }
            login_services.request_login(request, portal=relying_party.name, min_level=decision.required_level,
                                         return_to="/oidc/authorize?" + query,
                                         login_hint=_login_hint(data.get("login_hint")), cancel_to="/oidc/cancel")
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
                "response_mode": response_mode,
            }
            return redirect("oidc:consent")
        request.session.pop(PENDING, None)
        acr = LEVEL_URIS[who.assurance_level]
        if essential_acr is not None:
            # Core §5.5.1.1: an essential acr is met by one of its values exactly, or not at all.
            acr = claims_module.acr_meeting(essential_acr, who.assurance_level)
            if acr is None:
                raise UnmetAuthenticationRequirementsError(
                    "The sign-in does not meet any of the essential 'acr' values.", redirect_uri=grant.redirect_uri)
        if pushed_request is not None and not pushed.consume(pushed_request):
            raise InvalidRequestError("This pushed request was already answered.", redirect_uri=grant.redirect_uri)
        with transaction.atomic():  # the SSO session, the portal on it, the audit link and the code
            sso = federation.sso_session(request, key, who)
            federation.served(sso, relying_party)
            grant.request.chave = {
                "sso_session": sso,
                "attributes": consent.granted,
                "withheld": consent.withheld,
                "claims_request": claims_request,
                "acr": acr,
                "amr": claims_module.AMR.get(who.method, ["pin", "mfa"]),
                "auth_time": dt.datetime.fromisoformat(who.auth_time),
            }
            federation.record_authorization(relying_party, key, who, request)
            answer = srv.authorization_response(grant, key)
        return to_portal(request, answer, response_mode, relying_party)
    except OAuth2Error as error:
        if relying_party is None and getattr(error, "redirect_uri", None):
            # Raised by the library while validating (prompt=none, say): the client was found.
            relying_party = srv.query_client((parameters.get("client_id") or [None])[0])
        error.portal = relying_party
        return _error(request, error, state, response_mode)


class UnmetAuthenticationRequirementsError(OAuth2Error):
    """OpenID Connect Core 1.0 (errata set 2) §3.1.2.6: the provider cannot authenticate the citizen
    as the request requires (an essential ``acr`` it cannot meet)."""

    error = "unmet_authentication_requirements"


def _login_hint(raw) -> str:
    """A ``login_hint`` fit to pre-fill the identifier field: a mobile number or an e-mail as the
    portal knows it, printable and short. Never looked up (the page looks the same whether or
    not a key has it)."""
    from chave.identity.validation import MAX_IDENTIFIER_LENGTH

    hint = str(raw or "").strip()
    if not hint or len(hint) > MAX_IDENTIFIER_LENGTH or not hint.isprintable():
        return ""
    return hint


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
    rows = attributes.consent_rows(key, pending["consent"], set(relying_party.mandatory_attributes))
    if request.method == "POST":
        decision = request.POST.get("decision")
        if decision == "refuse":
            request.session.pop(PENDING, None)
            federation.record_consent(key.citizen, relying_party, granted=[],
                                    refused=[r["name"] for r in rows if not r["mandatory"]], remember=False)
            return _access_denied(request, pending, relying_party)
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


def _access_denied(request, pending: dict, relying_party: RelyingParty,
                   description: str = "The citizen did not sign in to this portal."):
    """``access_denied`` to the pending request's validated redirect URI, with its ``state`` and
    the issuer (RFC 9207), in its response mode: the citizen refused, or cancelled."""
    error = AccessDeniedError(description=description, redirect_uri=pending["redirect_uri"])
    error.state = pending.get("state")
    return to_portal(request, server().handle_response(*error()), pending.get("response_mode"), relying_party)


@never_cache
def cancel(request):
    """"Cancel and go back to the portal" on a sign-in page (a CSRF-protected POST): the login of
    the request in ``PENDING`` ends and the portal gets ``access_denied``. Without such a request
    (answered, cancelled in another tab, expired, or a newer one made since the form was shown) a
    page says the sign-in has already ended."""
    if request.method != "POST":
        return render(request, "login/cancel_gone.html", status=405)
    if not login_services.may_cancel(request, request.POST.get("request")):
        return render(request, "login/cancel_gone.html", status=400)
    pending = request.session.get(PENDING) or {}
    relying_party = RelyingParty.objects.filter(client_id=pending.get("client_id") or "",
                                                state=RelyingParty.State.APPROVED).first()
    if not pending.get("redirect_uri") or relying_party is None:
        login_services.cancel_login(request)
        return render(request, "login/cancel_gone.html", status=400)
    request.session.pop(PENDING, None)
    citizen = login_services.cancel_login(request)
    audit.record("oidc.authorize", outcome="abandoned", citizen=citizen, ip=login_services.client_ip(request),
                 client_id=relying_party.client_id, portal=relying_party.name)
    return _access_denied(request, pending, relying_party, "The citizen cancelled the sign-in.")


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
    """The live access token the request carries, and whether it carried one at all. A token bound
    to a DPoP key counts only under the ``DPoP`` scheme with a proof of that key (RFC 9449 §7);
    a proof that fails raises ``dpop.DpopError``."""
    header = request.META.get("HTTP_AUTHORIZATION", "")
    if not header:
        return None, False
    scheme, _sep, value = header.partition(" ")
    value = value.strip()
    if scheme.lower() not in ("bearer", "dpop") or not value or len(value) > 256:
        return None, True
    row = _TOKEN.first(token_hash(value))
    if row is None or row.is_revoked() or row.is_expired() or not row.relying_party.is_approved or row.key is None:
        return None, True
    if row.key.effective_status(clock.now()) not in (KeyStatus.ACTIVE, KeyStatus.LOCKED):
        return None, True
    if scheme.lower() == "dpop" or row.dpop_jkt:
        if scheme.lower() != "dpop" or not row.dpop_jkt:
            return None, True
        proof = dpop.verify(request, url=issuer() + request.path, access_token=value)
        if proof.jkt != row.dpop_jkt:
            raise dpop.DpopError("invalid_dpop_proof", "The DPoP proof is not made with the token's key.")
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
    try:
        token, presented = _bearer(request)
    except dpop.DpopError as error:
        return dpop.json_error(error, resource=True)
    if token is None:
        if not presented:
            return _json_error(401, "invalid_token", "Send the access token in the Authorization header.",
                               WWW_Authenticate=f'Bearer realm="chave", DPoP algs="{" ".join(dpop.ALGORITHMS)}"')
        return _json_error(401, "invalid_token", "The access token is not valid.",
                           WWW_Authenticate='Bearer realm="chave", error="invalid_token"')
    key = token.key
    body = {"sub": attributes.subject(token.relying_party, key.citizen)}
    body.update(claims_module.claims_for(key, token.attributes, token.withheld))
    return _json(body)


def _client_request_refusal(request):
    """What makes a request to an endpoint where clients authenticate (token, revocation,
    introspection, PAR) unfit, as a JSON error; None when it may go on. A form POST, each parameter
    once, in the body only; the address not over its limit (before any client assertion is
    verified). The body is ``application/x-www-form-urlencoded`` (RFC 6749 Appendix B); a
    ``multipart/form-data`` form carries the same fields and is accepted too."""
    if request.method != "POST":
        return _json_error(405, "invalid_request", "Use POST.", Allow="POST")
    refused = _throttled(request, "oidc_token_per_ip")
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
    return None


@csrf_exempt
@never_cache
def revoke(request):
    """Token revocation (RFC 7009): the client revokes an access or refresh token of its own."""
    return _client_request_refusal(request) or server().create_endpoint_response("revocation", request)


@csrf_exempt
@never_cache
def introspect(request):
    """Token introspection (RFC 7662), for resource servers registered as clients."""
    return _client_request_refusal(request) or server().create_endpoint_response("introspection", request)


@csrf_exempt
@never_cache
def pushed_authorization_request(request):
    """Pushed authorization requests (RFC 9126): the client posts, authenticated, what it would have
    put in the authorization URL; Chave checks it as it would at the authorization endpoint and
    answers 201 with a ``request_uri`` to send the browser with (``client_id`` + ``request_uri``),
    usable once within ``oidc_par_seconds``."""
    refused = _client_request_refusal(request)
    if refused:
        return refused
    jkt = None
    if dpop.presented(request) is not None:
        try:
            jkt = dpop.verify(request, url=endpoint_url("pushed_authorization_request")).jkt
        except dpop.DpopError as error:
            return dpop.json_error(error)
    try:
        reference, lifetime = pushed.push(request, dpop_jkt=jkt)
    except OAuth2Error as error:
        as_sentence(error)
        return _json_error(error.status_code if error.error == "invalid_client" else 400, error.error,
                           error.get_error_description())
    return _with_dpop_nonce(_json({"request_uri": reference, "expires_in": lifetime}, status=201))


@csrf_exempt
@never_cache
def token(request):
    """The token endpoint (RFC 6749 §3.2), under :func:`_client_request_refusal`'s rules. Every
    refusal is a JSON error with a 4xx status (405 for another method)."""
    refused = _client_request_refusal(request)
    if refused:
        return refused
    if dpop.presented(request) is not None:
        try:
            request.chave_dpop = dpop.verify(request, url=token_endpoint())
        except dpop.DpopError as error:
            return dpop.json_error(error)
    return _with_dpop_nonce(server().create_token_response(request))


def _with_dpop_nonce(response):
    """RFC 9449 §8.2: the server may give the next nonce with any answer."""
    if dpop.nonce_required():
        response["DPoP-Nonce"] = dpop.current_nonce()
    return response
