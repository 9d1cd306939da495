"""Login PINs: how they are stored, what wrong ones cost, and what an attacker can learn."""

import datetime as dt
import hashlib
import hmac
import os
import statistics
import subprocess
import sys
import threading
import time
import uuid
from concurrent.futures import ThreadPoolExecutor

import pkcs11
import pytest
from argon2 import PasswordHasher
from argon2.exceptions import VerifyMismatchError
from django.core.management import CommandError, call_command
from django.test import override_settings
from pkcs11 import Attribute, ObjectClass

from chave.audit.models import AuditEvent
from chave.codes.tests.inbox import inbox  # noqa: F401 (fixture)
from chave.delivery.models import OutboundMessage
from chave.identity import pins, services
from chave.identity.models import IllegalTransition, Key, KeyStatus

pytestmark = pytest.mark.django_db

MOBILE, EMAIL = "+351912345678", "ana@example.pt"
RIGHT, WRONG = "47190358", "58204716"


@pytest.fixture
def key(make_citizen, clock):
    return make_citizen(phone=MOBILE, email=EMAIL, pin=RIGHT, language="en")


def fresh(key) -> Key:
    return Key.objects.select_related("citizen").get(pk=key.pk) if key else None


def attempt(key, pin, **kwargs):
    return services.check_login_pin(fresh(key), pin, **kwargs)


def notices(key) -> list[OutboundMessage]:
    return list(OutboundMessage.objects.filter(citizen=key.citizen, kind="notice").order_by("created_at"))


def policy_with(settings, **throttles):
    return {**settings.CHAVE_POLICY, "throttles": {**settings.CHAVE_POLICY["throttles"], **throttles}}


# --- Storage ----------------------------------------------------------------------------------


def test_stored_hash_is_argon2id_of_a_pin_peppered_in_the_hsm(key, settings):
    stored = fresh(key).pin_hash
    params = settings.CHAVE_ARGON2
    assert stored.startswith(pins.HSM_SCHEME + f"$argon2id$v=19$m={params['memory_cost']},t={params['time_cost']},"
                             f"p={params['parallelism']}$")
    argon2_hash = stored[len(pins.HSM_SCHEME):]
    assert RIGHT not in stored
    for plain in (hashlib.sha256(RIGHT.encode()).hexdigest(), hashlib.md5(RIGHT.encode()).hexdigest()):
        assert plain not in stored
    # Argon2 of the bare PIN does not verify: something secret went in first (the pepper).
    with pytest.raises(VerifyMismatchError):
        PasswordHasher().verify(argon2_hash, RIGHT)
    # Nor does Argon2 of the PIN peppered with every secret of the settings: whoever holds the
    # database and the configuration still cannot test a PIN without the HSM.
    for secret in (settings.CHAVE_PIN_PEPPER, settings.SECRET_KEY, settings.CHAVE_PIN_HSM_USER_PIN):
        guess = hmac.new(secret.encode(), b"chave-pin\x00" + RIGHT.encode(), hashlib.sha256).digest()
        with pytest.raises(VerifyMismatchError):
            PasswordHasher().verify(argon2_hash, guess)
    # Salted: the same PIN never gives the same hash twice.
    assert pins.hash_pin(RIGHT) != pins.hash_pin(RIGHT) != stored


def test_the_pepper_key_never_leaves_the_hsm(key, settings):
    """The key is a secret key of the token, sensitive and not extractable: its value cannot be read."""
    adapter = pins.pepper_hsm()

    def attributes(session):
        secret = session.get_key(object_class=ObjectClass.SECRET_KEY, label=settings.CHAVE_PIN_PEPPER_KEY_LABEL)
        assert secret[Attribute.SENSITIVE] and not secret[Attribute.EXTRACTABLE]
        assert secret[Attribute.NEVER_EXTRACTABLE] and secret[Attribute.ALWAYS_SENSITIVE]
        with pytest.raises(pkcs11.PKCS11Error):
            secret[Attribute.VALUE]
        return True

    assert adapter._run(attributes)


