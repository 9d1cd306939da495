"""DPoP: sender-constrained tokens (OAuth 2.0 Demonstrating Proof of Possession, RFC 9449).

A client that sends a ``DPoP`` header (a JWT it signed with a key of its own, whose public half is
in the header) gets tokens bound to that key (``token_type`` ``DPoP``, the key's RFC 7638
thumbprint kept with them): each later use of the token must come with a fresh proof signed by
the same key, so a stolen token is of no use alone. Checked here, for every endpoint that takes
proofs (token, userinfo, the signing APIs):

- the header: ``typ`` ``dpop+jwt``, an asymmetric ``alg`` (PS256 or ES256, and RS256 unless the
  portal is FAPI 2.0), a public ``jwk`` (no private members), the signature by that key;
- the claims: ``htm`` the request's method, ``htu`` the URL called (no query), ``iat`` within
  ``oidc_dpop_proof_seconds`` of now, a ``jti`` never seen before (kept until the proof would
  be too old anyway), ``ath`` the access token's hash when one is presented;
- the ``nonce`` Chave gave (``DPoP-Nonce`` header, RFC 9449 §8): when ``oidc_dpop_nonce`` is on,
  a proof without the current nonce is answered ``use_dpop_nonce`` with a fresh one. Nonces are
  not stored: each is an HMAC of a time window, valid for that window and the next.
"""

from __future__ import annotations

import base64
import datetime as dt
import functools
import hashlib
import hmac
from dataclasses import dataclass

from django.conf import settings
from django.db import IntegrityError, transaction
from joserfc import jws, jwt
from joserfc.errors import JoseError
from joserfc.jwk import JWKRegistry

from chave import clock, policy
from chave.compiled import Inserter

from .models import DpopProof

_NEW_PROOF = Inserter(DpopProof)

ALGORITHMS = ["ES256", "PS256", "RS256"]
FAPI2_ALGORITHMS = ["ES256", "PS256"]
MAX_PROOF_LENGTH = 8192
_PRIVATE_MEMBERS = {"d", "p", "q", "dp", "dq", "qi", "oth", "k"}
_LEEWAY_SECONDS = 30


class _ProofRegistry(jws.JWSRegistry):
    # The proof's header carries the public key: an RSA key alone is over joserfc's 512 bytes.
    max_header_length = 4096


def _registry(algorithms: list[str]) -> jws.JWSRegistry:
    registry = _ProofRegistry(algorithms=algorithms)
    return registry


class DpopError(Exception):
    """A proof that cannot be accepted: ``error`` is ``invalid_dpop_proof`` or ``use_dpop_nonce``
    (then the answer carries a ``DPoP-Nonce`` header with :func:`current_nonce`)."""

    def __init__(self, error: str, description: str):
        super().__init__(description)
        self.error, self.description = error, description


@dataclass(frozen=True)
class Proof:
    jkt: str  # the RFC 7638 thumbprint of the proof's key
    alg: str


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def access_token_hash(access_token: str) -> str:
    """``ath``: the base64url SHA-256 of the access token (RFC 9449 §4.2)."""
    return _b64(hashlib.sha256(access_token.encode()).digest())


def _window(at: dt.datetime) -> int:
    return int(at.timestamp()) // policy.get("oidc_dpop_nonce_seconds")


def _nonce_for(window: int) -> str:
    digest = hmac.new(settings.CHAVE_KEY_SEAL_SECRET.encode(), f"dpop-nonce:{window}".encode(), hashlib.sha256)
    return _b64(digest.digest()[:18])


def current_nonce() -> str:
    """The nonce to give clients now (``DPoP-Nonce``)."""
    return _nonce_for(_window(clock.now()))


def _nonce_valid(nonce) -> bool:
    if not isinstance(nonce, str):
        return False
    window = _window(clock.now())
    return any(hmac.compare_digest(nonce, _nonce_for(w)) for w in (window, window - 1))


def nonce_required() -> bool:
    return bool(policy.get("oidc_dpop_nonce"))


def presented(request) -> str | None:
    """The request's ``DPoP`` header, or None. Two headers (joined by a comma) are malformed."""
    return request.headers.get("DPoP")


