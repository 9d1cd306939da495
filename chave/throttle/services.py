"""Named throttles: "may this happen now?" as a value, and "it happened" recorded atomically.

A throttle is a name in ``CHAVE_POLICY["throttles"]`` with a limit and a sliding window. Callers
ask :func:`hit` with one or more ``(name, subject)`` pairs: either every pair is under its limit
and each is counted, or none is counted and the decision says which one refused and until when;
:func:`check` gives the same decision without counting anything, and :func:`refund` takes back
what an allowed hit counted once the attempt proved right (only failures use up a limit meant for
guessing). Two stores: the database (exact on SQLite and PostgreSQL; the default) and Redis (for
several instances; ``CHAVE_THROTTLE_STORE=redis``).

Redis down never opens a throttle: a hit Redis cannot answer is counted in the database store
instead (exact, and shared by every instance), and refused if the database cannot answer either
(the request then fails, closed). Once Redis answers again, what the database counted during the
outage still counts for as long as the longest window: the instance that fell back leaves a marker
in Redis (``chave:throttle:outage-until``), and every instance that sees it adds the database's
counts to Redis's until then.
"""

from __future__ import annotations

import datetime as dt
import functools
import hashlib
import hmac
import ipaddress
import logging
import math
from dataclasses import dataclass, field

from django.conf import settings
from django.db import connection, transaction
from django.db.models import Count, Min, Q

from chave import clock, policy
from chave.compiled import Compiled, Inserter

from .models import ThrottleEvent

_NEW = Inserter(ThrottleEvent)

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class ThrottleDecision:
    allowed: bool
    rule: str = ""
    retry_at: dt.datetime | None = None
    # What an allowed hit counted, for :func:`refund`: ("db", name, hashed subject, at) or
    # ("redis", name, key, member) per pair. Not part of the decision's value.
    counted: tuple = field(default=(), compare=False, repr=False)

    @property
    def retry_after_seconds(self) -> int:
        """Whole seconds until ``retry_at`` (at least 1), as HTTP's ``Retry-After`` wants them."""
        if self.retry_at is None:
            return 1
        return max(1, math.ceil((self.retry_at - clock.now()).total_seconds()))


ALLOW = ThrottleDecision(True)


def _subject(name: str, subject: str) -> str:
    key = (settings.SECRET_KEY + "/throttle").encode()
    return hmac.new(key, f"{name}\x00{subject}".encode(), hashlib.sha256).hexdigest()


def _pairs(pairs) -> tuple[tuple[str, str], ...]:
    return tuple((name, _address_block(subject) if name.endswith("_per_ip") else str(subject))
                 for name, subject in pairs if subject not in (None, ""))


def _address_block(subject) -> str:
    """What a ``*_per_ip`` throttle counts: an IPv4 address, or the /64 an IPv6 address is in (one
    subscriber usually holds a whole /64, and would otherwise get a fresh budget per address)."""
    try:
        address = ipaddress.ip_address(str(subject))
    except ValueError:
        return str(subject)
    if address.version == 4:
        return str(address)
    if address.ipv4_mapped is not None:
        return str(address.ipv4_mapped)
    return str(ipaddress.ip_network(f"{address}/64", strict=False))


def hit(*pairs: tuple[str, str]) -> ThrottleDecision:
    """Count one action against each ``(throttle name, subject)``, all or nothing."""
    pairs = _pairs(pairs)
    if not pairs:
        return ALLOW
    if settings.CHAVE_THROTTLE_STORE == "redis":
        return _redis_hit(pairs)
    return _db_hit(pairs)


def _db_hit(pairs) -> ThrottleDecision:
    now = clock.now()
    hashed = [(name, _subject(name, s)) for name, s in pairs]
    # No savepoint of its own inside a caller's transaction: nothing here is caught and retried.
    with transaction.atomic(savepoint=False):
        if connection.vendor == "postgresql":
            # Serialise concurrent hits on the same subjects (SQLite's IMMEDIATE transactions
            # already serialise every writer).
            with connection.cursor() as cur:
                for _, h in sorted(hashed, key=lambda p: p[1]):
                    cur.execute("SELECT pg_advisory_xact_lock(%s)", [int(h[:15], 16)])
        refusal = _db_refusal(hashed, now)
        if refusal:
            return refusal
        _NEW.create_many([ThrottleEvent(name=name, subject=h, at=now) for name, h in hashed])
    return ThrottleDecision(True, counted=tuple(("db", name, h, now) for name, h in hashed))