def test_a_hash_made_with_one_pepper_key_does_not_verify_with_another(key, settings):
    stored = fresh(key).pin_hash
    assert pins.verify(stored, RIGHT) == (True, False)
    other = settings.CHAVE_PIN_PEPPER_KEY_LABEL + "-another-deployment"
    with override_settings(CHAVE_PIN_PEPPER_KEY_LABEL=other):
        pins.ensure_pepper_key()
        assert pins.verify(stored, RIGHT) == (False, False)
        assert attempt(key, RIGHT).reason == "wrong"
    assert attempt(key, RIGHT).ok


def test_a_hash_of_the_scheme_before_the_hsm_pepper_moves_to_it_at_the_next_right_login(key, settings):
    """PINs stored before issue 17 (Argon2id t=3, 64 MiB over an HMAC keyed with the
    CHAVE_PIN_PEPPER setting) keep working and are re-hashed with the HSM pepper and today's cost."""
    old = PasswordHasher(time_cost=3, memory_cost=65536, parallelism=1)
    legacy = old.hash(hmac.new(settings.CHAVE_PIN_PEPPER.encode(), b"chave-pin\x00" + RIGHT.encode(),
                               hashlib.sha256).digest())
    Key.objects.filter(pk=key.pk).update(pin_hash=legacy)
    assert pins.verify(legacy, RIGHT) == (True, True)
    assert attempt(key, WRONG).reason == "wrong"
    assert fresh(key).pin_hash == legacy  # a wrong PIN cannot be re-hashed
    assert attempt(key, RIGHT).ok
    after = fresh(key).pin_hash
    p = settings.CHAVE_ARGON2
    assert after.startswith(pins.HSM_SCHEME + f"$argon2id$v=19$m={p['memory_cost']},t={p['time_cost']},")
    assert pins.verify(after, RIGHT) == (True, False)
    assert AuditEvent.objects.filter(event="pin.attempt", outcome="ok").latest("id").detail.get("rehashed") is True
    assert attempt(key, RIGHT).ok and fresh(key).pin_hash == after  # once only


def test_a_separate_token_can_hold_the_pepper(key, settings):
    with override_settings(CHAVE_PIN_HSM_TOKEN_LABEL="chave-pin-pepper-token", CHAVE_PIN_HSM_USER_PIN="pepper-pin-1"):
        assert pins.pepper_hsm().hmac_sha256 and pins.ensure_pepper_key() in (True, False)
        there = pins.hash_pin(RIGHT)
        assert pins.verify(there, RIGHT) == (True, False)
    # The signing token's key is another key: the hash made with the separate token does not verify.
    assert pins.verify(there, RIGHT) == (False, False)


def test_without_the_pepper_key_in_production_a_pin_check_is_unavailable_not_wrong(key, settings):
    """Production never makes the key by itself (`chave pin-pepper init` does): a missing key is
    an outage (503 on the pages, ops/errors.py), never a PIN judged wrong."""
    with override_settings(IS_PRODUCTION=True, CHAVE_PIN_PEPPER_KEY_LABEL="chave-pin-pepper-never-made"):
        with pytest.raises(pins.PepperUnavailable):
            attempt(key, RIGHT)
    assert fresh(key).pin_failures == 0


def test_pin_pepper_command_makes_the_key_once(settings, capsys):
    label = f"chave-pin-pepper-command-test-{uuid.uuid4().hex[:8]}"  # the token outlives the run
    with override_settings(CHAVE_PIN_PEPPER_KEY_LABEL=label):
        call_command("pin_pepper", "init")
        call_command("pin_pepper", "init")
        call_command("pin_pepper", "status")
        out = capsys.readouterr().out
        assert "made in token" in out and "already present" in out and "present in token" in out
    with override_settings(CHAVE_PIN_PEPPER_KEY_LABEL=label + "-absent"):
        with pytest.raises(CommandError, match="chave pin-pepper init"):
            call_command("pin_pepper", "status")


