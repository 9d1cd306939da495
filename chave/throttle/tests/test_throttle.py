"""Named throttles, in both stores: a sliding window, all-or-nothing across pairs, and when to
come back; exact under concurrent hits."""

import datetime as dt

import pytest
from django.test import override_settings

from chave.throttle import services as throttle
from chave.throttle.models import ThrottleEvent
from chave.throttle.tests.parallel import run_together

# The shared Redis, one database per suite pass: .ci/run runs the SQLite and the PostgreSQL pass at
# the same time, and each empties its own database.
REDIS_DB = {"sqlite": 15, "postgresql": 14}
RULES = {"three_a_minute": (3, 60), "five_a_minute": (5, 60), "ten_an_hour": (10, 3600), "never": (0, 60),
         "two_per_ip": (2, 60)}


@pytest.fixture
def rules(settings):
    settings.CHAVE_POLICY = {**settings.CHAVE_POLICY, "throttles": {**settings.CHAVE_POLICY["throttles"], **RULES}}


@pytest.fixture
def redis_store():
    import redis
    from django.db import connection

    url = f"redis://127.0.0.1:6379/{REDIS_DB.get(connection.vendor, 13)}"
    client = redis.Redis.from_url(url)
    try:
        client.ping()
    except redis.ConnectionError:
        pytest.fail(f"the Redis store is tested against a Redis server at {url}")
    client.flushdb()
    throttle._redis.cache_clear()
    with override_settings(CHAVE_THROTTLE_STORE="redis", CHAVE_REDIS_URL=url):
        yield client
    throttle._redis.cache_clear()
    client.flushdb()
    client.close()


@pytest.fixture(params=["db", "redis"])
def store(request, rules):
    if request.param == "db":
        request.getfixturevalue("db")
        yield "db"
    else:
        yield request.getfixturevalue("redis_store")


def test_sliding_window_and_retry_at(store, clock):
    t0 = clock.now()
    for seconds in (0, 10, 20):
        clock.freeze(t0 + dt.timedelta(seconds=seconds))
        assert throttle.hit(("three_a_minute", "ana")).allowed
    clock.freeze(t0 + dt.timedelta(seconds=30))
    refused = throttle.hit(("three_a_minute", "ana"))
    assert (refused.allowed, refused.rule) == (False, "three_a_minute")
    assert refused.retry_at == t0 + dt.timedelta(seconds=60)
    # One second early is still too early; at retry_at the oldest hit has left the window.
    clock.freeze(t0 + dt.timedelta(seconds=59))
    assert not throttle.hit(("three_a_minute", "ana")).allowed
    clock.freeze(t0 + dt.timedelta(seconds=60))
    assert throttle.hit(("three_a_minute", "ana")).allowed
    # The window slides: the hits at 10 s and 20 s still count.
    refused = throttle.hit(("three_a_minute", "ana"))
    assert not refused.allowed and refused.retry_at == t0 + dt.timedelta(seconds=70)


def test_subjects_are_counted_apart(store, clock):
    for _ in range(3):
        assert throttle.hit(("three_a_minute", "ana")).allowed
    assert not throttle.hit(("three_a_minute", "ana")).allowed
    assert throttle.hit(("three_a_minute", "rui")).allowed
    assert throttle.hit(("five_a_minute", "ana")).allowed  # same subject, another throttle


def test_all_or_nothing_across_pairs(store, clock):
    for _ in range(3):
        assert throttle.hit(("three_a_minute", "full")).allowed
    for _ in range(4):
        refused = throttle.hit(("five_a_minute", "spare"), ("three_a_minute", "full"))
        assert (refused.allowed, refused.rule) == (False, "three_a_minute")
    # None of the refused hits was counted against the pair that had room.
    for _ in range(5):
        assert throttle.hit(("five_a_minute", "spare")).allowed
    refused = throttle.hit(("five_a_minute", "spare"), ("three_a_minute", "elsewhere"))
    assert refused.rule == "five_a_minute"
    assert throttle.hit(("three_a_minute", "elsewhere")).allowed
    assert throttle.hit(("three_a_minute", "elsewhere")).allowed
    assert throttle.hit(("three_a_minute", "elsewhere")).allowed  # the refusal above took none


