"""A DPoP client for the tests (RFC 9449): a key of its own, proofs signed with it, and the
``use_dpop_nonce`` round trip a client library does (retry once with the ``DPoP-Nonce`` given)."""

from __future__ import annotations

import base64
import hashlib
import secrets

from joserfc import jwt
from joserfc.jwk import ECKey, RSAKey

from chave import clock


class DpopKey:
    def __init__(self, alg: str = "ES256"):
        self.alg = alg
        self.key = ECKey.generate_key("P-256", private=True) if alg == "ES256" else RSAKey.generate_key(
            2048, private=True)
        self.nonce: str | None = None

    @property
    def jkt(self) -> str:
        return self.key.thumbprint()

    def proof(self, method: str, url: str, access_token: str | None = None, **overrides) -> str:
        claims = {"jti": secrets.token_urlsafe(16), "htm": method, "htu": url, "iat": int(clock.now().timestamp())}
        if self.nonce:
            claims["nonce"] = self.nonce
        if access_token:
            claims["ath"] = base64.urlsafe_b64encode(hashlib.sha256(access_token.encode()).digest()).rstrip(
                b"=").decode()
        claims.update(overrides)
        header = {"typ": "dpop+jwt", "alg": self.alg, "jwk": self.key.as_dict(private=False)}
        return jwt.encode(header, {k: v for k, v in claims.items() if v is not None}, self.key, algorithms=[self.alg])

    def send(self, call, method: str, url: str, access_token: str | None = None):
        """``call(proof)`` once, and again with the server's nonce when it asks for one."""
        response = call(self.proof(method, url, access_token))
        if response.has_header("DPoP-Nonce"):
            self.nonce = response["DPoP-Nonce"]
        if response.status_code in (400, 401) and "use_dpop_nonce" in (
                response.content.decode() + response.get("WWW-Authenticate", "")):
            response = call(self.proof(method, url, access_token))
            if response.has_header("DPoP-Nonce"):
                self.nonce = response["DPoP-Nonce"]
        return response
