"""The provider's signing keys: generation, rotation and the published JWKS.

Keys are made with ``joserfc`` (RSA 2048 for RS256, P-256 for ES256), their private halves sealed
at rest. The active key of an algorithm is the newest unretired one; :func:`rotate` retires the
current keys and makes new ones; a retired key stays in the JWKS for
``oidc_key_retention_seconds`` so that tokens it signed still verify.
"""

from __future__ import annotations

import datetime as dt
import json

from django.conf import settings
from django.db import transaction
from joserfc.jwk import ECKey, RSAKey

from chave import clock, policy, sealing

from .models import SigningKey

ALGORITHMS = ("RS256", "ES256")
_PURPOSE = "oidc-signing-key"


def _generate(alg: str):
    if alg == "RS256":
        return RSAKey.generate_key(2048, private=True)
    if alg == "ES256":
        return ECKey.generate_key("P-256", private=True)
    raise ValueError(f"unsupported algorithm {alg}")


def create_key(alg: str) -> SigningKey:
    key = _generate(alg)
    kid = key.thumbprint()
    public = {**key.as_dict(private=False), "kid": kid, "use": "sig", "alg": alg}
    private = sealing.seal(json.dumps(key.as_dict(private=True)), secret=settings.CHAVE_KEY_SEAL_SECRET,
                           purpose=_PURPOSE)
    return SigningKey.objects.create(kid=kid, alg=alg, private_jwk_sealed=private, public_jwk=public,
                                     created_at=clock.now())


def active_key(alg: str) -> SigningKey:
    """The key that signs with ``alg`` now; made on first use."""
    row = SigningKey.objects.filter(alg=alg, retired_at__isnull=True).order_by("-created_at", "-id").first()
    if row is None:
        with transaction.atomic():
            row = SigningKey.objects.select_for_update().filter(alg=alg, retired_at__isnull=True).first()
            if row is None:
                row = create_key(alg)
    return row


def private_key(row: SigningKey):
    data = json.loads(sealing.unseal(row.private_jwk_sealed, secret=settings.CHAVE_KEY_SEAL_SECRET, purpose=_PURPOSE))
    data["kid"] = row.kid
    return (RSAKey if row.alg == "RS256" else ECKey).import_key(data)


def rotate() -> list[SigningKey]:
    """Retire every active key and make a new one per algorithm; returns the new keys."""
    now = clock.now()
    with transaction.atomic():
        SigningKey.objects.filter(retired_at__isnull=True).update(retired_at=now)
        return [create_key(alg) for alg in ALGORITHMS]


def published() -> list[SigningKey]:
    for alg in ALGORITHMS:
        active_key(alg)
    keep_since = clock.now() - dt.timedelta(seconds=policy.get("oidc_key_retention_seconds"))
    rows = SigningKey.objects.exclude(retired_at__lt=keep_since).order_by("-created_at", "-id")
    return list(rows)


def jwks() -> dict:
    return {"keys": [row.public_jwk for row in published()]}