def test_an_empty_subject_is_not_throttled(store, clock):
    for _ in range(10):
        assert throttle.hit(("three_a_minute", "")).allowed
        assert throttle.hit(("three_a_minute", None)).allowed
    assert throttle.hit() == throttle.ALLOW


def test_a_limit_of_zero_refuses_everything(store, clock):
    refused = throttle.hit(("never", "ana"))
    assert (refused.allowed, refused.rule, refused.retry_at) == (False, "never", clock.now() + dt.timedelta(seconds=60))
    assert not throttle.hit(("five_a_minute", "ana"), ("never", "ana")).allowed
    for _ in range(5):
        assert throttle.hit(("five_a_minute", "ana")).allowed


def test_check_decides_like_hit_and_counts_nothing(store, clock):
    t0 = clock.now()
    for _ in range(10):
        assert throttle.check(("three_a_minute", "ana")).allowed
    for seconds in (0, 10, 20):
        clock.freeze(t0 + dt.timedelta(seconds=seconds))
        assert throttle.hit(("three_a_minute", "ana")).allowed  # the checks above took none
    clock.freeze(t0 + dt.timedelta(seconds=30))
    refused = throttle.check(("five_a_minute", "ana"), ("three_a_minute", "ana"))
    assert (refused.allowed, refused.rule, refused.retry_at) == (False, "three_a_minute", t0 + dt.timedelta(seconds=60))
    assert throttle.hit(("three_a_minute", "ana")) == refused
    assert throttle.check(("three_a_minute", "rui")).allowed
    assert not throttle.check(("never", "ana")).allowed
    clock.freeze(t0 + dt.timedelta(seconds=60))
    assert throttle.check(("three_a_minute", "ana")).allowed  # the oldest hit left the window
    for _ in range(5):
        assert throttle.hit(("five_a_minute", "ana")).allowed


def test_limits_come_from_the_policy(store, clock, settings):
    settings.CHAVE_POLICY = {**settings.CHAVE_POLICY,
                             "throttles": {**settings.CHAVE_POLICY["throttles"], "three_a_minute": (1, 60)}}
    assert throttle.hit(("three_a_minute", "ana")).allowed
    assert not throttle.hit(("three_a_minute", "ana")).allowed


@pytest.mark.django_db
def test_the_database_keeps_no_subject_in_clear(rules, clock):
    throttle.hit(("three_a_minute", "+351912345678"))
    row = ThrottleEvent.objects.get()
    assert "912345678" not in row.subject and len(row.subject) == 64


@pytest.mark.django_db
def test_events_that_no_longer_count_are_purged_by_housekeeping(rules, clock, settings):
    from chave.counter import housekeeping

    for _ in range(3):
        throttle.hit(("three_a_minute", "ana"))
    throttle.hit(("ten_an_hour", "ana"))
    clock.travel(dt.timedelta(minutes=5))
    # Old events no longer count, whether purged yet or not.
    assert throttle.hit(("three_a_minute", "ana")).allowed
    assert ThrottleEvent.objects.count() == 5
    # A throttle no longer configured leaves nothing behind either.
    settings.CHAVE_POLICY = {**settings.CHAVE_POLICY, "throttles": {
        k: v for k, v in settings.CHAVE_POLICY["throttles"].items() if k != "ten_an_hour"}}
    assert housekeeping.run().expired_records_forgotten == 4
    assert list(ThrottleEvent.objects.values_list("name", flat=True)) == ["three_a_minute"]
    assert throttle.hit(("three_a_minute", "ana"), ("three_a_minute", "ana")).allowed
    assert not throttle.hit(("three_a_minute", "ana")).allowed


def test_redis_keeps_no_subject_in_clear(rules, redis_store, clock):
    throttle.hit(("three_a_minute", "+351912345678"))
    keys = redis_store.keys("*")
    assert len(keys) == 1 and b"912345678" not in keys[0]
    assert 0 < redis_store.pttl(keys[0]) <= 60_000


