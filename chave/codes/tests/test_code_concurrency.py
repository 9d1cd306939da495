"""One code submitted many times at once: one success, or exactly three counted failures."""

import pytest

from chave.audit.models import AuditEvent
from chave.codes import services as codes
from chave.codes.models import OneTimeCode
from chave.throttle.tests.parallel import run_together

pytestmark = pytest.mark.django_db(transaction=True)

MOBILE = "+351912345678"


@pytest.fixture
def code(make_citizen, clock, outbox):
    key = make_citizen(phone=MOBILE)
    assert codes.issue_code(key, purpose="login", transaction="tx-1", channel="sms", destination=MOBILE).sent
    return outbox.last_code(MOBILE)


def submit(submitted):
    return codes.verify_code(purpose="login", transaction="tx-1", submitted=submitted, ip="192.0.2.1")


def test_50_parallel_submissions_of_one_valid_code_succeed_once(code):
    results = run_together(50, lambda i: submit(code))
    assert [r.ok for r in results].count(True) == 1
    assert {r.reason for r in results if not r.ok} == {"used"}
    row = OneTimeCode.objects.get(transaction="tx-1")
    assert row.used_at is not None and row.wrong_attempts == 0
    assert AuditEvent.objects.filter(event="code.verify", outcome="ok").count() == 1


def test_50_parallel_wrong_codes_spend_it_after_exactly_three(code):
    wrong = f"{(int(code) + 1) % 1_000_000:06d}"
    results = run_together(50, lambda i: submit(wrong))
    reasons = [r.reason for r in results]
    assert not any(r.ok for r in results)
    assert reasons.count("wrong") == 2, reasons
    assert reasons.count("spent") == 48, reasons
    row = OneTimeCode.objects.get(transaction="tx-1")
    assert row.wrong_attempts == 3 and row.invalidated_at is not None and row.used_at is None
    assert submit(code).reason == "spent"


def test_right_and_wrong_submissions_racing(code):
    wrong = f"{(int(code) + 1) % 1_000_000:06d}"
    results = run_together(40, lambda i: submit(code if i % 2 else wrong))
    row = OneTimeCode.objects.get(transaction="tx-1")
    successes = [r for r in results if r.ok]
    # Either the code was used before the third wrong entry, or it was spent first; never both,
    # never more than one success, never more than three counted wrong entries.
    assert len(successes) <= 1
    assert row.wrong_attempts <= 3
    assert (row.used_at is not None) == (len(successes) == 1)
    assert (row.invalidated_at is not None) == (row.wrong_attempts == 3) != (len(successes) == 1)
