"""The OAuth 2.0 / OpenID Connect authorization server, built on Authlib.

Authlib does the protocol (request validation, grants, client authentication, PKCE, error
responses); this module binds it to our models and rules:

- only approved parties exist for the server (:meth:`ChaveAuthorizationServer.query_client`);
- authorization code flow only, PKCE with S256 required of every client; ``nonce`` and ``state``
  optional (OAuth 2.1, RFC 9700: PKCE is what binds the code to the browser), echoed when sent;
- scopes the portal may not have, or that do not exist, are ignored (Core §3.1.2.1), and the token
  response's ``scope`` says what was granted; refresh tokens only for ``offline_access``, to a
  portal allowed it (Core §11);
- codes are single use: the first redemption claims the code atomically, a second one finds it
  used and revokes every token the code issued;
- clients authenticate as registered: ``private_key_jwt`` (RFC 7523, ``jti`` single use) or
  ``client_secret_basic``;
- ID tokens carry ``sub`` (pairwise by default), ``acr``, ``amr``, ``auth_time``, ``sid``,
  ``nonce``, ``at_hash`` and the claims asked for in the ``claims`` parameter's ``id_token``
  section, signed with the provider's active key for the party's algorithm (``kid`` set).
"""

from __future__ import annotations

import contextvars
import datetime as dt
import functools
import hmac
import json
import re
import secrets
import urllib.request

from authlib.common.urls import add_params_to_uri
from authlib.integrations.django_oauth2 import AuthorizationServer
from authlib.oauth2.rfc6749 import (
    InvalidClientError,
    InvalidGrantError,
    InvalidRequestError,
    InvalidScopeError,
    OAuth2Error,
    grants,
)
from authlib.oauth2.rfc6750 import BearerTokenGenerator
from authlib.oauth2.rfc7009 import RevocationEndpoint
from authlib.oauth2.rfc7662 import IntrospectionEndpoint
from authlib.oauth2.rfc7523 import JWTBearerClientAssertion
from authlib.oauth2.rfc7636 import CodeChallenge
from authlib.oidc.core import grants as oidc_grants
from authlib.oidc.core.util import create_half_hash
from django.conf import settings
from django.db import IntegrityError, transaction
from joserfc import jwt
from joserfc.errors import JoseError
from joserfc.jwk import KeySet

from chave import clock, policy
from chave.audit import services as audit
from chave.compiled import Compiled, Inserter, first
from chave.federation.attributes import subject
from chave.identity.models import KeyStatus

from . import claims as claims_module
from . import keys
from .models import AuthorizationCode, ClientAssertion, RelyingParty, Token, client_settings, token_hash

# What every authorization and token request reads and writes, compiled once (chave/compiled.py).
_APPROVED_CLIENT = Compiled(lambda client_id: first(RelyingParty.objects.select_related("oidc_settings").filter(
    client_id=client_id, state=RelyingParty.State.APPROVED)), str)
_CLIENT = Compiled(lambda client_id: first(RelyingParty.objects.filter(client_id=client_id)), str)
_CODE = Compiled(lambda code_hash, client: first(AuthorizationCode.objects.select_related("key__citizen", "sso_session")
                                                 .filter(code_hash=code_hash, relying_party_id=client)), str, int)
_NONCE_USED = Compiled(lambda client, nonce: AuthorizationCode.objects.filter(relying_party_id=client, nonce=nonce)
                       .values_list("pk")[:1], int, str, values=True)
# A code is used once: the one request that marks it used gets the tokens.
_CLAIM_CODE = Compiled(lambda pk, now: AuthorizationCode.objects.filter(pk=pk, used_at__isnull=True, expires_at__gt=now),
                       int, dt.datetime, update=lambda pk, now: {"used_at": now})
_NEW_ASSERTION = Inserter(ClientAssertion)
_NEW_CODE = Inserter(AuthorizationCode)
_NEW_TOKEN = Inserter(Token)


def issuer() -> str:
    return settings.CHAVE_PUBLIC_URL.rstrip("/")


def token_endpoint() -> str:
    return issuer() + "/oidc/token"


# Endpoints where a client authenticates (private_key_jwt or client_secret_basic), by their path.
CLIENT_ENDPOINTS = {"token": "/oidc/token", "revocation": "/oidc/revoke", "introspection": "/oidc/introspect",
                    "pushed_authorization_request": "/oidc/par"}


def endpoint_url(name: str) -> str:
    return issuer() + CLIENT_ENDPOINTS[name]