def test_default_argon2_cost_is_owasp_minimum():
    """Outside the test settings, PINs are hashed with OWASP's minimum Argon2id: 19 MiB, t=2, p=1."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("CHAVE_")}
    env.update(DJANGO_SETTINGS_MODULE="chave.settings", CHAVE_ENV="dev")
    out = subprocess.run([sys.executable, "-c", "import django; django.setup(); from django.conf import settings;"
                          "print(sorted(settings.CHAVE_ARGON2.items()))"], env=env, capture_output=True, text=True,
                         check=True).stdout
    assert out.strip() == "[('memory_cost', 19456), ('parallelism', 1), ('time_cost', 2)]"


def test_concurrent_argon2_computations_are_bounded(key, settings, monkeypatch):
    """Eight PIN checks at once run at most CHAVE_ARGON2_CONCURRENCY Argon2 computations at a time
    (each holds its memory_cost while it runs); the others wait their turn and all complete."""
    stored = fresh(key).pin_hash
    running, peak, guard = [0], [0], threading.Lock()
    real_verify = PasswordHasher.verify

    def watched(self, *args, **kwargs):
        with guard:
            running[0] += 1
            peak[0] = max(peak[0], running[0])
        try:
            time.sleep(0.05)  # hold the slot long enough for the others to pile up
            return real_verify(self, *args, **kwargs)
        finally:
            with guard:
                running[0] -= 1

    monkeypatch.setattr(PasswordHasher, "verify", watched)
    for bound in (1, 2):
        peak[0] = 0
        with override_settings(CHAVE_ARGON2_CONCURRENCY=bound):
            with ThreadPoolExecutor(8) as pool:
                results = list(pool.map(lambda pin: pins.verify(stored, pin), [RIGHT, WRONG] * 4))
        assert results == [(True, False), (False, False)] * 4
        assert peak[0] == bound


ARGON2_ON_EIGHT_THREADS = """
import os, threading
from argon2 import PasswordHasher
from chave.identity import pins

def resident_mib():
    return next(int(line.split()[1]) // 1024 for line in open("/proc/self/status") if line.startswith("VmRSS:"))

hasher = PasswordHasher(time_cost=1, memory_cost=19456, parallelism=1)
stored = hasher.hash("4719")
pins._bounded(lambda: hasher.verify(stored, "4719"))
before = resident_mib()

def checks():
    for _ in range(3):
        pins._bounded(lambda: hasher.verify(stored, "4719"))
        bytearray(200_000)  # what a request allocates between checks

threads = [threading.Thread(target=checks) for _ in range(8)]
for thread in threads:
    thread.start()
for thread in threads:
    thread.join()
print(resident_mib() - before)
"""


def test_a_server_process_keeps_no_argon2_memory_after_its_checks():
    """Eight threads checking PINs one at a time (19 MiB each, the default cost) leave the process
    about as big as one check did: each check reuses the block the last one freed, whichever thread
    made it, where glibc would otherwise keep one per thread (about 150 MB more)."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("CHAVE_")}
    env.update(DJANGO_SETTINGS_MODULE="chave.settings", CHAVE_ENV="dev", CHAVE_ARGON2_CONCURRENCY="1")
    code = "import django; django.setup()\n" + ARGON2_ON_EIGHT_THREADS
    grown = int(subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True,
                               check=True).stdout)
    assert grown < 2 * 19, f"{grown} MiB more after eight threads' checks"


def test_changed_argon2_parameters_rehash_the_pin_at_the_next_right_use(key, settings):
    before = fresh(key).pin_hash
    stronger = {**settings.CHAVE_ARGON2, "time_cost": settings.CHAVE_ARGON2["time_cost"] + 1}
    with override_settings(CHAVE_ARGON2=stronger):
        assert attempt(key, WRONG).reason == "wrong"
        assert fresh(key).pin_hash == before  # a wrong PIN cannot be re-hashed
        assert attempt(key, RIGHT).ok
        after = fresh(key).pin_hash
        assert after != before and f",t={stronger['time_cost']}," in after
        assert pins.verify(after, RIGHT) == (True, False)
        event = AuditEvent.objects.filter(event="pin.attempt", outcome="ok").latest("id")
        assert event.detail.get("rehashed") is True
    # Back to the original parameters: re-hashed again, still the same PIN.
    assert attempt(key, RIGHT).ok
    assert f",t={settings.CHAVE_ARGON2['time_cost']}," in fresh(key).pin_hash


# --- Wrong PINs: locks, block, notices -------------------------------------------------------


