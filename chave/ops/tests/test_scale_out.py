"""The scale-out recipe (issue 17, goal 2): two web instances and two delivery workers started from
``deploy/systemd``, behind nginx with ``deploy/nginx/chave.conf``, sharing one PostgreSQL and one
Redis (``chave/testing/stack.py``). What citizens and an attacker observe through nginx: logins whose
pages are answered by both instances succeed (one session); each login's code reaches the phone
exactly once though two workers share the queue; wrong PINs from one address, spread over both
instances, are refused (429) once the per-address limit is reached: counted once, not per instance,
and for that address only (nginx passes each client's address on, and the instances read it).
"""

from __future__ import annotations

import collections
import re
import threading

import pytest

from chave import policy
from chave.testing import population
from chave.testing.faults import PrivateRedis, chave_env, run_chave
from chave.testing.httpcitizen import Browser, Phone, sms_login, source_address
from chave.testing.stack import Stack, stack_env

pytestmark = pytest.mark.once  # its own PostgreSQL, Redis and nginx, whatever the suite's database

PIN = "4719"
CITIZENS = 6


@pytest.fixture
def redis_server():
    server = PrivateRedis()
    server.start()
    yield server
    server.close()


@pytest.fixture
def stack(chave_database, redis_server, tmp_path):
    cheap = {k: v for k, v in chave_env(chave_database, tmp_path).items() if k.startswith("CHAVE_ARGON2")}
    env = stack_env(chave_database, redis_server.url, tmp_path / "data", **cheap)
    # One PIN hash for everyone, made as the instances make it (their settings, their pepper).
    pin_hash = run_chave({**chave_env(chave_database, tmp_path), **env}, "shell", "-c",
                         f"from chave.identity import pins; print(pins.hash_pin({PIN!r}))").stdout.split()[-1]
    population.seed(chave_database, CITIZENS, pin_hash=pin_hash)
    with Stack(2, env) as running:
        yield running


def upstreams_of(log: str, address: str, request: str = "") -> set[str]:
    pattern = rf"^{re.escape(address)} .*\"{request}.*upstream=(\S+)"
    return set(re.findall(pattern, log, re.M))


def test_two_instances_behind_nginx_behave_as_one(stack, chave_database):
    phone = Phone(chave_database)
    results, lock = {}, threading.Lock()

    def citizen(n: int):
        browser = Browser(stack.url, source=source_address(n))
        own_phone = Phone(chave_database)
        try:
            login = sms_login(browser, own_phone, population.phone(n), PIN)
        finally:
            browser.close()
            own_phone.close()
        with lock:
            results[n] = login

    threads = [threading.Thread(target=citizen, args=(n,)) for n in range(CITIZENS)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=120)

    assert {n: (r.ok, r.step, r.status) for n, r in results.items()} == {n: (True, "", 200) for n in range(CITIZENS)}
    # Exactly one code per login: none lost, none sent twice by the two workers.
    assert [len(phone.messages(population.phone(n), 0)) for n in range(CITIZENS)] == [1] * CITIZENS
    log = stack.access_log()
    assert collections.Counter(re.findall(r"upstream=(\S+)", log)).keys() == {f"127.0.0.1:{p}" for p in stack.instance_ports}
    # Some citizen's pages were answered by both instances, and the login still went through.
    assert any(len(upstreams_of(log, source_address(n))) == 2 for n in range(CITIZENS))

    # Wrong PINs from one address (numbers without a key), through nginx.
    limit = policy.throttle("pin_attempt_per_ip").limit
    attacker = source_address(9999)
    browser = Browser(stack.url, source=attacker)
    assert browser.get("/login/").status_code == 200
    statuses = [browser.post("/login/", {"identifier": f"+35196{i:07d}", "pin": "1357"}).status_code
                for i in range(limit + 2)]
    browser.close()
    assert 429 not in statuses[:limit]
    assert statuses[limit:] == [429, 429]
    assert len(upstreams_of(stack.access_log(), attacker, "POST /login/")) == 2  # both instances counted
    # The limit is the attacker's address's, not everyone's behind nginx: a citizen still signs in.
    browser = Browser(stack.url, source=source_address(CITIZENS + 1))
    assert sms_login(browser, phone, population.phone(0), PIN).ok
    browser.close()
    phone.close()
