"""A test portal: registers itself, builds authorization requests and client assertions.

It speaks the protocol with ``joserfc`` the way an integrating portal would; the independent
client library test lives in ``test_client_library.py``.
"""

from __future__ import annotations

import base64
import hashlib
import secrets
from dataclasses import dataclass, field
from urllib.parse import parse_qs, urlencode, urlsplit

from joserfc import jwt
from joserfc.jwk import RSAKey

from chave import clock
from chave.federation import services as federation
from chave.oidc import services

REDIRECT_URI = "https://portal.example.gov.pt/callback"
ALL_ATTRIBUTES = ["NIC", "NomeProprio", "NomeApelido", "NomeCompleto", "DataNascimento", "NIF",
                  "NumeroTelemovel", "CorreioElectronico", "DataValidade"]


@dataclass
class Portal:
    client_id: str
    key: RSAKey
    redirect_uri: str = REDIRECT_URI
    secret: str | None = None
    verifier: str = field(default_factory=lambda: secrets.token_urlsafe(48))
    state: str = field(default_factory=lambda: secrets.token_urlsafe(12))
    nonce: str = field(default_factory=lambda: secrets.token_urlsafe(12))

    @property
    def challenge(self) -> str:
        digest = hashlib.sha256(self.verifier.encode()).digest()
        return base64.urlsafe_b64encode(digest).rstrip(b"=").decode()

    def authorize_url(self, scope="openid profile offline_access", **extra) -> str:
        params = {
            "response_type": "code", "client_id": self.client_id, "redirect_uri": self.redirect_uri,
            "scope": scope, "state": self.state, "nonce": self.nonce,
            "code_challenge": self.challenge, "code_challenge_method": "S256", **extra,
        }
        params = {k: v for k, v in params.items() if v is not None}
        return "/oidc/authorize?" + urlencode(params)

    def assertion(self, audience="http://127.0.0.1:8000/oidc/token", alg="RS256", **overrides) -> str:
        now = int(clock.now().timestamp())  # the portal's clock agrees with ours (tests move it)
        claims = {"iss": self.client_id, "sub": self.client_id, "aud": audience, "iat": now, "exp": now + 60,
                  "jti": secrets.token_urlsafe(16), **overrides}
        return jwt.encode({"alg": alg, "kid": self.key.kid}, claims, self.key, algorithms=[alg])

    def token_form(self, code: str, **overrides) -> dict:
        form = {"grant_type": "authorization_code", "code": code, "redirect_uri": self.redirect_uri,
                "code_verifier": self.verifier,
                "client_assertion_type": "urn:ietf:params:oauth:client-assertion-type:jwt-bearer",
                "client_assertion": self.assertion()}
        form.update(overrides)
        return {k: v for k, v in form.items() if v is not None}


def register_portal(*, approve=True, attributes=ALL_ATTRIBUTES, mandatory=("NomeCompleto",), min_level=2,
                    auth="private_key_jwt", name="Portal das Finanças (teste)", offline_access=True,
                    redirect_uri=REDIRECT_URI, **extra) -> Portal:
    """An approved test portal, allowed offline access (refresh tokens when it asks for
    ``offline_access``, as :meth:`Portal.authorize_url` does by default)."""
    key = RSAKey.generate_key(2048, private=True)
    key.ensure_kid()
    jwks = {"keys": [key.as_dict(private=False)]} if auth == "private_key_jwt" else None
    registration = services.register_relying_party(
        name=name, entity_nif="600084779", contact_email="dev@portal.example.gov.pt",
        redirect_uris=[redirect_uri], allowed_attributes=list(attributes), mandatory_attributes=list(mandatory),
        min_level=min_level, auth_method=auth, jwks=jwks, offline_access=offline_access, **extra,
    )
    if approve:
        federation.decide(registration.relying_party, "approve", by="test")
    return Portal(registration.relying_party.client_id, key, redirect_uri=redirect_uri,
                  secret=registration.client_secret)


def query_of(location: str) -> dict:
    return {k: v[0] for k, v in parse_qs(urlsplit(location).query).items()}


def register_ec_portal(name: str, redirect_uri: str, **extra):
    """An approved portal with a P-256 key (``private_key_jwt`` ES256, ES256 ID tokens), as client
    libraries register for FAPI 2.0; returns (the party, its private key)."""
    from joserfc.jwk import ECKey

    key = ECKey.generate_key("P-256", private=True)
    key.ensure_kid()
    party = services.register_relying_party(
        name=name, entity_nif="600084779", contact_email="dev@portal.example.gov.pt", redirect_uris=[redirect_uri],
        allowed_attributes=["NomeCompleto", "NomeProprio", "NomeApelido", "NIC"], mandatory_attributes=["NIC"],
        jwks={"keys": [key.as_dict(private=False)]}, id_token_alg="ES256", **extra).relying_party
    federation.decide(party, "approve", by="test")
    return party, key
