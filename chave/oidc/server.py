"""The OAuth 2.0 / OpenID Connect authorization server, built on Authlib.

Authlib does the protocol (request validation, grants, client authentication, PKCE, error
responses); this module binds it to our models and rules:

- only approved parties exist for the server (:meth:`ChaveAuthorizationServer.query_client`);
- authorization code flow only, PKCE with S256 required of every client, ``nonce`` required;
- codes are single use: the first redemption claims the code atomically, a second one finds it
  used and revokes every token the code issued;
- clients authenticate as registered: ``private_key_jwt`` (RFC 7523, ``jti`` single use) or
  ``client_secret_basic``;
- ID tokens carry ``sub`` (pairwise by default), ``acr``, ``amr``, ``auth_time``, ``sid``,
  ``nonce``, ``at_hash`` and the claims asked for in the ``claims`` parameter's ``id_token``
  section, signed with the provider's active key for the party's algorithm (``kid`` set).
"""

from __future__ import annotations

import datetime as dt
import functools
import json
import secrets
import urllib.request

from authlib.common.urls import add_params_to_uri
from authlib.integrations.django_oauth2 import AuthorizationServer
from authlib.oauth2.rfc6749 import (
    InvalidClientError,
    InvalidGrantError,
    InvalidRequestError,
    InvalidScopeError,
    grants,
)
from authlib.oauth2.rfc6750 import BearerTokenGenerator
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
from chave.federation.attributes import subject
from chave.identity.models import KeyStatus

from . import claims as claims_module
from . import keys
from .models import AuthorizationCode, ClientAssertion, RelyingParty, Token, token_hash


def issuer() -> str:
    return settings.CHAVE_PUBLIC_URL.rstrip("/")


def token_endpoint() -> str:
    return issuer() + "/oidc/token"


class ChaveAuthorizationServer(AuthorizationServer):
    def __init__(self):
        super().__init__(RelyingParty, Token)

    def query_client(self, client_id):
        if not isinstance(client_id, str) or len(client_id) > 64:
            return None
        return RelyingParty.objects.filter(client_id=client_id, state=RelyingParty.State.APPROVED).first()

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
        refresh = token.get("refresh_token")
        expired = False
        with transaction.atomic():
            if code is not None:
                claimed = AuthorizationCode.objects.filter(
                    pk=code.pk, used_at__isnull=True, expires_at__gt=now
                ).update(used_at=now)
                if claimed != 1:
                    expired = not revoke_if_reused(code, now)
            elif previous is not None:
                claimed = Token.objects.filter(pk=previous.pk, revoked_at__isnull=True).update(revoked_at=now)
            else:
                claimed = 1
            if claimed == 1:
                row = Token.objects.create(
                    access_token_hash=token_hash(token["access_token"]),
                    refresh_token_hash=token_hash(refresh) if refresh else None,
                    relying_party=request.client,
                    key=request.user if source is not None else None,
                    sso_session=getattr(source, "sso_session", None),
                    code=code or getattr(previous, "code", None),
                    scope=token.get("scope", ""),
                    attributes=list(getattr(source, "attributes", []) or []),
                    withheld=list(getattr(source, "withheld", []) or []),
                    acr=getattr(source, "acr", "") or "",
                    auth_time=getattr(source, "auth_time", None),
                    issued_at=now,
                    expires_at=now + dt.timedelta(seconds=token["expires_in"]),
                    refresh_expires_at=(now + dt.timedelta(seconds=policy.get("oidc_refresh_token_seconds"))
                                        if refresh else None),
                )
        if claimed != 1:
            if expired:
                raise InvalidGrantError("The code has expired.")
            raise InvalidGrantError("The code was already used." if code is not None
                                    else "The refresh token was already used.")
        return row


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
        if not data.get("code_challenge"):
            raise InvalidRequestError("PKCE is required: send 'code_challenge' with 'code_challenge_method=S256'.")
        if data.get("code_challenge_method") != "S256":
            raise InvalidRequestError("Only 'code_challenge_method=S256' is accepted.")
        super().validate_code_challenge(grant, redirect_uri)

    def validate_code_verifier(self, grant, result):
        if not grant.request.form.get("code_verifier"):
            raise InvalidRequestError("Missing 'code_verifier'.")
        super().validate_code_verifier(grant, result)


class PrivateKeyJwt(JWTBearerClientAssertion):
    """RFC 7523 client assertions, checked against our clock (Authlib's default reads the system
    time, which tests and a skewed host would not share), with the party's registered keys only.

    Refused: a party registered for another method, a bad signature, ``iss`` ≠ ``sub``, an
    audience other than the token endpoint or the issuer, an expired or not-yet-valid assertion
    (``leeway`` seconds of skew allowed), a lifetime over ``oidc_client_assertion_max_seconds``
    and a ``jti`` already used. Error descriptions are ours, never the library's (they may hold
    characters an OAuth error description must not).
    """

    CLIENT_AUTH_METHOD = "private_key_jwt"
    # What discovery advertises (token_endpoint_auth_signing_alg_values_supported); never "none"
    # nor an HMAC, whatever the key set holds.
    ALGORITHMS = ["RS256", "PS256", "ES256"]

    def get_audiences(self):
        return [token_endpoint(), issuer()]

    def resolve_client_public_key(self, client):
        if client.auth_method != RelyingParty.AuthMethod.PRIVATE_KEY_JWT:
            raise InvalidClientError(description="This client does not authenticate with private_key_jwt.")
        try:
            return KeySet.import_key_set(client.jwks if client.jwks else fetch_jwks(client.jwks_uri))
        except Exception as exc:  # noqa: BLE001 - unreachable or malformed keys: the client cannot be authenticated
            raise InvalidClientError(description="The client's keys could not be read.") from exc

    def process_assertion_claims(self, assertion, resolve_key):
        try:
            token = jwt.decode(assertion, resolve_key, algorithms=self.ALGORITHMS)
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
        client = RelyingParty.objects.filter(client_id=claims.get("sub")).first()
        if client is None:
            return False
        now = clock.now()
        ClientAssertion.objects.filter(expires_at__lt=now - dt.timedelta(seconds=self.leeway)).delete()
        expires_at = dt.datetime.fromtimestamp(claims["exp"], tz=dt.timezone.utc) + dt.timedelta(seconds=self.leeway)
        try:
            with transaction.atomic():
                ClientAssertion.objects.create(relying_party=client, jti=jti, expires_at=expires_at)
        except IntegrityError:
            return False
        return True


