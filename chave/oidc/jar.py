"""Signed request objects (JWT-Secured Authorization Request, RFC 9101).

A portal with registered keys (``private_key_jwt``) may send its authorization request as a JWT
it signed, in the ``request`` parameter of the authorization endpoint or of a pushed request. Only
the object's parameters are used then (§6.3): nothing outside it (but ``client_id``, which must
match) changes the request. ``request_uri`` pointing elsewhere than Chave's pushed requests is not
fetched.

Checked: the signature with one of the portal's keys (PS256, ES256 or RS256; PS256 or ES256 for a
FAPI 2.0 portal; never ``none`` nor an HMAC), ``iss`` and ``client_id`` the portal, ``aud`` Chave's
issuer, ``exp`` present and not past, ``nbf`` not in the future, and a lifetime (``exp`` − ``nbf``
or ``iat``) of at most an hour.
"""

from __future__ import annotations

import json

from authlib.oauth2 import OAuth2Error
from joserfc import jwt
from joserfc.errors import JoseError

from chave import clock

from .models import RelyingParty, client_settings

ALGORITHMS = ["PS256", "ES256", "RS256"]
FAPI2_ALGORITHMS = ["PS256", "ES256"]
MAX_LIFETIME_SECONDS = 3600
LEEWAY_SECONDS = 30


class InvalidRequestObjectError(OAuth2Error):
    """RFC 9101 §6.2 / OpenID Connect Core §3.1.2.6."""

    error = "invalid_request_object"


def algorithms_for(client: RelyingParty) -> list[str]:
    return FAPI2_ALGORITHMS if client_settings(client).fapi2 else ALGORITHMS


def parameters_of(client: RelyingParty, token: str, *, outer_client_id: str | None) -> dict[str, str]:
    """The authorization request's parameters from the request object ``token``. Raises
    :class:`InvalidRequestObjectError` with a sentence saying what is wrong."""
    from .server import PrivateKeyJwt, issuer

    if outer_client_id is not None and outer_client_id != client.client_id:
        raise InvalidRequestObjectError("The 'client_id' does not match the request object's client.")
    try:
        keys = PrivateKeyJwt().resolve_client_public_key(client)
    except OAuth2Error as exc:
        raise InvalidRequestObjectError("Only a portal with registered keys may sign request objects.") from exc
    try:
        decoded = jwt.decode(token, keys, algorithms=algorithms_for(client))
    except (JoseError, ValueError, TypeError) as exc:
        raise InvalidRequestObjectError("The request object's signature is not valid.") from exc
    claims = decoded.claims
    now = int(clock.now().timestamp())
    aud = claims.get("aud")
    audiences = aud if isinstance(aud, list) else [aud]
    if claims.get("iss") != client.client_id or claims.get("client_id") != client.client_id:
        raise InvalidRequestObjectError("The request object's 'iss' and 'client_id' must both be the client_id.")
    if issuer() not in audiences:
        raise InvalidRequestObjectError("The request object's 'aud' must be Chave's issuer.")
    exp, start = claims.get("exp"), claims.get("nbf", claims.get("iat", now))
    if not isinstance(exp, int) or not isinstance(start, int):
        raise InvalidRequestObjectError("The request object needs 'exp' (and 'nbf' or 'iat') as whole seconds.")
    if exp + LEEWAY_SECONDS <= now:
        raise InvalidRequestObjectError("The request object has expired.")
    if claims.get("nbf", now) > now + LEEWAY_SECONDS:
        raise InvalidRequestObjectError("The request object is not valid yet.")
    if exp - min(start, now) > MAX_LIFETIME_SECONDS + LEEWAY_SECONDS:
        raise InvalidRequestObjectError("The request object lives too long (at most an hour).")
    if "request" in claims or "request_uri" in claims:
        raise InvalidRequestObjectError("A request object may not hold 'request' or 'request_uri'.")
    parameters = {}
    for name, value in claims.items():
        if name in ("iss", "aud", "exp", "nbf", "iat", "jti"):
            continue
        if isinstance(value, str):
            parameters[name] = value
        elif isinstance(value, bool) or value is None:
            raise InvalidRequestObjectError(f"The request object's '{name}' is not a string.")
        elif isinstance(value, int):
            parameters[name] = str(value)
        else:
            parameters[name] = json.dumps(value)  # claims: a JSON object
    return parameters