# What an error says when the library gave no sentence of its own (RFC 6749 §5.2: a description
# helps the portal's developer; ours are sentences, never a library's repr or a bare code).
_DESCRIPTIONS = {
    "invalid_request": "The request is not valid.",
    "invalid_client": "The client could not be authenticated.",
    "invalid_grant": "The code or refresh token is not valid.",
    "invalid_scope": "The scope is not valid.",
    "unauthorized_client": "This client may not use this grant type.",
    "unsupported_grant_type": "This grant type is not offered: use authorization_code, refresh_token or "
                              "client_credentials.",
    "unsupported_response_type": "Only the authorization code flow is offered: use 'response_type=code'.",
    "access_denied": "The citizen did not sign in to this portal.",
    "login_required": "The citizen is not signed in, and the request said 'prompt=none'.",
    "consent_required": "The citizen has not agreed to share what is asked, and the request said 'prompt=none'.",
    "request_not_supported": "Request objects are not supported.",
    "request_uri_not_supported": "The 'request_uri' parameter is not supported.",
}
_SENTENCE = re.compile(r"[A-Z'][^\[\]{}]*[.]")


def as_sentence(error):
    """``error`` with a description that is a sentence: its own when it is one, else ours."""
    text = (error.get_error_description() or "").strip()
    if text and not text.endswith(".") and _SENTENCE.fullmatch(text + "."):
        text += "."
    if not _SENTENCE.fullmatch(text or "-") or error.error == "unsupported_response_type":
        text = _DESCRIPTIONS.get(error.error, "The request cannot be answered.")
    error.description = text
    error.get_error_description = lambda: text
    return error


class ChaveAuthorizationServer(AuthorizationServer):
    def __init__(self):
        super().__init__(RelyingParty, Token)

    def query_client(self, client_id):
        # PostgreSQL text cannot hold NUL: such an id names no client (and must not reach the query).
        if not isinstance(client_id, str) or len(client_id) > 64 or "\x00" in client_id:
            return None
        return _APPROVED_CLIENT.first(client_id)

    def authenticate_client(self, request, methods, endpoint="token"):
        """As registered (see :class:`PrivateKeyJwt`), and a ``client_id`` sent beside the
        credentials must name the client they authenticate (RFC 7523 §3, RFC 6749 §3.2.1)."""
        client = super().authenticate_client(request, methods, endpoint)
        claimed = request.payload.client_id
        if claimed is not None and claimed != client.client_id:
            raise InvalidClientError(description="'client_id' does not match the client's credentials.")
        return client

    def handle_response(self, status_code, payload, headers):
        """Every authorization response that goes back to a portal, success or error, names its
        issuer (RFC 9207 ``iss``), so a portal that uses several providers can tell which one
        answered (the mix-up attack). Only authorization responses carry a ``Location``."""
        headers = [(name, add_params_to_uri(value, {"iss": issuer()}) if name.lower() == "location" else value)
                   for name, value in headers]
        return super().handle_response(status_code, payload, headers)

    def handle_error_response(self, request, error):
        return super().handle_error_response(request, as_sentence(error))

    def authorization_response(self, grant, grant_user):
        """The authorization response for ``grant``, which :meth:`get_consent_grant` validated:
        the library's ``create_authorization_response`` would validate the whole request again
        (the client read again, the redirect URI, PKCE and the nonce checked again)."""
        try:
            args = grant.create_authorization_response(grant.redirect_uri, grant_user)
        except OAuth2Error as error:
            error.state = grant.request.payload.state
            return self.handle_error_response(grant.request, error)
        return self.handle_response(*args)

    def create_bearer_token_generator(self):
        def expires_in(client, grant_type):
            return policy.get("oidc_access_token_seconds")

        return BearerTokenGenerator(
            access_token_generator=lambda *a, **k: secrets.token_urlsafe(32),
            refresh_token_generator=lambda *a, **k: secrets.token_urlsafe(48),
            expires_generator=expires_in,
        )

    def save_token(self, token, request):
        """Store the tokens, in one database transaction with the claim of what they come from.

        A code is claimed here (marked used) and a refresh token rotated (revoked) here, by a
        conditional update: of concurrent redemptions exactly one claims it. A redemption that
        finds the code already used revokes every token it issued (RFC 6749 §4.1.2, also the
        winner's of a race, which commits before the loser's update can run) and fails with
        ``invalid_grant``, as does a second use of a refresh token.
        """
        now = clock.now()
        code = getattr(request, "authorization_code", None)
        code = code if isinstance(code, AuthorizationCode) else None
        previous = getattr(request, "refresh_token", None)
        previous = previous if isinstance(previous, Token) else None
        source = code or previous
        jkt = dpop_binding(request, source)
        if jkt:
            token["token_type"] = "DPoP"
        refresh = token.get("refresh_token")
        expired = False
        with transaction.atomic():
            if code is not None:
                claimed = _CLAIM_CODE.update(code.pk, now)
                if claimed != 1:
                    expired = not revoke_if_reused(code, now)
            elif previous is not None:
                claimed = Token.objects.filter(pk=previous.pk, revoked_at__isnull=True).update(revoked_at=now)
            else:
                claimed = 1
            if claimed == 1:
                row = _NEW_TOKEN.create(
                    access_token_hash=token_hash(token["access_token"]),
                    refresh_token_hash=token_hash(refresh) if refresh else None,
                    relying_party=request.client,
                    key=request.user if source is not None else None,
                    sso_session=getattr(source, "sso_session", None),
                    code=code or getattr(previous, "code", None),
                    scope=token.get("scope", ""),
                    attributes=_attributes_for(request.client, token.get("scope", ""), source),
                    withheld=list(getattr(source, "withheld", []) or []),
                    acr=getattr(source, "acr", "") or "",
                    auth_time=getattr(source, "auth_time", None),
                    issued_at=now,
                    expires_at=now + dt.timedelta(seconds=token["expires_in"]),
                    refresh_expires_at=(now + dt.timedelta(seconds=policy.get("oidc_refresh_token_seconds"))
                                        if refresh else None),
                    dpop_jkt=jkt,
                )
        if claimed != 1:
            if expired:
                raise InvalidGrantError("The code has expired.")
            raise InvalidGrantError("The code was already used." if code is not None
                                    else "The refresh token was already used.")
        return row