def test_wrong_pins_lock_for_longer_and_longer_then_block(key, clock, inbox):
    start = clock.now()
    already = len(notices(key))
    assert [attempt(key, WRONG).reason for _ in range(2)] == ["wrong", "wrong"]
    assert fresh(key).status == KeyStatus.ACTIVE and len(notices(key)) == already

    steps = [(3, 5), (4, 15), (5, 60)]
    for failures, minutes in steps:
        decision = attempt(key, WRONG)
        assert (decision.ok, decision.reason) == (False, "locked")
        assert decision.until == clock.now() + dt.timedelta(minutes=minutes)
        k = fresh(key)
        assert (k.status, k.pin_failures, k.locked_until) == (KeyStatus.LOCKED, failures, decision.until)
        # The citizen is told on every contact, and each lock is audited.
        sent = notices(key)[already:]
        assert sorted(m.destination for m in sent) == sorted([EMAIL, MOBILE])
        already += 2
        assert "locked" in inbox.last(MOBILE).body and "locked" in inbox.last(EMAIL).body
        assert AuditEvent.objects.filter(event="key.locked", citizen=key.citizen).count() == failures - 2
        # While locked even the right PIN is refused, and nothing is counted.
        clock.travel(dt.timedelta(minutes=minutes) - dt.timedelta(seconds=1))
        assert attempt(key, RIGHT).reason == "locked"
        assert attempt(key, WRONG).reason == "locked"
        assert fresh(key).pin_failures == failures
        clock.travel(dt.timedelta(seconds=1))

    assert clock.now() == start + dt.timedelta(minutes=5 + 15 + 60)
    decision = attempt(key, WRONG)
    assert (decision.ok, decision.reason) == (False, "blocked")
    k = fresh(key)
    assert (k.status, k.pin_failures) == (KeyStatus.BLOCKED, 6)
    assert sorted(m.destination for m in notices(key)[already:]) == sorted([EMAIL, MOBILE])
    assert "blocked" in inbox.last(MOBILE).body
    assert AuditEvent.objects.filter(event="key.blocked", citizen=key.citizen).count() == 1

    # Blocked stays blocked, however long one waits, until it is unlocked.
    clock.travel(dt.timedelta(days=365))
    assert attempt(key, RIGHT).reason == "blocked"
    services.unlock_key(fresh(key), by="counter", ip="192.0.2.9")
    k = fresh(key)
    assert (k.status, k.pin_failures) == (KeyStatus.ACTIVE, 0)
    assert attempt(key, RIGHT).ok
    # The count starts again: the next lock is the first step.
    assert [attempt(key, WRONG).reason for _ in range(3)] == ["wrong", "wrong", "locked"]
    assert fresh(key).locked_until == clock.now() + dt.timedelta(minutes=5)


def test_lock_steps_and_block_come_from_the_policy(key, settings):
    settings.CHAVE_POLICY = {**settings.CHAVE_POLICY, "pin_lock_steps": {2: 30}, "pin_block_after": 3}
    assert [attempt(key, WRONG).reason for _ in range(2)] == ["wrong", "locked"]
    assert fresh(key).locked_until == fresh(key).status_changed_at + dt.timedelta(seconds=30)


def test_a_right_pin_resets_the_count(key, clock):
    assert [attempt(key, p).reason for p in (WRONG, WRONG, RIGHT, WRONG, WRONG)] == ["wrong", "wrong", "ok", "wrong", "wrong"]
    assert (fresh(key).status, fresh(key).pin_failures) == (KeyStatus.ACTIVE, 2)
    assert attempt(key, WRONG).reason == "locked"
    clock.travel(dt.timedelta(minutes=5))
    assert attempt(key, RIGHT).ok
    k = fresh(key)
    assert (k.status, k.pin_failures, k.locked_until) == (KeyStatus.ACTIVE, 0, None)


def test_a_pin_change_resets_the_count_but_does_not_unlock(key):
    for _ in range(3):
        attempt(key, WRONG)
    services.change_pin(fresh(key), "36925814", reason="counter")
    k = fresh(key)
    assert (k.status, k.pin_failures) == (KeyStatus.LOCKED, 0)
    services.unlock_key(k, by="counter")
    assert attempt(key, "36925814").ok and attempt(key, RIGHT).reason == "wrong"


