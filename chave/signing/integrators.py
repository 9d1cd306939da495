"""Who is calling the signing APIs: an approved relying party with a service token.

Integrators get a bearer token from the provider's token endpoint with the
``client_credentials`` grant and scope ``csc`` (see :class:`chave.oidc.server.ServiceTokenGrant`);
:func:`authenticate` finds the party behind ``Authorization: Bearer …``: the token must be live,
a service token (no citizen) of scope ``csc``, and its party still approved.
"""

from __future__ import annotations

from chave import clock
from chave.federation.models import RelyingParty, token_hash
from chave.oidc.models import Token
from chave.oidc import dpop
from chave.oidc.server import SERVICE_SCOPE, issuer

MAX_TOKEN_LENGTH = 512


def authenticate(request) -> RelyingParty | None:
    """The approved party whose live service token the request carries, or None.

    A token bound to a DPoP key (RFC 9449: it was issued against a DPoP proof) counts only under
    the ``DPoP`` scheme with a fresh proof of that key for this call (``htm``, ``htu``, ``ath``,
    single-use ``jti``, and the server's ``nonce`` when ``oidc_dpop_nonce`` is on, as at the token
    endpoint and userinfo); a bearer token under ``Bearer`` as before. Raises
    :class:`chave.oidc.dpop.DpopError` when the token is live and DPoP-bound but its proof is not
    right (``use_dpop_nonce``: send it again with the ``DPoP-Nonce`` given), so that the answer can
    say so."""
    header = request.headers.get("Authorization", "")
    scheme, _, value = header.partition(" ")
    value, scheme = value.strip(), scheme.lower()
    if scheme not in ("bearer", "dpop") or not value or len(value) > MAX_TOKEN_LENGTH:
        return None
    token = (
        Token.objects.select_related("relying_party")
        .filter(access_token_hash=token_hash(value), key__isnull=True, revoked_at__isnull=True,
                expires_at__gt=clock.now())
        .first()
    )
    if token is None or SERVICE_SCOPE not in token.scope.split():
        return None
    if scheme == "dpop" or token.dpop_jkt:
        if scheme != "dpop" or not token.dpop_jkt:
            return None
        proof = dpop.verify(request, url=issuer() + request.path, access_token=value)
        if proof.jkt != token.dpop_jkt:
            raise dpop.DpopError("invalid_dpop_proof", "The DPoP proof is not made with the token's key.")
    party = token.relying_party
    return party if party.state == RelyingParty.State.APPROVED else None