def dpop_binding(request, source) -> str:
    """The DPoP key thumbprint the new tokens are bound to ("" for bearer tokens), from the proof
    the token request carried (checked by the view). Raises ``InvalidRequestError`` /
    ``InvalidGrantError`` when the portal must use DPoP and sent no proof, or when the code or
    refresh token is bound to another key (RFC 9449 §5, §10)."""
    proof = getattr(getattr(request, "_request", None), "chave_dpop", None)
    jkt = proof.jkt if proof is not None else ""
    settings_ = client_settings(request.client)
    if not jkt and settings_.dpop_required:
        raise InvalidRequestError("This portal must use DPoP (RFC 9449): send a DPoP proof.")
    if proof is not None and settings_.fapi2 and proof.alg not in FAPI2_ALGORITHMS:
        raise InvalidRequestError("A FAPI 2.0 portal signs its DPoP proofs with PS256 or ES256.")
    bound = getattr(source, "dpop_jkt", "") or ""
    if bound and not hmac.compare_digest(bound, jkt):
        what = "refresh token" if isinstance(source, Token) else "code"
        raise InvalidGrantError(f"The {what} is bound to a DPoP key: send a DPoP proof made with that key.")
    return jkt


def _attributes_for(client, scope: str, source) -> list[str]:
    """The attributes a new token releases: those of what it comes from (a code, or the refresh
    token it replaces), narrowed to what its ``scope`` covers when a refresh asked for less."""
    attributes = list(getattr(source, "attributes", []) or [])
    if not isinstance(source, Token) or set(claims_module.scope_list(scope)) >= set(
            claims_module.scope_list(source.scope)):
        return attributes
    claims_request = source.code.claims_request if source.code_id else None
    return claims_module.attributes_within(client, scope, claims_request, attributes,
                                           source.key.citizen if source.key_id else None)


def revoke_if_reused(code: AuthorizationCode, now) -> bool:
    """When ``code`` was already redeemed, revoke every token it issued; says whether it was."""
    if not AuthorizationCode.objects.filter(pk=code.pk, used_at__isnull=False).exists():
        return False
    Token.objects.filter(code=code, revoked_at__isnull=True).update(revoked_at=now)
    return True


def revoke_family_on_reuse(spent: Token, now) -> int:
    """A refresh token already spent (rotated or revoked) came back: it was copied, and either the
    portal or whoever copied it holds its successor. Chave cannot tell which, so every live token
    of that login (those issued from the same authorization code) is revoked (OAuth 2.0 Security
    BCP, refresh token rotation); audited as ``oidc.refresh_reuse``. Returns how many."""
    if spent.code_id is None:
        return 0
    revoked = Token.objects.filter(code_id=spent.code_id, revoked_at__isnull=True).update(revoked_at=now)
    if revoked:
        audit.record("oidc.refresh_reuse", outcome="revoked", citizen=spent.key.citizen if spent.key else None,
                     channel="oidc", client_id=spent.relying_party.client_id, revoked=revoked)
    return revoked