def test_unlocking_an_active_key_is_refused(key):
    with pytest.raises(IllegalTransition):
        services.unlock_key(fresh(key), by="counter")


def test_per_ip_throttle_refuses_before_the_key_counter_moves(key, settings):
    settings.CHAVE_POLICY = policy_with(settings, pin_attempt_per_ip=(2, 15 * 60))
    attacker, owner = "198.51.100.66", "192.0.2.10"
    assert [attempt(key, WRONG, ip=attacker).reason for _ in range(2)] == ["wrong", "wrong"]
    decision = attempt(key, WRONG, ip=attacker)
    assert (decision.ok, decision.reason) == (False, "throttled") and decision.until is not None
    assert attempt(key, RIGHT, ip=attacker).reason == "throttled"  # even the right one
    assert attempt(None, WRONG, ip=attacker).reason == "throttled"  # and any other number
    k = fresh(key)
    assert (k.status, k.pin_failures) == (KeyStatus.ACTIVE, 2)
    # The owner, elsewhere, is not held back by the attacker's address.
    assert attempt(key, RIGHT, ip=owner).ok
    assert AuditEvent.objects.filter(event="pin.attempt", outcome="throttled", ip=attacker).count() == 3


def test_right_pins_do_not_use_up_the_address_s_budget(key, settings):
    """Many citizens may share one address (a carrier's NAT, an office): their right PINs are not
    guesses, so only wrong ones count against it."""
    settings.CHAVE_POLICY = policy_with(settings, pin_attempt_per_ip=(2, 15 * 60))
    shared = "198.51.100.68"
    assert all(attempt(key, RIGHT, ip=shared).ok for _ in range(5))
    assert [attempt(None, WRONG, ip=shared).reason for _ in range(3)] == ["unknown", "unknown", "throttled"]
    assert attempt(key, RIGHT, ip=shared).reason == "throttled"  # once over it, even the right one waits


def test_per_ip_throttle_default_is_30_per_15_minutes(key, clock):
    ip = "198.51.100.67"
    for i in range(30):
        assert attempt(None, WRONG, ip=ip).reason == "unknown"
    assert attempt(None, WRONG, ip=ip).reason == "throttled"
    clock.travel(dt.timedelta(minutes=15))
    assert attempt(None, WRONG, ip=ip).reason == "unknown"


# --- No user enumeration -------------------------------------------------------------------------


def test_unknown_number_and_wrong_pin_do_the_same_work(key):
    def timed(call):
        started = time.perf_counter()
        decision = call()
        return time.perf_counter() - started, decision

    stored = fresh(key).pin_hash
    # Warm up both paths (the dummy hash is made once per parameter set).
    services.check_login_pin(None, WRONG)
    services.check_login_pin(fresh(key), WRONG)
    bare, unknown, wrong = [], [], []
    for _ in range(15):
        k = fresh(key)
        bare.append(timed(lambda: pins.verify(stored, WRONG))[0])
        seconds, decision = timed(lambda: services.check_login_pin(None, WRONG))
        assert (decision.ok, decision.reason, decision.key) == (False, "unknown", None)
        unknown.append(seconds)
        seconds, decision = timed(lambda: services.check_login_pin(k, WRONG))
        assert (decision.ok, decision.reason) == (False, "wrong")
        wrong.append(seconds)
        Key.objects.filter(pk=key.pk).update(pin_failures=0)  # stay below the lock
    ratio = statistics.median(unknown) / statistics.median(wrong)
    assert 0.5 <= ratio <= 2, (ratio, statistics.median(unknown), statistics.median(wrong))
    # The unknown number really ran Argon2 (it is no cheap early return).
    assert statistics.median(unknown) >= 0.5 * statistics.median(bare)


def test_locked_and_blocked_keys_also_run_argon2(key):
    for _ in range(3):
        attempt(key, WRONG)
    stored = fresh(key).pin_hash
    bare = statistics.median(_seconds(lambda: pins.verify(stored, WRONG)) for _ in range(7))
    locked = statistics.median(_seconds(lambda: attempt(key, WRONG)) for _ in range(7))
    assert locked >= 0.5 * bare


def _seconds(call) -> float:
    started = time.perf_counter()
    call()
    return time.perf_counter() - started
