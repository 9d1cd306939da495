"""Health of a running Chave, for load balancers, orchestrators and the people on call.

:func:`liveness` says the process answers. :func:`readiness` checks what a request needs:

- ``database``: a query answers (critical);
- ``cache``: a value written to the in-process cache can be read back (critical);
- ``redis`` instead of ``cache`` where Redis is configured (``CHAVE_REDIS_URL`` or a Redis cache):
  a value written can be read back. Not critical: every instance shares the one Redis, and without
  it the throttles count in the database (never open) and the signing CRL is signed per request,
  so taking every instance out of rotation would turn a slower service into none. Its answer says
  where the throttles count meanwhile (``throttles``: ``redis`` or ``database``);
- ``delivery``: the background worker keeps up: no task ready to run (a code to send, a letter,
  a back-channel logout) has waited longer than ``health_queue_max_lag_seconds``;
- ``signing``: the signing CA's certificate is readable and its key answers in the HSM with the
  public key of that certificate.

Only the database and an in-process cache take the instance out of rotation (HTTP 503): without
Redis, a worker or the HSM citizens can still sign in, so those are reported as ``degraded``
(HTTP 200) for the operators' alerts. Answers carry component names and outcomes only; the reasons go to the log
(``chave.ops``), never to the caller.
"""

from __future__ import annotations

import logging
import secrets
from dataclasses import dataclass, field

from django.core.cache import cache
from django.db import connection

from chave import clock, policy

log = logging.getLogger("chave.ops")

CRITICAL = ("database", "cache", "pin_pepper")


@dataclass
class Check:
    ok: bool
    facts: dict = field(default_factory=dict)


def _database() -> Check:
    with connection.cursor() as cursor:
        cursor.execute("SELECT 1")
        return Check(cursor.fetchone()[0] == 1)


def _cache() -> Check:
    key, value = f"chave:health:{secrets.token_hex(8)}", secrets.token_hex(8)
    cache.set(key, value, 10)
    try:
        return Check(cache.get(key) == value)
    finally:
        cache.delete(key)


def _delivery() -> Check:
    from django_tasks_db.models import DBTaskResult

    waiting = DBTaskResult.objects.ready()
    oldest = waiting.order_by("enqueued_at").values_list("enqueued_at", "run_after").first()
    if oldest is None:
        return Check(True, {"waiting": 0, "lag_seconds": 0})
    enqueued_at, run_after = oldest
    since = max(enqueued_at, run_after) if run_after and run_after.year < 9999 else enqueued_at
    lag = max(0, int((clock.now() - since).total_seconds()))
    return Check(lag <= policy.get("health_queue_max_lag_seconds"), {"waiting": waiting.count(), "lag_seconds": lag})


def _signing() -> Check:
    from django.conf import settings

    from chave.signing import ca_keys, pki

    ca = pki.material().ca
    return Check(ca_keys.public_key(settings.CHAVE_SIGNING_CA_KEY_LABEL) == ca.public_key())


def _uses_redis() -> bool:
    from django.conf import settings

    return bool(settings.CHAVE_REDIS_URL) or "redis" in settings.CACHES["default"]["BACKEND"].lower()


def _redis() -> Check:
    """The Redis the cache (and, with ``CHAVE_THROTTLE_STORE=redis``, the throttles) use."""
    from django.conf import settings

    counting = "redis" if settings.CHAVE_THROTTLE_STORE == "redis" else "database"
    try:
        if "redis" in settings.CACHES["default"]["BACKEND"].lower():
            ok = _cache().ok
        else:
            import redis

            ok = bool(redis.Redis.from_url(settings.CHAVE_REDIS_URL, socket_connect_timeout=1,
                                           socket_timeout=1).ping())
    except Exception:  # noqa: BLE001 - unreachable is the answer, the reason goes to the log
        log.exception("health check redis failed")
        ok = False
    if not ok and counting == "redis":
        counting = "database"  # what throttle.hit does while Redis cannot answer
    return Check(ok, {"throttles": counting})


CHECKS = {"database": _database, "cache": _cache, "delivery": _delivery, "signing": _signing}


def _checks() -> dict:
    if not _uses_redis():
        return CHECKS
    return {("redis" if name == "cache" else name): (_redis if name == "cache" else check)
            for name, check in CHECKS.items()}


def liveness() -> dict:
    return {"status": "ok"}


def readiness() -> tuple[int, dict]:
    """(HTTP status, answer): ``ok`` / ``degraded`` (200) or ``unavailable`` (503)."""
    results = {}
    for name, check in _checks().items():
        try:
            outcome = check()
        except Exception:  # noqa: BLE001 - any failure of a component is that component's, reported
            log.exception("health check %s failed", name)
            outcome = Check(False)
        if not outcome.ok:
            log.warning("health check %s: not ready %s", name, outcome.facts)
        results[name] = {"ok": outcome.ok, **outcome.facts}
    if not all(results[name]["ok"] for name in CRITICAL if name in results):
        status, code = "unavailable", 503
    elif not all(r["ok"] for r in results.values()):
        status, code = "degraded", 200
    else:
        status, code = "ok", 200
    return code, {"status": status, "checks": results}


def _pin_pepper() -> Check:
    """``pin_pepper``: the HSM computes an HMAC with the PIN pepper key. Critical: without it no PIN
    can be checked (:mod:`chave.identity.pins`), so the instance leaves the rotation (503)."""
    from django.conf import settings

    from chave.identity import pins

    if not settings.IS_PRODUCTION:
        pins.ensure_pepper_key()  # development makes it at first use anyway
    mac = pins.pepper_hsm().hmac_sha256(settings.CHAVE_PIN_PEPPER_KEY_LABEL, b"chave-health")
    return Check(len(mac) == 32)


CHECKS["pin_pepper"] = _pin_pepper