class S256Required(CodeChallenge):
    """PKCE for every client, S256 only (``plain`` gives no protection against a code thief)."""

    SUPPORTED_CODE_CHALLENGE_METHOD = ["S256"]
    DEFAULT_CODE_CHALLENGE_METHOD = "S256"

    def validate_code_challenge(self, grant, redirect_uri):
        data = grant.request.payload.data
        for name in ("code_challenge", "code_challenge_method"):
            if len(grant.request.payload.datalist.get(name, [])) > 1:
                raise InvalidRequestError(f"The parameter '{name}' may not be repeated.")
        if not data.get("code_challenge"):
            raise InvalidRequestError("PKCE is required: send 'code_challenge' with 'code_challenge_method=S256'.")
        if data.get("code_challenge_method") != "S256":
            raise InvalidRequestError("Only 'code_challenge_method=S256' is accepted.")
        super().validate_code_challenge(grant, redirect_uri)

    def validate_code_verifier(self, grant, result):
        if not grant.request.form.get("code_verifier"):
            raise InvalidRequestError("Missing 'code_verifier'.")
        super().validate_code_verifier(grant, result)


# FAPI 2.0 Security Profile §5.4.1: the only signature algorithms a FAPI 2.0 portal may use.
FAPI2_ALGORITHMS = ["PS256", "ES256"]

# Which endpoint the client is authenticating at (one request per context: thread-safe).
_CALLED_ENDPOINT: contextvars.ContextVar[str] = contextvars.ContextVar("chave_oidc_endpoint", default="token")
_ASSERTING_CLIENT: contextvars.ContextVar = contextvars.ContextVar("chave_oidc_asserting_client", default=None)


class PrivateKeyJwt(JWTBearerClientAssertion):
    """RFC 7523 client assertions, checked against our clock (Authlib's default reads the system
    time, which tests and a skewed host would not share), with the party's registered keys only.

    Refused: a party registered for another method, a bad signature, ``iss`` ≠ ``sub``, an
    audience naming neither the issuer nor the token endpoint (``aud`` may be either, or a list
    holding either: RFC 7523 §3, FAPI 2.0), an expired or not-yet-valid assertion (``leeway``
    seconds of skew allowed), a lifetime over ``oidc_client_assertion_max_seconds`` (an hour:
    Authlib's clients sign assertions valid that long) and a ``jti`` already used — each ``jti`` is
    kept until its assertion expires, so a replay is refused for as long as it could be accepted.
    Error descriptions are ours, never the library's (they may hold characters an OAuth error
    description must not).
    """

    CLIENT_AUTH_METHOD = "private_key_jwt"
    # What discovery advertises (token_endpoint_auth_signing_alg_values_supported); never "none"
    # nor an HMAC, whatever the key set holds.
    ALGORITHMS = ["RS256", "PS256", "ES256"]

    def get_audiences(self):
        # Authlib's and other clients name the endpoint they call (revocation, PAR, ...) by default.
        called = _CALLED_ENDPOINT.get()
        return [token_endpoint(), issuer(), *([endpoint_url(called)] if called in CLIENT_ENDPOINTS else [])]

    def __call__(self, query_client, request):
        reset = _CALLED_ENDPOINT.set(getattr(request, "chave_endpoint", "token"))
        reset_client = _ASSERTING_CLIENT.set(None)
        try:
            return super().__call__(query_client, request)
        finally:
            _CALLED_ENDPOINT.reset(reset)
            _ASSERTING_CLIENT.reset(reset_client)

    def resolve_client_public_key(self, client):
        _ASSERTING_CLIENT.set(client)
        if client.auth_method != RelyingParty.AuthMethod.PRIVATE_KEY_JWT:
            raise InvalidClientError(description="This client does not authenticate with private_key_jwt.")
        try:
            return _key_set(json.dumps(client.jwks if client.jwks else fetch_jwks(client.jwks_uri), sort_keys=True))
        except Exception as exc:  # noqa: BLE001 - unreachable or malformed keys: the client cannot be authenticated
            raise InvalidClientError(description="The client's keys could not be read.") from exc

    def process_assertion_claims(self, assertion, resolve_key):
        algorithms = self.ALGORITHMS
        client = _ASSERTING_CLIENT.get()  # set when its keys were resolved, just before
        if client is not None and client_settings(client).fapi2:
            algorithms = FAPI2_ALGORITHMS
        try:
            token = jwt.decode(assertion, resolve_key, algorithms=algorithms)
        except (JoseError, ValueError, TypeError) as exc:
            raise InvalidClientError(description="The client assertion's signature is not valid.") from exc
        self.verify_claims(token.claims)
        return token.claims

    def verify_claims(self, claims):
        now = int(clock.now().timestamp())
        registry = jwt.JWTClaimsRegistry(
            now=now, leeway=self.leeway,
            iss={"essential": True}, sub={"essential": True}, exp={"essential": True},
            aud={"essential": True, "values": self.get_audiences()},
        )
        try:
            registry.validate(claims)
        except JoseError as exc:
            claim = getattr(exc, "claim", None)
            detail = f" ('{claim}')" if isinstance(claim, str) and claim.isidentifier() else ""
            raise InvalidClientError(description=f"The client assertion's claims are not valid{detail}.") from exc
        if claims["sub"] != claims["iss"]:
            raise InvalidClientError(description="The client assertion's 'iss' and 'sub' must both be the client_id.")
        exp, iat = claims["exp"], claims.get("iat", now)
        lifetime = policy.get("oidc_client_assertion_max_seconds")
        if not isinstance(iat, (int, float)) or exp - min(iat, now) > lifetime + self.leeway:
            # A long-lived assertion would have to be remembered for long (replay): refuse it.
            raise InvalidClientError(description="The client assertion lives too long.")
        jti = claims.get("jti")
        if not isinstance(jti, str) or not jti or len(jti) > 255:
            raise InvalidClientError(description="The client assertion needs a 'jti'.")
        if not self.validate_jti(claims, jti):
            raise InvalidClientError(description="The client assertion was already used.")

    def validate_jti(self, claims, jti):
        client = _ASSERTING_CLIENT.get()  # the client whose keys verified the assertion, read just before
        if client is None or client.client_id != claims.get("sub"):
            client = _CLIENT.first(claims["sub"]) if isinstance(claims.get("sub"), str) else None
        if client is None:
            return False
        expires_at = dt.datetime.fromtimestamp(claims["exp"], tz=dt.timezone.utc) + dt.timedelta(seconds=self.leeway)
        try:
            with transaction.atomic():
                _NEW_ASSERTION.create(relying_party=client, jti=jti, expires_at=expires_at)
        except IntegrityError:
            return False
        return True


