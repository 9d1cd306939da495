"""One-time codes as a citizen and an attacker meet them: what is sent, how long it lasts, which
one counts, how often it may be tried and resent."""

import datetime as dt
import hashlib
import re

import pytest
from django.db import connection
from django.test import override_settings

from chave.codes import services as codes
from chave.codes.models import OneTimeCode
from chave.codes.tests.inbox import inbox  # noqa: F401 (fixture)
from chave.delivery.models import DevOutboxMessage, OutboundMessage

pytestmark = pytest.mark.django_db

MOBILE, EMAIL = "+351912345678", "ana@example.pt"


@pytest.fixture
def key(make_citizen, clock):
    return make_citizen(phone=MOBILE, email=EMAIL, pin="47190358", language="en")


def issue(key, tx="tx-1", *, purpose="login", channel="sms", destination=MOBILE, ip="192.0.2.1"):
    return codes.issue_code(key, purpose=purpose, transaction=tx, channel=channel, destination=destination, ip=ip,
                            portal="Portal das Finanças", language="en")


def verify(code, tx="tx-1", purpose="login"):
    return codes.verify_code(purpose=purpose, transaction=tx, submitted=code, ip="192.0.2.1")


def other_than(code: str) -> str:
    return f"{(int(code) + 1) % 1_000_000:06d}"


# --- The code and its message -----------------------------------------------------------------


def test_a_code_is_six_digits_sent_with_the_portal_and_the_webotp_line(key, clock, inbox):
    result = issue(key)
    assert result.sent and result.reason == "sent"
    assert result.expires_at == clock.now() + dt.timedelta(minutes=5)
    body = inbox.last(MOBILE).body
    code = inbox.last_code(MOBILE)
    assert re.fullmatch(r"[0-9]{6}", code)
    assert "Portal das Finanças" in body
    assert body.rstrip().endswith(f"@127.0.0.1 #{code}")
    # The result itself never carries the code.
    assert code not in repr(result)


def test_codes_come_from_the_csprng_with_leading_zeros_kept(key, monkeypatch, inbox):
    import secrets

    calls = []

    def randbelow(n):
        calls.append(n)
        return 42

    monkeypatch.setattr(secrets, "randbelow", randbelow)
    issue(key)
    assert calls == [1_000_000]
    assert inbox.last_code(MOBILE) == "000042"


def test_codes_are_spread_over_the_whole_space():
    produced = {codes._new_code() for _ in range(300)}
    assert len(produced) >= 295 and all(re.fullmatch(r"[0-9]{6}", c) for c in produced)
    assert {c[0] for c in produced} == set("0123456789")


def _database_text(exclude_tables: set[str]) -> str:
    """Every row of every table, as text, as someone with a stolen backup would read it."""
    chunks = []
    with connection.cursor() as cursor:
        for table in connection.introspection.table_names(cursor):
            if table in exclude_tables:
                continue
            cursor.execute(f"SELECT * FROM {connection.ops.quote_name(table)}")
            for row in cursor.fetchall():
                for value in row:
                    if isinstance(value, (bytes, bytearray, memoryview)):
                        value = bytes(value).decode("latin-1")
                    chunks.append(str(value))
    return "\n".join(chunks)


def test_the_code_is_stored_only_as_a_keyed_hash(key, inbox):
    issue(key)
    issue(key, "tx-2", channel="email", destination=EMAIL)
    sent = [inbox.last_code(MOBILE), inbox.last_code(EMAIL)]
    text = _database_text(exclude_tables={DevOutboxMessage._meta.db_table})  # the dev sink, by design
    assert "OneTimeCode" not in text  # sanity: we read rows, not names
    for code in sent:
        assert not re.search(rf"(?<![0-9]){code}(?![0-9])", text), f"code {code} found in the database"
        row = OneTimeCode.objects.get(code_hash=codes._code_hash("login", "tx-1" if code == sent[0] else "tx-2", code))
        assert row.code_hash != hashlib.sha256(code.encode()).hexdigest()
    # Keyed: with another server secret the same code gives another hash.
    with override_settings(CHAVE_PIN_PEPPER="another-deployment"):
        assert verify(sent[0]).reason == "wrong"
    assert verify(sent[0]).ok


# --- Lifetimes ----------------------------------------------------------------------------------


@pytest.mark.parametrize("purpose, minutes", [("login", 5), ("contact", 10), ("signing", 2)])
def test_lifetime_by_purpose(key, clock, inbox, purpose, minutes):
    lifetime = dt.timedelta(minutes=minutes)
    assert issue(key, "in-time", purpose=purpose).expires_at == clock.now() + lifetime
    in_time = inbox.last_code(MOBILE)
    clock.travel(lifetime - dt.timedelta(seconds=1))
    assert verify(in_time, "in-time", purpose).ok

    issue(key, "too-late", purpose=purpose)
    too_late = inbox.last_code(MOBILE)
    clock.travel(lifetime)
    result = verify(too_late, "too-late", purpose)
    assert (result.ok, result.reason) == (False, "expired")


# --- Which code counts, and how often -----------------------------------------------------------


