"""Send caps against SMS pumping: per key, per destination and per client IP, each 'per hour',
counted across login transactions."""

import datetime as dt
import itertools

import pytest

from chave.audit.models import AuditEvent
from chave.codes import services as codes
from chave.codes.models import OneTimeCode
from chave.delivery.models import OutboundMessage

pytestmark = pytest.mark.django_db

_tx = itertools.count()


def send(key, destination, *, channel="sms", ip="192.0.2.1"):
    """One code in a transaction of its own: the per-transaction limits never apply."""
    return codes.issue_code(key, purpose="login", transaction=f"tx-{next(_tx)}", channel=channel,
                            destination=destination, ip=ip, language="en")


def only(settings, **limits):
    """The policy with the other send caps out of the way, so one cap is tested at a time."""
    roomy = {"code_send_per_key": (1000, 3600), "code_send_per_destination": (1000, 3600),
             "code_send_per_ip": (1000, 3600)}
    throttles = {**settings.CHAVE_POLICY["throttles"], **roomy, **limits}
    settings.CHAVE_POLICY = {**settings.CHAVE_POLICY, "throttles": throttles}


def keep_defaults(settings, *names):
    defaults = settings.CHAVE_POLICY["throttles"]
    only(settings, **{n: defaults[n] for n in names})


def test_defaults_are_the_domain_numbers(settings):
    throttles = settings.CHAVE_POLICY["throttles"]
    assert throttles["code_send_per_key"] == (10, 3600)
    assert throttles["code_send_per_destination"] == (10, 3600)
    assert throttles["code_send_per_ip"] == (30, 3600)


def test_ten_codes_per_destination_per_hour(make_citizen, clock, settings):
    keep_defaults(settings, "code_send_per_destination")
    key = make_citizen(phone="+351912345678", email="ana@example.pt")
    start = clock.now()
    for i in range(10):
        assert send(key, "+351912345678", ip=f"192.0.2.{i}").sent
        clock.travel(dt.timedelta(minutes=1))
    codes_before, messages_before = OneTimeCode.objects.count(), OutboundMessage.objects.count()
    refused = send(key, "+351912345678", ip="192.0.2.99")
    assert (refused.sent, refused.reason) == (False, "rate_limited")
    assert refused.retry_at == start + dt.timedelta(hours=1)
    assert (OneTimeCode.objects.count(), OutboundMessage.objects.count()) == (codes_before, messages_before)
    # Another destination of the same key is not capped by this one.
    assert send(key, "ana@example.pt", channel="email").sent
    # The hour slides: the first send no longer counts at retry_at.
    clock.travel(refused.retry_at - clock.now() - dt.timedelta(seconds=1))
    assert send(key, "+351912345678").reason == "rate_limited"
    clock.travel(dt.timedelta(seconds=1))
    assert send(key, "+351912345678").sent
    assert send(key, "+351912345678").reason == "rate_limited"


def test_ten_codes_per_key_per_hour_whatever_the_destination(make_citizen, clock, settings):
    keep_defaults(settings, "code_send_per_key")
    key = make_citizen(phone="+351912345678", email="ana@example.pt")
    other = make_citizen(phone="+351936000111")
    for i in range(10):
        destination, channel = ("+351912345678", "sms") if i % 2 else ("ana@example.pt", "email")
        assert send(key, destination, channel=channel).sent
    assert send(key, "+351912345678").reason == "rate_limited"
    assert send(key, "ana@example.pt", channel="email").reason == "rate_limited"
    assert send(other, "+351936000111").sent  # another key is not held back
    clock.travel(dt.timedelta(hours=1))
    assert send(key, "+351912345678").sent


def test_thirty_codes_per_client_ip_per_hour_under_the_default_caps(make_citizen, clock):
    keys = [make_citizen(phone=f"+35191234560{i}") for i in range(4)]
    ip = "198.51.100.23"
    for key in keys[:3]:
        for _ in range(10):
            assert send(key, key.contacts.get().value, ip=ip).sent
        # Ten for this key: its own cap is reached too.
        assert send(key, key.contacts.get().value, ip="192.0.2.200").reason == "rate_limited"
    fourth = keys[3]
    refused = send(fourth, fourth.contacts.get().value, ip=ip)
    assert (refused.sent, refused.reason) == (False, "rate_limited")
    # The fourth key was not at fault: from another address it gets its code.
    assert send(fourth, fourth.contacts.get().value, ip="192.0.2.201").sent
    events = AuditEvent.objects.filter(event="code.send", outcome="rate_limited", ip=ip)
    assert events.count() == 1 and events.get().citizen == fourth.citizen


def test_a_refused_send_is_not_counted_against_any_cap(make_citizen, settings):
    only(settings, code_send_per_key=(3, 3600), code_send_per_ip=(2, 3600))
    key = make_citizen(phone="+351912345678")
    assert send(key, "+351912345678", ip="198.51.100.1").sent
    assert send(key, "+351912345678", ip="198.51.100.1").sent
    for _ in range(5):
        assert send(key, "+351912345678", ip="198.51.100.1").reason == "rate_limited"  # the IP cap
    # The key's cap still has its third send: the refusals above took nothing from it.
    assert send(key, "+351912345678", ip="198.51.100.2").sent
    assert send(key, "+351912345678", ip="198.51.100.3").reason == "rate_limited"
