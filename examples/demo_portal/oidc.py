"""The relying party's side of OpenID Connect, as a portal integrating with Chave writes it.

Everything a careful portal does, with ``joserfc`` for the JOSE work and the standard library for
HTTP:

- discovery (``/.well-known/openid-configuration``), its ``issuer`` checked against the one
  configured; the provider's JWKS fetched from its ``jwks_uri`` and fetched again when an unknown
  ``kid`` shows up (the provider rotated its keys);
- the authorization request: ``state`` (against login CSRF), ``nonce`` (binds the ID token to this
  browser's request) and PKCE with S256 (binds the code to this portal's request);
- the token request authenticated with ``private_key_jwt`` (RFC 7523): a short-lived assertion
  signed with the portal's own RSA key, whose public half the portal publishes at its JWKS URI;
- the ID token validated: signature against the provider's JWKS, ``iss``, ``aud`` (and ``azp``),
  ``exp``, ``iat``, ``nonce``, ``at_hash``;
- userinfo with the access token, its ``sub`` checked against the ID token's;
- back-channel logout tokens validated (OpenID Connect Back-Channel Logout 1.0 §2.6).
"""

from __future__ import annotations

import base64
import hashlib
import json
import os
import secrets
import threading
import time
import urllib.error
import urllib.parse
import urllib.request
from dataclasses import dataclass
from pathlib import Path

from joserfc import jwt
from joserfc.errors import InvalidKeyIdError, JoseError
from joserfc.jwk import KeySet, RSAKey

# Algorithms the portal accepts on tokens signed by the provider (never "none" nor an HMAC).
PROVIDER_ALGORITHMS = ["RS256", "ES256"]
ASSERTION_ALGORITHM = "RS256"
# How long a client assertion lives: it is used once, right away.
ASSERTION_SECONDS = 60
# Clock skew tolerated between the portal and the provider.
LEEWAY_SECONDS = 60
# A logout token older than this is refused (Back-Channel Logout §2.6: the RP may reject old ones).
LOGOUT_TOKEN_MAX_AGE_SECONDS = 300
DISCOVERY_CACHE_SECONDS = 300
# An unknown kid makes the portal fetch the provider's JWKS again, but not more often than this
# (tokens with made-up key ids must not turn the portal against the provider).
KEYS_REFETCH_SECONDS = 10
BACKCHANNEL_LOGOUT_EVENT = "http://schemas.openid.net/event/backchannel-logout"
JWT_BEARER = "urn:ietf:params:oauth:client-assertion-type:jwt-bearer"
MAX_RESPONSE_BYTES = 256 * 1024


class ProviderUnreachable(Exception):
    """The provider could not be reached, or answered with something that is not JSON."""


class LoginRefused(Exception):
    """The provider refused a request (an OAuth error code and description)."""

    def __init__(self, error: str, description: str = ""):
        super().__init__(f"{error}: {description}" if description else error)
        self.error, self.description = error, description


class InvalidToken(Exception):
    """A token from the provider failed a check; ``reason`` says which (safe to show)."""

    def __init__(self, reason: str):
        super().__init__(reason)
        self.reason = reason


# --- HTTP ----------------------------------------------------------------------------------------


def _read_json(response) -> dict:
    body = response.read(MAX_RESPONSE_BYTES + 1)
    if len(body) > MAX_RESPONSE_BYTES:
        raise ProviderUnreachable("the answer is too large")
    try:
        value = json.loads(body)
    except ValueError as exc:
        raise ProviderUnreachable("the answer is not JSON") from exc
    if not isinstance(value, dict):
        raise ProviderUnreachable("the answer is not a JSON object")
    return value


def http_json(url: str, *, data: dict | None = None, headers: dict | None = None, timeout: float = 10
              ) -> tuple[int, dict]:
    """GET (or POST a form, when ``data``) and read a JSON object: ``(status, body)``.

    A 4xx answer is returned (it carries an OAuth error); anything else that is not a 2xx JSON
    object raises :class:`ProviderUnreachable`.
    """
    body = urllib.parse.urlencode(data).encode() if data is not None else None
    request = urllib.request.Request(url, data=body, headers={"Accept": "application/json", **(headers or {})})
    try:
        with urllib.request.urlopen(request, timeout=timeout) as response:  # noqa: S310 - the configured provider
            return response.status, _read_json(response)
    except urllib.error.HTTPError as exc:
        if 400 <= exc.code < 500:
            try:
                return exc.code, _read_json(exc)
            except ProviderUnreachable:
                return exc.code, {"error": f"http_{exc.code}"}
        raise ProviderUnreachable(f"HTTP {exc.code}") from exc
    except (urllib.error.URLError, OSError) as exc:
        raise ProviderUnreachable(str(getattr(exc, "reason", exc))) from exc


