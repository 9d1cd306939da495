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
from chave.oidc.server import SERVICE_SCOPE

MAX_TOKEN_LENGTH = 512


def authenticate(request) -> RelyingParty | None:
    header = request.headers.get("Authorization", "")
    scheme, _, value = header.partition(" ")
    value = value.strip()
    if scheme.lower() != "bearer" or not value or len(value) > MAX_TOKEN_LENGTH:
        return None
    token = (
        Token.objects.select_related("relying_party")
        .filter(access_token_hash=token_hash(value), key__isnull=True, revoked_at__isnull=True,
                expires_at__gt=clock.now())
        .first()
    )
    if token is None or SERVICE_SCOPE not in token.scope.split():
        return None
    party = token.relying_party
    return party if party.state == RelyingParty.State.APPROVED else None