def _db_window_counts(hashed, now: dt.datetime) -> dict[tuple[str, str], tuple[int, dt.datetime]]:
    """(events, oldest) within its window for each ``(name, hashed subject)`` that has any, in one
    query. An event counts for exactly one window: at ``at + window`` it no longer does, which is
    the ``retry_at`` a refusal names (and what the Redis store does). Events older than their
    window are left for :func:`purge`."""
    values = [v for name, h in hashed for v in (name, h, now - policy.throttle(name).window)]
    rows = _window_counts(len(hashed)).all(*values)
    return {(name, h): (events, oldest) for name, h, events, oldest in rows}


@functools.cache
def _window_counts(subjects: int) -> Compiled:
    """The query of :func:`_db_window_counts` for that many subjects, compiled once."""

    def build(*values):
        within = Q()
        triples = iter(values)
        for name, h, since in zip(triples, triples, triples):
            within |= Q(name=name, subject=h, at__gt=since)
        return (ThrottleEvent.objects.filter(within).order_by().values_list("name", "subject")
                .annotate(events=Count("id"), oldest=Min("at")))

    return Compiled(build, *(str, str, dt.datetime) * subjects, values=True)


def _db_refusal(hashed, now: dt.datetime) -> ThrottleDecision | None:
    """The first of ``(name, hashed subject)`` at its limit, as a refusal; None when all are under."""
    counts = _db_window_counts(hashed, now)
    for name, h in hashed:
        rule = policy.throttle(name)
        events, oldest = counts.get((name, h), (0, None))
        if events >= rule.limit:
            # A limit of 0 refuses everything; with nothing counted, a window from now.
            return ThrottleDecision(False, name, (oldest or now) + rule.window)
    return None


def purge(now: dt.datetime | None = None) -> int:
    """Forget the database store's events that no longer count (older than their throttle's
    window, or of a throttle no longer configured). Run by the delivery worker's sweep and by
    ``chave housekeeping``; how many were removed."""
    now = now or clock.now()
    names = list(policy.get("throttles"))
    stale = ~Q(name__in=names)
    for name in names:
        stale |= Q(name=name, at__lte=now - policy.throttle(name).window)
    return ThrottleEvent.objects.filter(stale).delete()[0]


def check(*pairs: tuple[str, str]) -> ThrottleDecision:
    """What :func:`hit` would decide now for ``pairs``, counting nothing.

    For a look before a step that must not run at all once a subject is over its limit (a token
    lookup from a client that keeps sending bad tokens); the answer may be stale by the time the
    caller acts, so the count itself is always taken with :func:`hit`.
    """
    pairs = _pairs(pairs)
    now = clock.now()
    if settings.CHAVE_THROTTLE_STORE != "redis":
        return _db_refusal([(name, _subject(name, s)) for name, s in pairs], now) or ALLOW
    for name, s in pairs:
        refusal = _redis_refusal(name, s, now)
        if refusal:
            return refusal
    return ALLOW


# --- Redis unreachable: the database stands in -------------------------------------------------

_OUTAGE_KEY = "chave:throttle:outage-until"
_outage = {"until": 0.0, "announced": 0.0}  # this process's view, in clock seconds


def _redis_errors():
    import redis

    return (redis.exceptions.RedisError, OSError)


def _longest_window() -> float:
    return max(policy.throttle(name).window.total_seconds() for name in policy.get("throttles"))


def _fell_back(exc: Exception) -> None:
    until = clock.now().timestamp() + _longest_window()
    if _outage["until"] < clock.now().timestamp():
        log.warning("throttles: Redis unreachable (%s): counting in the database", exc.__class__.__name__)
    _outage["until"] = until


def _recovering(client) -> bool:
    """Whether the database's counts from a Redis outage still count (this process's view, or a
    marker another instance left in Redis)."""
    now = clock.now().timestamp()
    if _outage["until"] > now:
        if _outage["announced"] < _outage["until"]:
            client.set(_OUTAGE_KEY, repr(_outage["until"]), pxat=int(_outage["until"] * 1000))
            _outage["announced"] = _outage["until"]
        return True
    marker = client.get(_OUTAGE_KEY)
    try:
        return marker is not None and float(marker) > now
    except ValueError:
        return False


def _db_counts(pairs, now: dt.datetime) -> list[tuple[int, dt.datetime | None]]:
    """(events, oldest) in the database store within each pair's window."""
    hashed = [(name, _subject(name, s)) for name, s in pairs]
    counts = _db_window_counts(hashed, now)
    return [counts.get(pair, (0, None)) for pair in hashed]


# Sliding-window log in sorted sets, checked and counted in one script so that it is atomic.
_LUA = """
local now = tonumber(ARGV[1])
local n = #KEYS
for i = 1, n do
  local window = tonumber(ARGV[1 + 2 * i])
  redis.call('ZREMRANGEBYSCORE', KEYS[i], '-inf', now - window)
  local limit = tonumber(ARGV[2 * i])
  if redis.call('ZCARD', KEYS[i]) >= limit then
    local oldest = redis.call('ZRANGE', KEYS[i], 0, 0, 'WITHSCORES')
    return {i, oldest[2] or ARGV[1]}
  end
end
for i = 1, n do
  redis.call('ZADD', KEYS[i], now, ARGV[2 * n + 2] .. ':' .. i)
  redis.call('PEXPIRE', KEYS[i], math.ceil(tonumber(ARGV[1 + 2 * i]) * 1000))
end
return {0, 0}
"""