def http_bytes(url: str, *, timeout: float = 10, limit: int = MAX_RESPONSE_BYTES) -> tuple[int, bytes]:
    """GET a document of at most ``limit`` bytes: ``(status, body)``; raises
    :class:`ProviderUnreachable` when it cannot be had."""
    request = urllib.request.Request(url)
    try:
        with urllib.request.urlopen(request, timeout=timeout) as response:  # noqa: S310 - the configured provider
            body = response.read(limit + 1)
            if len(body) > limit:
                raise ProviderUnreachable("the answer is too large")
            return response.status, body
    except urllib.error.HTTPError as exc:
        return exc.code, b""
    except (urllib.error.URLError, OSError) as exc:
        raise ProviderUnreachable(str(getattr(exc, "reason", exc))) from exc


# --- the portal's own key ---------------------------------------------------------------------


class PortalKey:
    """The portal's RSA key for ``private_key_jwt``: made once, kept in ``data_dir``.

    The private key never leaves the file (mode 0600); :meth:`public_jwks` is what the portal
    publishes at its JWKS URI, where the provider reads it to check the portal's assertions.
    """

    FILE_NAME = "portal-key.json"

    def __init__(self, key: RSAKey):
        self.key = key

    @classmethod
    def load_or_create(cls, data_dir: Path) -> PortalKey:
        data_dir = Path(data_dir)
        data_dir.mkdir(parents=True, exist_ok=True)
        path = data_dir / cls.FILE_NAME
        if not path.exists():
            key = RSAKey.generate_key(2048, private=True)
            key.ensure_kid()  # the RFC 7638 thumbprint
            fresh = data_dir / f".{cls.FILE_NAME}.{os.getpid()}.{secrets.token_hex(4)}"
            fd = os.open(fresh, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
            with os.fdopen(fd, "w") as out:
                json.dump(key.as_dict(private=True), out)
            try:
                os.link(fresh, path)  # atomic, and the first of two racing processes wins
            except FileExistsError:
                pass
            finally:
                os.unlink(fresh)
        key = RSAKey.import_key(json.loads(path.read_text()))
        key.ensure_kid()
        return cls(key)

    @property
    def kid(self) -> str:
        return self.key.kid

    def public_jwks(self) -> dict:
        return {"keys": [{**self.key.as_dict(private=False), "use": "sig", "alg": ASSERTION_ALGORITHM}]}

    def client_assertion(self, client_id: str, audience: str, now: int | None = None) -> str:
        """A ``private_key_jwt`` assertion for one token request (RFC 7523 §3)."""
        now = int(time.time()) if now is None else now
        claims = {"iss": client_id, "sub": client_id, "aud": audience, "iat": now, "exp": now + ASSERTION_SECONDS,
                  "jti": secrets.token_urlsafe(24)}
        return jwt.encode({"alg": ASSERTION_ALGORITHM, "kid": self.kid}, claims, self.key)


# --- the provider ---------------------------------------------------------------------------------


class Provider:
    """Chave as the portal sees it: its discovery document and its signing keys (both cached)."""

    REQUIRED = ("authorization_endpoint", "token_endpoint", "userinfo_endpoint", "jwks_uri")

    def __init__(self, issuer: str, *, timeout: float = 10):
        self.issuer = issuer.rstrip("/")
        self.timeout = timeout
        self._lock = threading.Lock()
        self._metadata: dict | None = None
        self._metadata_at = 0.0
        self._keys: KeySet | None = None
        self._refetched_at = float("-inf")

    def metadata(self) -> dict:
        with self._lock:
            if self._metadata is None or time.monotonic() - self._metadata_at > DISCOVERY_CACHE_SECONDS:
                status, body = http_json(self.issuer + "/.well-known/openid-configuration", timeout=self.timeout)
                if status != 200 or body.get("issuer") != self.issuer:
                    # OpenID Connect Discovery §4.3: the issuer must be exactly the one asked about.
                    raise ProviderUnreachable("the discovery document is not this issuer's")
                missing = [name for name in self.REQUIRED if not isinstance(body.get(name), str)]
                if missing:
                    raise ProviderUnreachable("the discovery document lacks " + ", ".join(missing))
                if "S256" not in body.get("code_challenge_methods_supported", []):
                    raise ProviderUnreachable("the provider does not support PKCE with S256")
                self._metadata, self._metadata_at = body, time.monotonic()
            return self._metadata

    def endpoint(self, name: str) -> str | None:
        return self.metadata().get(name)

    def keys(self, *, refresh: bool = False) -> KeySet:
        with self._lock:
            cached = self._keys
            if refresh and cached is not None:
                if time.monotonic() - self._refetched_at < KEYS_REFETCH_SECONDS:
                    return cached
                self._refetched_at = time.monotonic()
        if cached is not None and not refresh:
            return cached
        status, body = http_json(self.metadata()["jwks_uri"], timeout=self.timeout)
        try:
            keys = KeySet.import_key_set(body)
        except Exception as exc:  # noqa: BLE001 - any malformed key set is the same failure
            raise ProviderUnreachable("the provider's JWKS is not a key set") from exc
        with self._lock:
            self._keys = keys
        return keys

    def decode(self, token: str) -> jwt.Token:
        """Check a token's signature against the provider's keys (fetched again once for an
        unknown ``kid``). Raises :class:`InvalidToken`."""
        for refresh in (False, True):
            try:
                return jwt.decode(token, self.keys(refresh=refresh), algorithms=PROVIDER_ALGORITHMS)
            except InvalidKeyIdError:
                if refresh:
                    raise InvalidToken("signed with a key the provider does not publish")
            except (JoseError, ValueError, TypeError) as exc:
                raise InvalidToken("bad signature or format") from exc
        raise InvalidToken("bad signature or format")  # not reached


# --- the login ----------------------------------------------------------------------------------------


@dataclass(frozen=True)
class LoginRequest:
    """What the portal remembers, in the browser's session, about a login it started."""

    state: str
    nonce: str
    verifier: str
    started: float

    @classmethod
    def new(cls) -> LoginRequest:
        return cls(secrets.token_urlsafe(24), secrets.token_urlsafe(24), secrets.token_urlsafe(48), time.time())

    @property
    def challenge(self) -> str:
        return _b64(hashlib.sha256(self.verifier.encode()).digest())


def _b64(raw: bytes) -> str:
    return base64.urlsafe_b64encode(raw).rstrip(b"=").decode()


def authorization_url(provider: Provider, *, client_id: str, redirect_uri: str, scope: str,
                      login: LoginRequest, ui_locales: str | None = None) -> str:
    params = {
        "response_type": "code", "client_id": client_id, "redirect_uri": redirect_uri, "scope": scope,
        "state": login.state, "nonce": login.nonce,
        "code_challenge": login.challenge, "code_challenge_method": "S256",
    }
    if ui_locales:
        params["ui_locales"] = ui_locales
    return provider.endpoint("authorization_endpoint") + "?" + urllib.parse.urlencode(params)


def redeem(provider: Provider, key: PortalKey, *, client_id: str, redirect_uri: str, code: str,
           login: LoginRequest) -> dict:
    """The token request (``private_key_jwt``, PKCE verifier). Returns the token response;
    raises :class:`LoginRefused` with the provider's error."""
    token_endpoint = provider.endpoint("token_endpoint")
    status, body = http_json(token_endpoint, timeout=provider.timeout, data={
        "grant_type": "authorization_code", "code": code, "redirect_uri": redirect_uri,
        "code_verifier": login.verifier,
        "client_assertion_type": JWT_BEARER, "client_assertion": key.client_assertion(client_id, token_endpoint),
    })
    if status != 200 or not isinstance(body.get("id_token"), str) or not isinstance(body.get("access_token"), str):
        raise LoginRefused(str(body.get("error") or f"http_{status}"), str(body.get("error_description") or ""))
    return body


def at_hash(access_token: str) -> str:
    """OpenID Connect Core §3.1.3.6: the left half of the SHA-256 of the access token (RS256, ES256)."""
    return _b64(hashlib.sha256(access_token.encode()).digest()[:16])


def _registry(now: int, **options) -> jwt.JWTClaimsRegistry:
    return jwt.JWTClaimsRegistry(now=now, leeway=LEEWAY_SECONDS, **options)


def validate_id_token(provider: Provider, id_token: str, *, client_id: str, nonce: str,
                      access_token: str | None = None, now: int | None = None) -> dict:
    """The ID token's claims, once every check of OpenID Connect Core §3.1.3.7 passed.

    Raises :class:`InvalidToken` naming the failed check.
    """
    token = provider.decode(id_token)
    claims = token.claims
    now = int(time.time()) if now is None else now
    registry = _registry(
        now,
        iss={"essential": True, "value": provider.issuer},
        aud={"essential": True, "value": client_id},
        sub={"essential": True}, exp={"essential": True}, iat={"essential": True},
        nonce={"essential": True, "value": nonce},
    )
    try:
        registry.validate(claims)
    except JoseError as exc:
        raise InvalidToken(f"ID token claim '{getattr(exc, 'claim', '?')}'") from exc
    audiences = claims["aud"] if isinstance(claims["aud"], list) else [claims["aud"]]
    if (len(audiences) > 1 or "azp" in claims) and claims.get("azp") != client_id:
        raise InvalidToken("ID token claim 'azp'")
    if access_token is not None and "at_hash" in claims and claims["at_hash"] != at_hash(access_token):
        raise InvalidToken("ID token claim 'at_hash'")
    return claims


def userinfo(provider: Provider, access_token: str, *, subject: str) -> dict:
    """The userinfo claims; their ``sub`` must be the ID token's (Core §5.3.2)."""
    status, body = http_json(provider.endpoint("userinfo_endpoint"), timeout=provider.timeout,
                             headers={"Authorization": f"Bearer {access_token}"})
    if status != 200:
        raise LoginRefused(str(body.get("error") or f"http_{status}"), str(body.get("error_description") or ""))
    if body.get("sub") != subject:
        raise InvalidToken("userinfo 'sub' is not the ID token's")
    return body


def end_session_url(provider: Provider, *, id_token: str, post_logout_redirect_uri: str, client_id: str,
                    ui_locales: str | None = None) -> str | None:
    """RP-initiated logout (OpenID Connect RP-Initiated Logout 1.0 §2), or None when the
    provider does not advertise an ``end_session_endpoint``."""
    endpoint = provider.endpoint("end_session_endpoint")
    if not endpoint:
        return None
    params = {"id_token_hint": id_token, "post_logout_redirect_uri": post_logout_redirect_uri,
              "client_id": client_id, "state": secrets.token_urlsafe(16)}
    if ui_locales:
        params["ui_locales"] = ui_locales
    return endpoint + "?" + urllib.parse.urlencode(params)


def validate_logout_token(provider: Provider, logout_token: str, *, client_id: str, now: int | None = None) -> dict:
    """A back-channel logout token's claims, validated as Back-Channel Logout 1.0 §2.6 says:
    signature, ``typ`` (``logout+jwt`` when present), ``iss``, ``aud``, ``iat`` (not too old),
    ``exp``, ``jti``, the ``events`` member naming the back-channel logout event, a ``sid`` or a
    ``sub``, and no ``nonce`` (so that an ID token can never pass for one). Raises
    :class:`InvalidToken`."""
    token = provider.decode(logout_token)
    typ = token.header.get("typ")
    if typ is not None and str(typ).lower() not in ("logout+jwt", "application/logout+jwt"):
        raise InvalidToken("logout token 'typ'")
    claims = token.claims
    now = int(time.time()) if now is None else now
    registry = _registry(
        now,
        iss={"essential": True, "value": provider.issuer},
        aud={"essential": True, "value": client_id},
        iat={"essential": True}, exp={"essential": True}, jti={"essential": True},
    )
    try:
        registry.validate(claims)
    except JoseError as exc:
        raise InvalidToken(f"logout token claim '{getattr(exc, 'claim', '?')}'") from exc
    if not isinstance(claims["iat"], (int, float)) or now - claims["iat"] > LOGOUT_TOKEN_MAX_AGE_SECONDS:
        raise InvalidToken("logout token claim 'iat'")
    events = claims.get("events")
    if not isinstance(events, dict) or not isinstance(events.get(BACKCHANNEL_LOGOUT_EVENT), dict):
        raise InvalidToken("logout token claim 'events'")
    if not isinstance(claims.get("sid"), str) and not isinstance(claims.get("sub"), str):
        raise InvalidToken("logout token has neither 'sid' nor 'sub'")
    if "nonce" in claims:
        raise InvalidToken("logout token claim 'nonce'")
    return claims
