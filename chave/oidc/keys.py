"""The provider's signing keys: generation, rotation and the published JWKS.

Keys are made with ``joserfc`` (RSA 2048 for RS256, P-256 for ES256), their private halves sealed
at rest (:mod:`chave.sealing`); only the public half is stored in clear. A partial unique
constraint on :class:`SigningKey` keeps one unretired key per algorithm even when two first
callers race.

Rotation that clients caching the JWKS survive (:func:`rotate`): the next key of each algorithm is
published at once but signs only once the JWKS cache lifetime has passed
(``oidc_jwks_max_age_seconds``, the ``Cache-Control: max-age`` of ``/oidc/jwks``), so every
client that cached the old set has fetched the new one before a token it cannot verify reaches
it; the key it replaces signs until then and is retired at that moment. :func:`activate` makes the
next key sign earlier, refused within that period unless forced. A retired key stays in the JWKS
until what it signed has expired (:func:`published_until`), so ID and logout tokens signed before
a rotation still verify after it.
"""

from __future__ import annotations

import datetime as dt
import functools
import json
from dataclasses import dataclass

from django.conf import settings
from django.db import IntegrityError, transaction
from django.db.models import Q
from joserfc.jwk import ECKey, RSAKey

from chave import clock, policy, sealing
from chave.audit import services as audit
from chave.compiled import Compiled

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


def _store(material: _Material, activates_at=None) -> SigningKey:
    return SigningKey.objects.create(kid=material.kid, alg=material.alg, public_jwk=material.public_jwk,
                                     private_jwk_sealed=material.private_jwk_sealed, created_at=clock.now(),
                                     activates_at=activates_at)


def _signing(alg: str, now) -> SigningKey | None:
    """The key that signs with ``alg`` at ``now``: the newest one activated and not yet retired."""
    return _SIGNING.first(alg, now)


_SIGNING = Compiled(lambda alg, now: SigningKey.objects.filter(alg=alg)
                    .filter(Q(activates_at__isnull=True) | Q(activates_at__lte=now))
                    .exclude(retired_at__lte=now).order_by("-created_at", "-id")[:1], str, dt.datetime)


def cache_lifetime() -> dt.timedelta:
    """How long a client may cache the JWKS (its ``Cache-Control: max-age``)."""
    return dt.timedelta(seconds=policy.get("oidc_jwks_max_age_seconds"))


def active_key(alg: str) -> SigningKey:
    """The key that signs with ``alg`` now; made on first use.

    Safe under concurrent first use: the database admits one unretired key per algorithm, and a
    caller that loses the race returns the winner's key. Raises ``ValueError`` for an algorithm
    other than RS256 or ES256.
    """
    if alg not in ALGORITHMS:
        raise ValueError(f"unsupported algorithm {alg}")
    for _attempt in range(_ATTEMPTS):
        row = _signing(alg, clock.now())
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
    """Make the next key of each algorithm; returns the new keys.

    Each is published at once and signs from ``now + oidc_jwks_max_age_seconds`` (at once when
    the algorithm had no key yet); the keys signing until then are retired at that moment (and stay
    published, :func:`published_until`). Rotating again before that moment replaces the pending
    keys the same way. Two rotations at the same time both take effect, one after the other.
    Audited as ``oidc.keys_rotated`` (key ids only).
    """
    for _attempt in range(_ATTEMPTS):
        materials = [_generate(alg) for alg in ALGORITHMS]
        try:
            with transaction.atomic():
                now = clock.now()
                activation = now + cache_lifetime()
                new, retired = [], []
                for material in materials:
                    replaced = SigningKey.objects.filter(alg=material.alg).filter(
                        Q(retired_at__isnull=True) | Q(retired_at__gt=activation))
                    had_key = SigningKey.objects.filter(alg=material.alg).exclude(retired_at__lte=now).exists()
                    retired += list(replaced.values_list("kid", flat=True))
                    replaced.update(retired_at=activation if had_key else now)
                    new.append(_store(material, activates_at=activation if had_key else now))
                audit.record("oidc.keys_rotated", outcome="ok", by=by, retired=sorted(retired),
                             made=[row.kid for row in new], signs_from=activation.isoformat())
                return new
        except IntegrityError:
            continue  # a concurrent rotation stored its keys after our retirement: retire those too
    raise RuntimeError("could not rotate the signing keys")


class TooEarly(Exception):
    """Activating the next keys now would sign tokens that clients caching the JWKS cannot verify."""

    def __init__(self, ready_at):
        super().__init__(f"the next keys are published for less than the JWKS cache lifetime (until {ready_at})")
        self.ready_at = ready_at


def pending() -> list[SigningKey]:
    """The next keys: published, not signing yet."""
    return list(SigningKey.objects.filter(activates_at__gt=clock.now(), retired_at__isnull=True).order_by("alg"))


def activate(*, force: bool = False, by: str = "operator") -> list[SigningKey]:
    """Make the next keys (:func:`pending`) sign now, retiring the ones they replace; returns them
    (an empty list when none is pending). Raises :class:`TooEarly` when they have been published
    for less than the JWKS cache lifetime, unless ``force`` (a client that cached the JWKS just
    before the rotation cannot verify what they sign until its cache expires). Audited as
    ``oidc.keys_activated``."""
    with transaction.atomic():
        now = clock.now()
        rows = list(SigningKey.objects.select_for_update().filter(activates_at__gt=now, retired_at__isnull=True))
        if not rows:
            return []
        ready_at = max(row.created_at for row in rows) + cache_lifetime()
        if now < ready_at and not force:
            raise TooEarly(ready_at)
        for row in rows:
            SigningKey.objects.filter(alg=row.alg, retired_at__gt=now).update(retired_at=now)
            SigningKey.objects.filter(pk=row.pk).update(activates_at=now)
        audit.record("oidc.keys_activated", outcome="ok", by=by, kids=[row.kid for row in rows], forced=force)
    return [SigningKey.objects.get(pk=row.pk) for row in rows]


def retention() -> dt.timedelta:
    """How long a retired key stays published: the configured retention, and never less than
    the lifetime of the tokens it may have signed just before it was retired."""
    return dt.timedelta(seconds=max(
        policy.get("oidc_key_retention_seconds"),
        policy.get("oidc_id_token_seconds"),
        policy.get("oidc_logout_token_seconds"),
    ))


def published_until(row: SigningKey) -> dt.datetime | None:
    """When a retired (or retiring) key leaves the JWKS; ``None`` for an active or pending key."""
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