def verify(request, *, url: str, access_token: str | None = None, algorithms: list[str] = ALGORITHMS,
           require_nonce: bool | None = None) -> Proof:
    """Check the request's DPoP proof for a call of ``url`` (and of ``access_token``, when one is
    presented). Returns the :class:`Proof`; raises :class:`DpopError` saying what is wrong."""
    value = presented(request)
    if not value or "," in value or len(value) > MAX_PROOF_LENGTH:
        raise DpopError("invalid_dpop_proof", "Send exactly one DPoP proof in the DPoP header.")
    try:
        header = jws.extract_compact(value.encode(), registry=_registry(algorithms)).headers()
    except (JoseError, ValueError, TypeError, UnicodeError):
        raise DpopError("invalid_dpop_proof", "The DPoP proof is not a JWT.") from None
    if header.get("typ") != "dpop+jwt":
        raise DpopError("invalid_dpop_proof", "The DPoP proof's 'typ' must be 'dpop+jwt'.")
    if header.get("alg") not in algorithms:
        raise DpopError("invalid_dpop_proof", "The DPoP proof is signed with an algorithm Chave does not accept "
                                              f"(use one of {', '.join(algorithms)}).")
    jwk = header.get("jwk")
    if not isinstance(jwk, dict) or _PRIVATE_MEMBERS & set(jwk) or jwk.get("kty") not in ("EC", "RSA"):
        raise DpopError("invalid_dpop_proof", "The DPoP proof's 'jwk' must be a public EC or RSA key.")
    try:
        key, jkt = _key_of(jwk)
        claims = jwt.decode(value, key, registry=_registry([header["alg"]])).claims
    except (JoseError, ValueError, TypeError, KeyError):
        raise DpopError("invalid_dpop_proof", "The DPoP proof's signature is not valid.") from None
    if claims.get("htm") != request.method:
        raise DpopError("invalid_dpop_proof", "The DPoP proof's 'htm' is not the request's method.")
    if not isinstance(claims.get("htu"), str) or claims["htu"].split("?")[0].split("#")[0] != url:
        raise DpopError("invalid_dpop_proof", "The DPoP proof's 'htu' is not the URL called.")
    now = clock.now()
    iat = claims.get("iat")
    window = policy.get("oidc_dpop_proof_seconds")
    if not isinstance(iat, int) or isinstance(iat, bool) or not (
            now.timestamp() - window <= iat <= now.timestamp() + _LEEWAY_SECONDS):
        raise DpopError("invalid_dpop_proof", "The DPoP proof's 'iat' is not recent.")
    jti = claims.get("jti")
    if not isinstance(jti, str) or not jti or len(jti) > 255:
        raise DpopError("invalid_dpop_proof", "The DPoP proof needs a 'jti'.")
    if access_token is not None and not hmac.compare_digest(str(claims.get("ath", "")),
                                                            access_token_hash(access_token)):
        raise DpopError("invalid_dpop_proof", "The DPoP proof's 'ath' is not the access token's hash.")
    if (nonce_required() if require_nonce is None else require_nonce) and not _nonce_valid(claims.get("nonce")):
        raise DpopError("use_dpop_nonce", "Send the DPoP proof again with the nonce in the DPoP-Nonce header.")
    _remember(jkt, jti, iat + window + _LEEWAY_SECONDS)
    return Proof(jkt, header["alg"])


def _key_of(jwk: dict):
    """The proof's public key and its RFC 7638 thumbprint. A client signs its proofs with one key
    for a while: imported (the point checked, the thumbprint hashed) once per process."""
    members = tuple(sorted(jwk.items()))
    if not all(isinstance(v, str) for _k, v in members):  # unhashable, or odd: not kept
        key = JWKRegistry.import_key(jwk)
        return key, key.thumbprint()
    return _imported(members)


@functools.lru_cache(maxsize=4096)
def _imported(members: tuple[tuple[str, str], ...]):
    key = JWKRegistry.import_key(dict(members))
    return key, key.thumbprint()


def _remember(jkt: str, jti: str, expires: int) -> None:
    try:
        with transaction.atomic():
            _NEW_PROOF.create(jkt=jkt, jti=jti, expires_at=dt.datetime.fromtimestamp(expires, tz=dt.timezone.utc))
    except IntegrityError:
        raise DpopError("invalid_dpop_proof", "This DPoP proof was already used.") from None


def forget_expired(now: dt.datetime) -> int:
    """Forget the proofs past their expiry (:func:`chave.ops.expiry.forget_expired`)."""
    return DpopProof.objects.filter(expires_at__lt=now).delete()[0]


def error_headers(error: DpopError, *, resource: bool) -> dict[str, str]:
    """The headers of an answer refusing a proof: a fresh ``DPoP-Nonce`` for ``use_dpop_nonce``,
    and at a resource (userinfo, the signing APIs) the ``WWW-Authenticate: DPoP`` challenge."""
    headers = {}
    if error.error == "use_dpop_nonce" or nonce_required():
        headers["DPoP-Nonce"] = current_nonce()
    if resource:
        headers["WWW-Authenticate"] = (f'DPoP error="{error.error}", error_description="{error.description}", '
                                       f'algs="{" ".join(ALGORITHMS)}"')
    return headers


def json_error(error: DpopError, *, resource: bool = False, status: int | None = None):
    from django.http import JsonResponse

    response = JsonResponse({"error": error.error, "error_description": error.description},
                            status=status or (401 if resource else 400))
    response["Cache-Control"] = "no-store"
    for name, value in error_headers(error, resource=resource).items():
        response[name] = value
    return response