# --- Concurrency ------------------------------------------------------------------------------


@pytest.mark.django_db(transaction=True)
@pytest.mark.parametrize("backend", ["db", "redis"])
def test_50_concurrent_hits_on_a_limit_of_10_allow_exactly_10(backend, rules, clock, request):
    if backend == "redis":
        request.getfixturevalue("redis_store")
    decisions = run_together(50, lambda i: throttle.hit(("ten_an_hour", "198.51.100.1")))
    assert [d.allowed for d in decisions].count(True) == 10
    assert {d.rule for d in decisions if not d.allowed} == {"ten_an_hour"}
    if backend == "db":
        assert ThrottleEvent.objects.count() == 10


@pytest.mark.django_db(transaction=True)
@pytest.mark.parametrize("backend", ["db", "redis"])
def test_concurrent_hits_on_pairs_never_exceed_either_limit(backend, rules, clock, request):
    if backend == "redis":
        request.getfixturevalue("redis_store")
    # Each thread hits its own subject under one throttle and a shared one under another.
    decisions = run_together(
        30, lambda i: throttle.hit(("three_a_minute", f"own-{i % 6}"), ("ten_an_hour", "shared"))
    )
    allowed = [i for i, d in enumerate(decisions) if d.allowed]
    assert len(allowed) == 10
    per_own = {}
    for i in allowed:
        per_own[i % 6] = per_own.get(i % 6, 0) + 1
    assert max(per_own.values()) <= 3


def test_per_ip_throttles_count_an_ipv6_subscriber_s_whole_64(store, clock):
    """Hopping between the addresses of one's own /64 gives no fresh budget; another /64 has its own."""
    assert throttle.hit(("two_per_ip", "2001:db8:1:2::1")).allowed
    assert throttle.hit(("two_per_ip", "2001:db8:1:2:aaaa:bbbb:cccc:dddd")).allowed
    assert not throttle.hit(("two_per_ip", "2001:db8:1:2::ffff")).allowed
    assert throttle.hit(("two_per_ip", "2001:db8:1:3::1")).allowed
    # IPv4 addresses count one by one, also when they arrive IPv4-mapped.
    assert throttle.hit(("two_per_ip", "192.0.2.1")).allowed
    assert throttle.hit(("two_per_ip", "::ffff:192.0.2.1")).allowed
    assert not throttle.hit(("two_per_ip", "192.0.2.1")).allowed
    assert throttle.hit(("two_per_ip", "192.0.2.2")).allowed


def test_a_refund_takes_back_exactly_what_the_hit_counted(store, clock):
    """An attempt that proved right is taken back (a correct PIN is no guess): only failures use
    up a limit. A refund takes back that hit only, and only under the names asked for."""
    for _ in range(10):  # ten right attempts: each counted while it ran, each taken back
        gate = throttle.hit(("three_a_minute", "ana"))
        assert gate.allowed
        throttle.refund(gate)
    wrong = [throttle.hit(("three_a_minute", "ana")) for _ in range(3)]
    assert all(w.allowed for w in wrong) and not throttle.hit(("three_a_minute", "ana")).allowed
    throttle.refund(wrong[0])
    assert throttle.hit(("three_a_minute", "ana")).allowed  # one place freed, one only
    assert not throttle.hit(("three_a_minute", "ana")).allowed
    both = throttle.hit(("five_a_minute", "rui"), ("two_per_ip", "10.0.0.1"))
    throttle.refund(both, "two_per_ip")  # the per-address count only
    assert throttle.hit(("two_per_ip", "10.0.0.1")).allowed and throttle.hit(("two_per_ip", "10.0.0.1")).allowed
    assert not throttle.hit(("two_per_ip", "10.0.0.1")).allowed
    for _ in range(4):
        assert throttle.hit(("five_a_minute", "rui")).allowed
    assert not throttle.hit(("five_a_minute", "rui")).allowed  # the pair's other count stayed
    throttle.refund(throttle.hit(("never", "ana")))  # a refusal counted nothing: nothing to take back
