"""Redis down (issue 17): the PIN and code throttles never open. A private redis-server is killed
under a running login: the database stands in (counting exactly, shared by every instance), and
once Redis is back (empty: it keeps nothing on disk) what the database counted meanwhile still
counts. What an attacker guessing PINs from one address sees: 429 at the same count, Redis or not.
"""

from __future__ import annotations

import pytest
from django.test import Client

from chave.identity import services as identity
from chave.throttle import services as throttle
from chave.throttle.models import ThrottleEvent
from chave.testing.faults import PrivateRedis

pytestmark = [pytest.mark.django_db, pytest.mark.faults]

ATTACKER = "198.51.100.23"
LIMIT = 4  # wrong PINs an address may try in the window (pin_attempt_per_ip, lowered for the test)


@pytest.fixture
def private_redis(settings):
    server = PrivateRedis()
    server.start()
    settings.CHAVE_THROTTLE_STORE, settings.CHAVE_REDIS_URL = "redis", server.url
    settings.CHAVE_POLICY = {**settings.CHAVE_POLICY, "throttles": {
        **settings.CHAVE_POLICY["throttles"], "pin_attempt_per_ip": (LIMIT, 15 * 60),
        "code_send_per_destination": (2, 3600)}}
    throttle._redis.cache_clear()
    throttle._outage.update(until=0.0, announced=0.0)
    yield server
    throttle._redis.cache_clear()
    throttle._outage.update(until=0.0, announced=0.0)
    server.close()


def guess(client, n: int) -> list[int]:
    """``n`` wrong PINs for a real key from the attacker's address: the statuses the pages answer."""
    return [client.post("/login/", {"identifier": "912345678", "pin": f"{1000 + i:04d}"},
                        REMOTE_ADDR=ATTACKER).status_code for i in range(n)]


def test_pin_guessing_is_throttled_at_the_same_count_with_redis_down_and_after_it_returns(
        private_redis, make_citizen, clock):
    make_citizen(phone="+351912345678")
    client = Client()
    assert guess(client, 2) == [400, 400]  # counted in Redis
    assert ThrottleEvent.objects.count() == 0

    private_redis.stop()  # Redis dies under the running service
    assert guess(client, LIMIT - 2) == [400] * (LIMIT - 2)  # counted in the database now: the budget is per store
    assert guess(client, 3) == [400, 400, 429]  # and it refuses at the limit
    assert ThrottleEvent.objects.filter(name="pin_attempt_per_ip").count() == LIMIT

    private_redis.start()  # back, and empty
    assert guess(client, 1) == [429]  # what the database counted during the outage still counts
    other = Client()
    assert other.post("/login/", {"identifier": "912345678", "pin": "0000"},
                      REMOTE_ADDR="203.0.113.9").status_code == 400  # another address is not affected


def test_another_instance_that_never_saw_the_outage_counts_it_too(private_redis, make_citizen):
    make_citizen(phone="+351912345678")
    private_redis.stop()
    for _ in range(LIMIT):
        assert identity.check_login_pin(None, "1234", ip=ATTACKER, channel="web").reason != "throttled"
    private_redis.start()
    assert identity.check_login_pin(None, "1234", ip=ATTACKER, channel="web").reason == "throttled"
    # An instance that fell back marks the outage in Redis: one that never noticed it reads the marker.
    throttle._outage.update(until=0.0, announced=0.0)
    assert throttle.check(("pin_attempt_per_ip", ATTACKER)).allowed is False
    assert identity.check_login_pin(None, "1234", ip=ATTACKER, channel="web").reason == "throttled"


def test_code_sends_are_capped_with_redis_down(private_redis, make_citizen):
    from chave.codes import services as codes

    key = make_citizen(phone="+351912345678")
    private_redis.stop()
    sent = [codes.issue_code(key, purpose="login", transaction=f"tx-{i}", channel="sms",
                             destination="+351912345678", ip="192.0.2.1").sent for i in range(3)]
    assert sent == [True, True, False]  # code_send_per_destination: 2 an hour, counted in the database