def forget_expired_assertions(now: dt.datetime) -> int:
    """Forget the ``jti`` of assertions past their expiry (kept with the leeway added;
    :func:`chave.ops.expiry.forget_expired`)."""
    return ClientAssertion.objects.filter(expires_at__lt=now).delete()[0]


@functools.lru_cache(maxsize=64)
def _fetch(uri: str, bucket: int) -> dict:
    with urllib.request.urlopen(uri, timeout=settings.CHAVE_HTTP_TIMEOUT) as response:  # noqa: S310 - registered https URI
        return json.loads(response.read(256 * 1024))


@functools.lru_cache(maxsize=256)
def _key_set(jwks: str) -> KeySet:
    """A party's keys, imported once per process for the same JSON (a changed key set is new JSON)."""
    return KeySet.import_key_set(json.loads(jwks))


def fetch_jwks(uri: str) -> dict:
    """A party's published keys, cached for five minutes (a rotation shows up within that)."""
    return _fetch(uri, int(clock.now().timestamp() // 300))


def code_seconds(client: RelyingParty) -> int:
    """How long a code lives: ``oidc_code_seconds``, and at most ``oidc_fapi2_code_seconds`` for a
    FAPI 2.0 portal."""
    seconds = policy.get("oidc_code_seconds")
    return min(seconds, policy.get("oidc_fapi2_code_seconds")) if client_settings(client).fapi2 else seconds


class CodeGrant(grants.AuthorizationCodeGrant):
    TOKEN_ENDPOINT_AUTH_METHODS = ["client_secret_basic", "private_key_jwt"]

    @staticmethod
    def validate_no_multiple_request_parameter(request):
        """Only what decides where an error may be sent is checked here (a repeated one gets the
        citizen a page); any other repeated parameter is answered at the validated redirect URI
        (the authorize view's own check, RFC 6749 §3.1)."""
        for name in ("client_id", "redirect_uri", "response_type"):
            if len(request.payload.datalist.get(name, [])) > 1:
                raise InvalidRequestError(f"The parameter '{name}' may not be repeated.")

    def generate_token(self, user=None, scope=None, grant_type=None, expires_in=None, include_refresh_token=True):
        """A refresh token only when the code's scope holds ``offline_access`` (it does only for a
        portal allowed offline access: :func:`chave.oidc.claims.allowed_scope`), or for a portal
        allowed offline access that keeps the refresh tokens it had before asking was needed
        (``always_refresh``)."""
        from .models import client_settings

        offline = claims_module.OFFLINE_ACCESS in claims_module.scope_list(scope)
        if not offline and self.request.client is not None:
            settings_row = client_settings(self.request.client)
            offline = settings_row.offline_access and settings_row.always_refresh
        return super().generate_token(user=user, scope=scope, grant_type=grant_type, expires_in=expires_in,
                                      include_refresh_token=include_refresh_token and offline)

    def save_authorization_code(self, code, request):
        extra = request.chave  # set by the authorize view: what the login and consent decided
        now = clock.now()
        data = request.payload.data
        return _NEW_CODE.create(
            code_hash=token_hash(code),
            relying_party=request.client,
            key=request.user,
            sso_session=extra["sso_session"],
            redirect_uri=request.payload.redirect_uri,
            scope=request.scope or "",
            attributes=extra["attributes"],
            withheld=extra["withheld"],
            claims_request=extra.get("claims_request"),
            nonce=data.get("nonce") or "",
            code_challenge=data.get("code_challenge"),
            code_challenge_method=data.get("code_challenge_method"),
            acr=extra["acr"],
            amr=extra["amr"],
            auth_time=extra["auth_time"],
            dpop_jkt=data.get("dpop_jkt") or "",
            created_at=now,
            expires_at=now + dt.timedelta(seconds=code_seconds(request.client)),
        )

    def query_authorization_code(self, code, client):
        """The party's unexpired, unused code; a used one is answered as reuse (its tokens
        revoked). The code is claimed when the tokens are saved (``save_token``)."""
        if not isinstance(code, str) or len(code) > 256:
            return None
        row = _CODE.first(token_hash(code), client.pk)
        if row is None:
            return None
        now = clock.now()
        if row.used_at is not None:
            revoke_if_reused(row, now)
            return None
        if row.expires_at <= now:
            return None
        return row

    def delete_authorization_code(self, authorization_code):
        """Nothing to do: the code was claimed (marked used) when it was redeemed."""

    def authenticate_user(self, authorization_code):
        key = authorization_code.key
        if key.effective_status(clock.now()) not in (KeyStatus.ACTIVE, KeyStatus.LOCKED):
            return None
        return key


class RefreshGrant(grants.RefreshTokenGrant):
    """Refresh tokens rotate at each use; a narrower ``scope`` narrows what the new access token
    releases at userinfo (and in the new ID token, issued at every refresh of an ``openid``
    grant: Core §12.2); every refusal is ``invalid_grant`` with a sentence saying why."""

    TOKEN_ENDPOINT_AUTH_METHODS = ["client_secret_basic", "private_key_jwt"]
    INCLUDE_NEW_REFRESH_TOKEN = True

    def _validate_request_token(self, client):
        refresh_token = self.request.form.get("refresh_token")
        if not refresh_token:
            raise InvalidRequestError("Send the 'refresh_token'.")
        self._refusal = "The refresh token is not valid."
        token = self.authenticate_refresh_token(refresh_token)
        if token is not None and not token.check_client(client):
            token, self._refusal = None, "The refresh token was issued to another client."
        if token is None:
            raise InvalidGrantError(self._refusal)
        return token

    def _validate_token_scope(self, token):
        # Scopes the portal may not have at all are ignored, as at the authorization endpoint (what
        # Authlib's client sends at refresh is the scope it first asked for); asking for more than
        # the sign-in granted is refused (RFC 6749 §6).
        asked = set(claims_module.scope_list(claims_module.allowed_scope(self.request.client,
                                                                         self.request.payload.scope)))
        if asked and not asked <= set(claims_module.scope_list(token.get_scope())):
            raise InvalidScopeError("A refresh may only ask for scopes the sign-in granted, or fewer.")

    def authenticate_refresh_token(self, refresh_token):
        """The live refresh token (rotated when the new tokens are saved, so that of two concurrent
        uses only one succeeds). None (``invalid_grant``) when unknown, used, revoked, expired, its
        SSO session ended, or its key no longer usable; ``_refusal`` says which."""
        if not isinstance(refresh_token, str) or len(refresh_token) > 256:
            return None
        row = Token.objects.select_related("key__citizen", "sso_session", "code").filter(
            refresh_token_hash=token_hash(refresh_token)
        ).first()
        now = clock.now()
        if row is not None and row.revoked_at is not None:
            revoke_family_on_reuse(row, now)
            self._refusal = ("The refresh token was already used or revoked: every token of this sign-in is "
                             "revoked now (reuse detection).")
            return None
        if row is None or row.refresh_expires_at is None or row.key_id is None:
            return None
        if row.refresh_expires_at <= now:
            self._refusal = "The refresh token has expired."
            return None
        if row.sso_session_id and row.sso_session.ended_at is not None:
            self._refusal = "The citizen signed out: the refresh token no longer works."
            return None
        if row.key.effective_status(now) not in (KeyStatus.ACTIVE, KeyStatus.LOCKED):
            self._refusal = "The citizen's key can no longer be used."
            return None
        return row

    def authenticate_user(self, refresh_token):
        key = refresh_token.key
        if key is None or key.effective_status(clock.now()) not in (KeyStatus.ACTIVE, KeyStatus.LOCKED):
            return None
        return key

    def revoke_old_credential(self, refresh_token):
        """Nothing to do: the old refresh token was revoked when the new tokens were saved."""


# The scope of integrators' service tokens for the signing APIs (issue 6: CSC's oauth2client mode).
SERVICE_SCOPE = "csc"


class ServiceTokenGrant(grants.ClientCredentialsGrant):
    """``client_credentials`` for approved parties calling the signing APIs: scope ``csc`` only (the
    default), no citizen behind the token, no refresh token; each token issued is audited."""

    TOKEN_ENDPOINT_AUTH_METHODS = ["client_secret_basic", "private_key_jwt"]

    def validate_requested_scope(self):
        if claims_module.scope_list(self.request.payload.scope) not in ([], [SERVICE_SCOPE]):
            raise InvalidScopeError(f"Only the scope '{SERVICE_SCOPE}' is issued to clients.")

    def generate_token(self, **kwargs):
        token = super().generate_token(**kwargs)
        token["scope"] = SERVICE_SCOPE  # the party's attribute scopes do not apply to service tokens
        return token

    def create_token_response(self):
        response = super().create_token_response()
        audit.record("oidc.token", outcome="ok", client_id=self.request.client.client_id,
                     grant="client_credentials", scope=SERVICE_SCOPE)
        return response


def id_token(client: RelyingParty, source, access_token: str, *, attributes: list[str], nonce: str = "") -> str:
    """An ID token for ``client`` about the login behind ``source`` (an authorization code, or the
    refresh token a refresh spends: then ``auth_time``, ``acr``, ``amr`` and ``sid`` are the
    original login's, and there is no ``nonce``, Core §12.2), signed with the provider's active key
    for the party's algorithm. Claims the request's ``claims`` parameter named for the ID token
    are included, within ``attributes`` (the rest are at userinfo)."""
    code: AuthorizationCode | None = source if isinstance(source, AuthorizationCode) else source.code
    row = keys.active_key(client.id_token_alg)
    now = int(clock.now().timestamp())
    id_claims = {
        "iss": issuer(),
        "aud": client.client_id,
        "sub": subject(client, source.key.citizen),
        "iat": now,
        "exp": now + policy.get("oidc_id_token_seconds"),
        "auth_time": int(source.auth_time.timestamp()),
        "acr": source.acr,
        "amr": code.get_amr() if code is not None else [],
    }
    if nonce:
        id_claims["nonce"] = nonce
    if source.sso_session_id:
        id_claims["sid"] = source.sso_session.sid
    at_hash = create_half_hash(access_token, client.id_token_alg)
    if at_hash is not None:
        id_claims["at_hash"] = at_hash.decode()
    claims_request = code.claims_request if code is not None else None
    wanted = set(((claims_request or {}).get("id_token") or {}).keys())
    if wanted:
        id_claims.update(claims_module.claims_for(source.key, attributes, source.withheld, only=wanted))
    header = {"alg": client.id_token_alg, "kid": row.kid, "typ": "JWT"}
    return jwt.encode(header, id_claims, keys.private_key(row), algorithms=[client.id_token_alg])


class OpenIdCode(oidc_grants.OpenIDCode):
    """``nonce`` is optional (PKCE binds the code to the browser); a ``nonce`` the portal already
    used is still refused (Authlib's ``exists_nonce``), and one sent comes back in the ID token."""

    def __init__(self):
        super().__init__(require_nonce=False)

    def exists_nonce(self, nonce, request):
        if not isinstance(nonce, str):
            return AuthorizationCode.objects.filter(relying_party=request.client, nonce=nonce).exists()
        return bool(_NONCE_USED.all(request.client.pk, nonce))

    def encode_id_token(self, token, request):
        code: AuthorizationCode = request.authorization_code
        return id_token(request.client, code, token["access_token"], attributes=code.attributes, nonce=code.nonce)


class OpenIdRefresh:
    """A new ID token at every refresh of a grant that has the ``openid`` scope (Core §12.2)."""

    def __call__(self, grant):
        grant.register_hook("after_create_token_response", self.process_token)

    def process_token(self, grant, response):
        _status, token, _headers = response
        if "openid" in claims_module.scope_list(token.get("scope")):
            previous: Token = grant.request.refresh_token
            attributes = _attributes_for(grant.request.client, token.get("scope", ""), previous)
            token["id_token"] = id_token(grant.request.client, previous, token["access_token"],
                                         attributes=attributes)
        return token


def find_token(value, hint: str | None = None) -> Token | None:
    """The token row an access or refresh token string belongs to (either kind, ``hint`` first)."""
    if not isinstance(value, str) or not value or len(value) > 256:
        return None
    digest = token_hash(value)
    rows = Token.objects.select_related("relying_party", "key__citizen", "code", "sso_session")
    if hint == "refresh_token":
        return rows.filter(refresh_token_hash=digest).first() or rows.filter(access_token_hash=digest).first()
    return rows.filter(access_token_hash=digest).first() or rows.filter(refresh_token_hash=digest).first()


def _presented_as(row: Token, value: str) -> str:
    return "refresh_token" if row.refresh_token_hash == token_hash(value) else "access_token"


class Revocation(RevocationEndpoint):
    """Token revocation (RFC 7009), by the client the token was issued to.

    Revoking a refresh token ends that grant: it and every token of the same sign-in are revoked.
    Revoking an access token ends that access token only (the portal may still refresh). An
    unknown, expired or already revoked token is answered 200 as well (§2.2). Audited as
    ``oidc.revoke``.
    """

    CLIENT_AUTH_METHODS = ["client_secret_basic", "private_key_jwt"]

    def authenticate_endpoint_client(self, request):
        request.chave_endpoint = "revocation"
        return super().authenticate_endpoint_client(request)

    def check_params(self, request, client):
        if not request.form.get("token"):
            raise InvalidRequestError("Send the 'token' to revoke.")
        super().check_params(request, client)

    def authenticate_token(self, request, client):
        self.check_params(request, client)
        token = self.query_token(request.form["token"], request.form.get("token_type_hint"))
        if token is not None and not token.check_client(client):
            raise InvalidGrantError("The token was issued to another client.")
        if token is not None:
            token.presented_as = _presented_as(token, request.form["token"])
        return token

    def query_token(self, token_string, token_type_hint):
        return find_token(token_string, token_type_hint)

    def revoke_token(self, token, request):
        now = clock.now()
        if token.presented_as == "refresh_token":
            rows = Token.objects.filter(code_id=token.code_id) if token.code_id else Token.objects.filter(pk=token.pk)
            revoked = rows.filter(revoked_at__isnull=True).update(revoked_at=now)
        else:
            revoked = Token.objects.filter(pk=token.pk, expires_at__gt=now).update(expires_at=now)
        audit.record("oidc.revoke", outcome="ok", citizen=token.key.citizen if token.key_id else None,
                     client_id=token.relying_party.client_id, kind=token.presented_as, revoked=revoked)


class Introspection(IntrospectionEndpoint):
    """Token introspection (RFC 7662) for resource servers: a portal registered as a resource server
    may introspect any access token; any client may introspect its own tokens. Anything else, and
    every token not live, is ``{"active": false}``. Refresh tokens are not introspected (they are
    the client's, never a resource server's)."""

    CLIENT_AUTH_METHODS = ["client_secret_basic", "private_key_jwt"]

    def authenticate_endpoint_client(self, request):
        request.chave_endpoint = "introspection"
        return super().authenticate_endpoint_client(request)

    def check_params(self, request, client):
        if not request.form.get("token"):
            raise InvalidRequestError("Send the 'token' to introspect.")
        super().check_params(request, client)

    def authenticate_token(self, request, client):
        self.check_params(request, client)
        token = self.query_token(request.form["token"], request.form.get("token_type_hint"))
        if token is not None and self.check_permission(token, client, request):
            return token
        return None

    def query_token(self, token_string, token_type_hint):
        row = find_token(token_string, token_type_hint)
        if row is None or _presented_as(row, token_string) != "access_token":
            return None
        return row

    def check_permission(self, token, client, request):
        return token.check_client(client) or client_settings(client).resource_server

    def create_introspection_payload(self, token):
        if token is None or token.is_revoked() or token.is_expired() or not token.relying_party.is_approved:
            return {"active": False}
        if token.key_id and token.key.effective_status(clock.now()) not in (KeyStatus.ACTIVE, KeyStatus.LOCKED):
            return {"active": False}
        return {"active": True, **self.introspect_token(token)}

    def introspect_token(self, token):
        party = token.relying_party
        body = {
            "iss": issuer(),
            "client_id": party.client_id,
            "scope": token.scope,
            "token_type": token.token_type,
            "iat": int(token.issued_at.timestamp()),
            "exp": int(token.expires_at.timestamp()),
        }
        if token.key_id:
            # The subject as the portal the token was issued to knows the citizen.
            body["sub"] = subject(party, token.key.citizen)
            body["acr"] = token.acr
            if token.auth_time:
                body["auth_time"] = int(token.auth_time.timestamp())
        if token.dpop_jkt:
            body["cnf"] = {"jkt": token.dpop_jkt}
        return body


@functools.lru_cache(maxsize=1)
def server() -> ChaveAuthorizationServer:
    authorization_server = ChaveAuthorizationServer()
    authorization_server.register_client_auth_method(PrivateKeyJwt.CLIENT_AUTH_METHOD, PrivateKeyJwt())
    authorization_server.register_grant(CodeGrant, [S256Required(required=True), OpenIdCode()])
    authorization_server.register_grant(RefreshGrant, [OpenIdRefresh()])
    authorization_server.register_grant(ServiceTokenGrant)
    authorization_server.register_endpoint(Revocation)
    authorization_server.register_endpoint(Introspection)
    return authorization_server