def refund(decision: ThrottleDecision, *names: str) -> None:
    """Take back what an allowed :func:`hit` counted, under ``names`` only if any are given: for
    an attempt that proved right, so that only failures use up a limit meant for guessing (a
    correct PIN from an address many citizens share — a carrier's NAT, an office, a counter's
    desks — is no guess). The hit itself still counted while the attempt ran, so concurrent
    attempts never exceed the limit. A refund Redis cannot take leaves the hit counted (closed)."""
    for store, name, where, what in decision.counted:
        if names and name not in names:
            continue
        if store == "db":
            one = ThrottleEvent.objects.filter(name=name, subject=where, at=what).values("pk")[:1]
            ThrottleEvent.objects.filter(pk__in=one).delete()
            continue
        try:
            client, _script = _redis()
            client.zrem(where, what)
        except _redis_errors() as exc:
            log.warning("throttle refund not taken, the attempt stays counted: %s", type(exc).__name__)


def forget(*pairs: tuple[str, str]) -> None:
    """Drop what was counted against each ``(throttle name, subject)``, in the database and in
    Redis when it is used (an operator's reset, e.g. ``chave seed_demo`` for the demo key)."""
    pairs = _pairs(pairs)
    for name, s in pairs:
        ThrottleEvent.objects.filter(name=name, subject=_subject(name, s)).delete()
    if settings.CHAVE_THROTTLE_STORE == "redis" and pairs:
        try:
            client, _script = _redis()
            client.delete(*[_redis_key(name, s) for name, s in pairs])
        except _redis_errors() as exc:
            _fell_back(exc)


def _redis_key(name: str, subject: str) -> str:
    return "chave:throttle:" + _subject(name, subject)


@functools.lru_cache(maxsize=1)
def _redis():
    import redis

    # Short timeouts: a Redis that hangs must not hang logins (the database stands in, see above).
    client = redis.Redis.from_url(settings.CHAVE_REDIS_URL, socket_connect_timeout=1, socket_timeout=1)
    return client, client.register_script(_LUA)


def _redis_hit(pairs) -> ThrottleDecision:
    try:
        return _redis_script_hit(pairs)
    except _redis_errors() as exc:
        _fell_back(exc)
        return _db_hit(pairs)


def _redis_script_hit(pairs) -> ThrottleDecision:
    import secrets

    now = clock.now()
    ts = now.timestamp()
    client, script = _redis()
    # After an outage, what the database counted meanwhile uses up part of each limit.
    counted = _db_counts(pairs, now) if _recovering(client) else [(0, None)] * len(pairs)
    keys, args = [], [ts]
    for (name, s), (already, oldest) in zip(pairs, counted):
        rule = policy.throttle(name)
        if already and already >= rule.limit:
            return ThrottleDecision(False, name, (oldest or now) + rule.window)
        keys.append(_redis_key(name, s))
        args += [rule.limit - already, rule.window.total_seconds()]
    token = secrets.token_hex(8)
    args.append(token)
    index, oldest = script(keys=keys, args=args, client=client)
    if int(index) == 0:
        return ThrottleDecision(True, counted=tuple(("redis", name, key, f"{token}:{i}")
                                                    for i, ((name, _s), key) in enumerate(zip(pairs, keys), start=1)))
    name = pairs[int(index) - 1][0]
    retry = dt.datetime.fromtimestamp(float(oldest), tz=dt.timezone.utc) + policy.throttle(name).window
    return ThrottleDecision(False, name, retry)


def _redis_refusal(name: str, subject: str, now: dt.datetime) -> ThrottleDecision | None:
    rule = policy.throttle(name)
    try:
        client, _ = _redis()
        already, oldest_db = _db_counts([(name, subject)], now)[0] if _recovering(client) else (0, None)
        since = (now - rule.window).timestamp()
        live = client.zrangebyscore(_redis_key(name, subject), f"({since}", "+inf",
                                    start=0, num=max(rule.limit, 1), withscores=True)
    except _redis_errors() as exc:
        _fell_back(exc)
        return _db_refusal([(name, _subject(name, subject))], now)
    if len(live) + already < rule.limit:
        return None
    times = [dt.datetime.fromtimestamp(score, tz=dt.timezone.utc) for _, score in live[:1]] + \
        ([oldest_db] if oldest_db else [])
    return ThrottleDecision(False, name, (min(times) if times else now) + rule.window)
