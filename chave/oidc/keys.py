"""The provider's signing keys: generation, rotation and the published JWKS.

Keys are made with ``joserfc`` (RSA 2048 for RS256, P-256 for ES256), their private halves sealed
at rest (:mod:`chave.sealing`); only the public half is stored in clear. The active key of an
algorithm is its one unretired key — a partial unique constraint on :class:`SigningKey` keeps it
one even when two first callers race. :func:`rotate` retires the current keys and makes new
ones; a retired key stays in the JWKS until what it signed has expired (:func:`published_until`),
so ID and logout tokens signed before a rotation still verify after it.
"""

from __future__ import annotations

import datetime as dt
import functools
import json
from dataclasses import dataclass

from django.conf import settings
from django.db import IntegrityError, transaction
from joserfc.jwk import ECKey, RSAKey

from chave import clock, policy, sealing
from chave.audit import services as audit

from .models import SigningKey

ALGORITHMS = ("RS256", "ES256")
_PURPOSE = "oidc-signing-key"
# Two callers racing to make a key: the loser finds the winner's key on its next look.
_ATTEMPTS = 5


@dataclass(frozen=True)
class _Material:
    alg: str
    kid: str
    public_jwk: dict
    private_jwk_sealed: str


def _generate(alg: str) -> _Material:
    """New key material, made outside any transaction (RSA generation takes a while)."""
    if alg == "RS256":
        key = RSAKey.generate_key(2048, private=True)
    elif alg == "ES256":
        key = ECKey.generate_key("P-256", private=True)
    else:
        raise ValueError(f"unsupported algorithm {alg}")
    kid = key.thumbprint()
    public = {**key.as_dict(private=False), "kid": kid, "use": "sig", "alg": alg}
    sealed = sealing.seal(json.dumps(key.as_dict(private=True)), secret=settings.CHAVE_KEY_SEAL_SECRET,
                          purpose=_PURPOSE)
    return _Material(alg, kid, public, sealed)


def _store(material: _Material) -> SigningKey:
    return SigningKey.objects.create(kid=material.kid, alg=material.alg, public_jwk=material.public_jwk,
                                     private_jwk_sealed=material.private_jwk_sealed, created_at=clock.now())


def _current(alg: str) -> SigningKey | None:
    return SigningKey.objects.filter(alg=alg, retired_at__isnull=True).first()


def active_key(alg: str) -> SigningKey:
    """The key that signs with ``alg`` now; made on first use.

    Safe under concurrent first use: the database admits one unretired key per algorithm, and a
    caller that loses the race returns the winner's key. Raises ``ValueError`` for an algorithm
    other than RS256 or ES256.
    """
    if alg not in ALGORITHMS:
        raise ValueError(f"unsupported algorithm {alg}")
    for _attempt in range(_ATTEMPTS):
        row = _current(alg)
        if row is not None:
            return row
        material = _generate(alg)
        try:
            with transaction.atomic():
                return _store(material)
        except IntegrityError:
            continue  # another caller stored its key first: use that one
    raise RuntimeError(f"could not settle on an active {alg} signing key")


def private_key(row: SigningKey):
    """The private key of ``row``, unsealed and imported once per process (both cost more than the
    signature itself); the cache is keyed by the sealed text, so a changed row is read again."""
    return _imported(row.kid, row.alg, row.private_jwk_sealed, settings.CHAVE_KEY_SEAL_SECRET)


@functools.lru_cache(maxsize=16)
def _imported(kid: str, alg: str, sealed: str, secret: str):
    data = json.loads(sealing.unseal(sealed, secret=secret, purpose=_PURPOSE))
    data["kid"] = kid
    return (RSAKey if alg == "RS256" else ECKey).import_key(data)


def rotate(*, by: str = "operator") -> list[SigningKey]:
    """Retire every active key and make a new one per algorithm; returns the new keys.

    The retired keys stay published (:func:`published_until`). New ID tokens are signed with the
    new keys at once. Two rotations at the same time both take effect, one after the other.
    Audited as ``oidc.keys_rotated`` (key ids only).
    """
    for _attempt in range(_ATTEMPTS):
        materials = [_generate(alg) for alg in ALGORITHMS]
        try:
            with transaction.atomic():
                now = clock.now()
                retiring = SigningKey.objects.filter(retired_at__isnull=True)
                retired = sorted(retiring.values_list("kid", flat=True))
                retiring.update(retired_at=now)
                new = [_store(material) for material in materials]
                audit.record("oidc.keys_rotated", outcome="ok", by=by, retired=retired,
                             made=[row.kid for row in new])
                return new
        except IntegrityError:
            continue  # a concurrent rotation stored its keys after our retirement: retire those too
    raise RuntimeError("could not rotate the signing keys")


def retention() -> dt.timedelta:
    """How long a retired key stays published: the configured retention, and never less than
    the lifetime of the tokens it may have signed just before it was retired."""
    return dt.timedelta(seconds=max(
        policy.get("oidc_key_retention_seconds"),
        policy.get("oidc_id_token_seconds"),
        policy.get("oidc_logout_token_seconds"),
    ))


def published_until(row: SigningKey) -> dt.datetime | None:
    """When a retired key leaves the JWKS; ``None`` for an active key."""
    return row.retired_at + retention() if row.retired_at else None


def published() -> list[SigningKey]:
    """The keys in the JWKS, newest first: the active ones (made on first use) and the retired
    ones still within their retention."""
    for alg in ALGORITHMS:
        active_key(alg)
    keep_since = clock.now() - retention()
    rows = SigningKey.objects.exclude(retired_at__lte=keep_since).order_by("-created_at", "-id")
    return list(rows)


def all_keys() -> list[SigningKey]:
    """Every signing key ever made, newest first (for operators; published or not)."""
    return list(SigningKey.objects.order_by("-created_at", "-id"))


def jwks() -> dict:
    return {"keys": [row.public_jwk for row in published()]}