def test_only_the_latest_code_is_valid(key, clock, inbox):
    issue(key)
    first = inbox.last_code(MOBILE)
    clock.travel(dt.timedelta(seconds=30))
    issue(key)
    second = inbox.last_code(MOBILE)
    assert first != second or pytest.skip("the CSPRNG drew the same code twice (1 in a million)")
    assert not verify(first).ok
    assert OneTimeCode.objects.filter(transaction="tx-1", invalidated_at__isnull=False).count() == 1
    assert verify(second).ok


def test_a_code_is_single_use(key, inbox):
    issue(key)
    code = inbox.last_code(MOBILE)
    assert verify(code).ok
    result = verify(code)
    assert (result.ok, result.reason) == (False, "used")


def test_three_wrong_entries_spend_the_code(key, clock, inbox):
    issue(key)
    code = inbox.last_code(MOBILE)
    wrong = other_than(code)
    assert [(r.reason, r.attempts_left) for r in (verify(wrong), verify(wrong))] == [("wrong", 2), ("wrong", 1)]
    third = verify(wrong)
    assert (third.ok, third.reason, third.attempts_left) == (False, "spent", 0)
    assert verify(code).reason == "spent"  # even the right one, now
    row = OneTimeCode.objects.get(transaction="tx-1")
    assert row.wrong_attempts == 3 and row.invalidated_at is not None
    # The citizen asks for a new one.
    clock.travel(dt.timedelta(seconds=30))
    assert issue(key).sent
    assert verify(inbox.last_code(MOBILE)).ok


def test_a_wrong_entry_then_the_right_one_is_fine(key, inbox):
    issue(key)
    code = inbox.last_code(MOBILE)
    assert verify(other_than(code)).reason == "wrong"
    assert verify(code).ok


def test_a_code_is_bound_to_its_purpose_and_transaction(key, inbox):
    issue(key, "tx-login", purpose="login")
    code = inbox.last_code(MOBILE)
    assert verify(code, "tx-login", "signing").reason == "no_code"
    assert verify(code, "tx-login", "contact").reason == "no_code"
    assert verify(code, "tx-other", "login").reason == "no_code"
    issue(key, "tx-other", channel="email", destination=EMAIL)
    other = inbox.last_code(EMAIL)
    if other != code:
        assert verify(code, "tx-other").reason == "wrong"
    assert verify(code, "tx-login").ok
    assert verify(other, "tx-other").ok


MALFORMED = ["", None, "12345", "1234567", "12345a", "abcdef", "１２３４５６", "١٢٣٤٥٦", "12345\x00", "-12345",
             "1" * 100_000, 12345, ["123456"], 12.5]


def test_malformed_submissions_count_nothing(key, inbox):
    issue(key)
    code = inbox.last_code(MOBILE)
    for submitted in MALFORMED:
        result = verify(submitted)
        assert (result.ok, result.reason) == (False, "malformed"), submitted
    assert OneTimeCode.objects.get(transaction="tx-1").wrong_attempts == 0
    assert verify(code).ok


def test_no_code_at_all(key):
    assert verify("123456", "never-issued").reason == "no_code"


# --- Resending ---------------------------------------------------------------------------------------


def test_resend_waits_30_seconds(key, clock, inbox):
    start = clock.now()
    assert issue(key).sent
    messages = OutboundMessage.objects.count()
    refused = issue(key)
    assert (refused.sent, refused.reason, refused.retry_at) == (False, "cooldown", start + dt.timedelta(seconds=30))
    clock.travel(dt.timedelta(seconds=29))
    assert issue(key).reason == "cooldown"
    assert OutboundMessage.objects.count() == messages and OneTimeCode.objects.count() == 1
    clock.travel(dt.timedelta(seconds=1))
    assert issue(key).sent


def test_at_most_three_sends_per_transaction(key, clock):
    results = []
    for _ in range(4):
        results.append(issue(key))
        clock.travel(dt.timedelta(seconds=30))
    assert [r.reason for r in results] == ["sent", "sent", "sent", "too_many_sends"]
    assert [r.sends_left for r in results[:3]] == [2, 1, 0]
    clock.travel(dt.timedelta(hours=1))
    assert issue(key).reason == "too_many_sends"  # for good: start a new login
    assert issue(key, "tx-2").sent


# --- SMS countries -----------------------------------------------------------------------------------


def test_sms_only_to_allowed_countries(make_citizen, clock, settings):
    american = make_citizen(phone="+12015550123", email="us@example.com")
    brazilian = make_citizen(phone="+5511912345678")
    refused = issue(american, "us", destination="+12015550123")
    assert (refused.sent, refused.reason) == (False, "country_not_allowed")
    assert not OneTimeCode.objects.filter(transaction="us").exists()
    # E-mail is not SMS: no country rule.
    assert issue(american, "us-mail", channel="email", destination="us@example.com").sent
    assert issue(brazilian, "br", destination="+5511912345678").sent
    settings.CHAVE_POLICY = {**settings.CHAVE_POLICY, "sms_country_allowlist": ["PT", "US"]}
    assert issue(american, "us-2", destination="+12015550123").sent
    assert issue(brazilian, "br-2", destination="+5511912345678").reason == "country_not_allowed"