@functools.lru_cache(maxsize=64)
def _fetch(uri: str, bucket: int) -> dict:
    with urllib.request.urlopen(uri, timeout=settings.CHAVE_HTTP_TIMEOUT) as response:  # noqa: S310 - registered https URI
        return json.loads(response.read(256 * 1024))


def fetch_jwks(uri: str) -> dict:
    """A party's published keys, cached for five minutes (a rotation shows up within that)."""
    return _fetch(uri, int(clock.now().timestamp() // 300))


class CodeGrant(grants.AuthorizationCodeGrant):
    TOKEN_ENDPOINT_AUTH_METHODS = ["client_secret_basic", "private_key_jwt"]

    def save_authorization_code(self, code, request):
        extra = request.chave  # set by the authorize view: what the login and consent decided
        now = clock.now()
        data = request.payload.data
        return AuthorizationCode.objects.create(
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
            created_at=now,
            expires_at=now + dt.timedelta(seconds=policy.get("oidc_code_seconds")),
        )

    def query_authorization_code(self, code, client):
        """The party's unexpired, unused code; a used one is answered as reuse (its tokens
        revoked). The code is claimed when the tokens are saved (``save_token``)."""
        if not isinstance(code, str) or len(code) > 256:
            return None
        row = AuthorizationCode.objects.select_related("key__citizen", "sso_session").filter(
            code_hash=token_hash(code), relying_party=client
        ).first()
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
    TOKEN_ENDPOINT_AUTH_METHODS = ["client_secret_basic", "private_key_jwt"]
    INCLUDE_NEW_REFRESH_TOKEN = True

    def authenticate_refresh_token(self, refresh_token):
        """The live refresh token (rotated when the new tokens are saved, so that of two concurrent
        uses only one succeeds). None (``invalid_grant``) when unknown, used, revoked, expired, its
        SSO session ended, or its key no longer usable."""
        if not isinstance(refresh_token, str) or len(refresh_token) > 256:
            return None
        row = Token.objects.select_related("key__citizen", "sso_session", "code").filter(
            refresh_token_hash=token_hash(refresh_token)
        ).first()
        now = clock.now()
        if row is not None and row.revoked_at is not None:
            revoke_family_on_reuse(row, now)
            return None
        if row is None or row.refresh_expires_at is None or row.refresh_expires_at <= now or row.key_id is None:
            return None
        if row.sso_session_id and row.sso_session.ended_at is not None:
            return None
        if row.key.effective_status(now) not in (KeyStatus.ACTIVE, KeyStatus.LOCKED):
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


class OpenIdCode(oidc_grants.OpenIDCode):
    def __init__(self):
        super().__init__(require_nonce=True)

    def exists_nonce(self, nonce, request):
        return AuthorizationCode.objects.filter(relying_party=request.client, nonce=nonce).exists()

    def encode_id_token(self, token, request):
        client: RelyingParty = request.client
        code: AuthorizationCode = request.authorization_code
        row = keys.active_key(client.id_token_alg)
        now = int(clock.now().timestamp())
        id_claims = {
            "iss": issuer(),
            "aud": client.client_id,
            "sub": subject(client, code.key.citizen),
            "iat": now,
            "exp": now + policy.get("oidc_id_token_seconds"),
            "auth_time": code.get_auth_time(),
            "acr": code.acr,
            "amr": code.get_amr(),
        }
        if code.nonce:
            id_claims["nonce"] = code.nonce
        if code.sso_session_id:
            id_claims["sid"] = code.sso_session.sid
        at_hash = create_half_hash(token["access_token"], client.id_token_alg)
        if at_hash is not None:
            id_claims["at_hash"] = at_hash.decode()
        wanted = set(((code.claims_request or {}).get("id_token") or {}).keys())
        if wanted:
            # Only the claims the request named for the ID token (the rest are at userinfo).
            id_claims.update(claims_module.claims_for(code.key, code.attributes, code.withheld, only=wanted))
        header = {"alg": client.id_token_alg, "kid": row.kid, "typ": "JWT"}
        return jwt.encode(header, id_claims, keys.private_key(row), algorithms=[client.id_token_alg])


@functools.lru_cache(maxsize=1)
def server() -> ChaveAuthorizationServer:
    authorization_server = ChaveAuthorizationServer()
    authorization_server.register_client_auth_method(PrivateKeyJwt.CLIENT_AUTH_METHOD, PrivateKeyJwt())
    authorization_server.register_grant(CodeGrant, [S256Required(required=True), OpenIdCode()])
    authorization_server.register_grant(RefreshGrant)
    authorization_server.register_grant(ServiceTokenGrant)
    return authorization_server

