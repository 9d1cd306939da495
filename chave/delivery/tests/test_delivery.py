"""Delivery through the real worker: durable, retried with backoff, never lost, never sent twice.

The worker is django-tasks' database worker, run in batch mode in the test process
(``run_worker``), so every test here is transactional: the worker sees only committed rows.

About deferred retries: the worker picks a task only once its ``run_after`` has passed on the
real wall clock (``django_tasks_db`` reads ``timezone.now()``, not our service clock, and tests
never sleep). After checking that a retry was deferred by the right backoff, and that the worker
does not run it early, :func:`make_retries_due` moves the deferred tasks to the past: the same
rows the worker would pick a few seconds later, only sooner.
"""

from __future__ import annotations

import datetime as dt
import re
import threading

import pytest
from django.db import connections, transaction
from django.utils import timezone
from django_tasks_db.management.commands.db_worker import Worker
from django_tasks_db.models import DBTaskResult

from chave import policy
from chave.audit.models import AuditEvent
from chave.codes import services as codes
from chave.delivery import services as delivery
from chave.delivery.messages import code_in, code_message
from chave.delivery.models import DevOutboxMessage, OutboundMessage
from chave.delivery.tasks import deliver

from .conftest import BOUND, wait_for

# Only the apps delivery touches: a transactional test then empties a few tables, not all of them.
DELIVERY_APPS = ["chave.delivery", "django_tasks_db", "chave.audit", "chave.identity", "chave.codes", "chave.throttle"]
pytestmark = [pytest.mark.django_db(transaction=True, available_apps=DELIVERY_APPS), pytest.mark.gateway]

PHONE = "+351912345678"
X_USER = "1234567890"
PORTAL = "Portal das Finanças"


def queue_code(channel: str, destination: str, code: str = "482913", *, expires_in=dt.timedelta(minutes=5)):
    from chave import clock

    text = code_message(purpose="login", code=code, portal=PORTAL, lifetime=expires_in, language="en",
                        channel=channel)
    return delivery.queue_message(channel=channel, destination=destination, subject=text.subject, body=text.body,
                                  redacted=text.redacted, kind="code", expires_at=clock.now() + expires_in)


def tasks_for(message) -> list[DBTaskResult]:
    return list(DBTaskResult.objects.filter(args_kwargs__args__0=str(message.pk)).order_by("enqueued_at"))


def waiting_tasks(message) -> list[DBTaskResult]:
    return [task for task in tasks_for(message) if task.status == "READY"]


def make_retries_due() -> int:
    """Bring deferred tasks to the present (see the module docstring for why)."""
    return DBTaskResult.objects.filter(status="READY").update(run_after=timezone.now() - dt.timedelta(seconds=1))


def reload(message) -> OutboundMessage:
    return OutboundMessage.objects.get(pk=message.pk)


def delivery_events(outcome: str) -> int:
    return AuditEvent.objects.filter(event="message.delivery", outcome=outcome).count()


# --- Durable: exists exactly when its cause committed -------------------------------------------


def test_a_message_queued_in_a_transaction_that_rolls_back_is_never_sent(x_api, run_worker):
    class Abandoned(Exception):
        pass

    with pytest.raises(Abandoned), transaction.atomic():
        queue_code("x", X_USER)
        raise Abandoned

    run_worker()

    assert x_api.requests == 0
    assert not OutboundMessage.objects.exists()
    assert not DBTaskResult.objects.exists()


def test_a_committed_code_goes_out_by_sms_through_kannel(kannel, make_citizen, run_worker):
    key = make_citizen(phone=None, email="maria@example.pt")  # its welcome notice goes by e-mail (sink)
    result = codes.issue_code(key, purpose="login", transaction="tx-sms", channel="sms", destination=PHONE,
                              portal=PORTAL, language="pt-pt")
    assert result.sent

    run_worker()

    [sms] = kannel.wait_for_sms(PHONE)
    assert sms.text.startswith("Chave: o seu código de segurança")  # accents intact, in Portuguese
    assert PORTAL in sms.text
    assert re.search(r"\n\n@127\.0\.0\.1 #\d{6}$", sms.text)
    message = OutboundMessage.objects.get(channel="sms")
    assert (message.status, message.attempts, message.provider) == ("sent", 1, "kannel")
    assert message.provider_ref == "0: Accepted for delivery"


def test_a_committed_code_goes_out_by_email_through_smtp(smtp_server, make_citizen, run_worker):
    key = make_citizen(phone=None, email="maria@example.pt")
    codes.issue_code(key, purpose="login", transaction="tx-mail", channel="email", destination="maria@example.pt",
                     portal=PORTAL, language="en")

    run_worker()

    mails = [m for m in smtp_server.received if m.message["Subject"] == "Your Chave security code"]
    assert len(mails) == 1
    assert mails[0].rcpt_tos == ["maria@example.pt"]
    assert PORTAL in mails[0].body
    message = OutboundMessage.objects.get(kind="code")
    assert message.status == "sent"
    assert message.provider_ref == mails[0].message["Message-ID"]


def test_security_notices_go_to_every_verified_contact(make_citizen, run_worker):
    make_citizen(phone=PHONE, email="maria@example.pt")  # registering queues the "key active" notice

    run_worker()

    assert {(m.channel, m.to) for m in DevOutboxMessage.objects.all()} == {
        ("sms", PHONE), ("email", "maria@example.pt")}


# --- Retried with backoff while a gateway fails ------------------------------------------------


def test_kannel_refusing_for_now_defers_the_sms_then_it_is_sent_once(kannel, run_worker, clock):
    kannel.stop_smsc()  # bearerbox has no SMSC: smsbox answers 503 "Temporal failure, try again later."
    message = queue_code("sms", PHONE)
    failed_at = clock.now()

    run_worker()

    message = reload(message)
    assert (message.status, message.attempts) == ("queued", 1)
    assert "503" in message.last_error
    first_backoff = dt.timedelta(seconds=policy.get("delivery_backoff_seconds")[0])
    assert message.next_attempt_at == failed_at + first_backoff
    [retry] = waiting_tasks(message)
    assert retry.run_after == message.next_attempt_at
    assert retry.run_after > timezone.now()  # the worker must wait for it
    assert delivery_events("retry") == 1

    run_worker()  # too early: the deferred task is not due
    assert reload(message).attempts == 1

    kannel.start_smsc()
    assert make_retries_due() == 1
    run_worker()

    [sms] = kannel.wait_for_sms(PHONE)
    assert sms.text.endswith("#482913")
    message = reload(message)
    assert (message.status, message.attempts, message.last_error) == ("sent", 2, "")
    assert waiting_tasks(message) == []
    run_worker()
    assert len(kannel.wait_for_sms(PHONE)) == 1


def test_an_unreachable_gateway_is_retried_with_growing_backoff(x_api, settings, run_worker, clock, closed_port):
    x_url = settings.CHAVE_X_API_URL
    settings.CHAVE_X_API_URL = f"http://127.0.0.1:{closed_port}"  # connection refused
    message = queue_code("x", X_USER)
    steps = policy.get("delivery_backoff_seconds")

    for attempt in (1, 2, 3):
        if attempt > 1:
            make_retries_due()
        run_worker()
        message = reload(message)
        assert (message.status, message.attempts) == ("queued", attempt)
        assert "unreachable" in message.last_error
        assert message.next_attempt_at == clock.now() + dt.timedelta(seconds=steps[attempt - 1])
        [retry] = waiting_tasks(message)
        assert retry.run_after == message.next_attempt_at

    settings.CHAVE_X_API_URL = x_url  # the gateway is back
    make_retries_due()
    run_worker()

    assert reload(message).status == "sent"
    assert [dm.participant_id for dm in x_api.delivered] == [X_USER]


def test_a_permanent_refusal_fails_the_message_without_retry(x_api, settings, run_worker):
    settings.CHAVE_X_BEARER_TOKEN = "revoked-token"  # X answers 401
    message = queue_code("x", X_USER)

    run_worker()

    message = reload(message)
    assert (message.status, message.attempts) == ("failed", 1)
    assert "401" in message.last_error
    assert message.body_sealed == ""
    assert waiting_tasks(message) == []
    assert x_api.delivered == []
    assert delivery_events("failed") == 1


def test_a_refusal_quoting_the_message_leaves_no_code_behind(x_api, run_worker):
    x_api.fail_with = [400]  # X answers {"detail": "cannot deliver 'Chave: your security code ... is 604172. ...'"}
    message = queue_code("x", X_USER, code="604172")

    run_worker()

    message = reload(message)
    assert message.status == "failed"
    assert "400" in message.last_error and "is ••••••." in message.last_error
    assert "604172" not in _all_rows_text()


def test_attempts_are_capped(x_api, settings, run_worker):
    settings.CHAVE_POLICY = {**settings.CHAVE_POLICY, "delivery_max_attempts": 3}
    x_api.fail_with = [503] * 10
    message = queue_code("x", X_USER)

    for _ in range(5):  # more rounds than attempts: the cap, not the loop, must stop it
        run_worker()
        make_retries_due()

    message = reload(message)
    assert (message.status, message.attempts) == ("failed", 3)
    assert x_api.requests == 3
    assert waiting_tasks(message) == []
    assert message.body_sealed == ""


# --- Codes that are no longer valid are not sent --------------------------------------------------


def test_an_expired_code_is_not_sent(x_api, make_citizen, run_worker, clock):
    key = make_citizen()
    codes.issue_code(key, purpose="login", transaction="tx-late", channel="x", destination=X_USER, portal=PORTAL)
    clock.travel(policy.code_lifetime("login") + dt.timedelta(seconds=1))

    run_worker()

    message = OutboundMessage.objects.get(channel="x")
    assert (message.status, message.attempts) == ("expired", 0)
    assert message.body_sealed == ""
    assert x_api.requests == 0
    assert delivery_events("expired") == 1


def test_a_code_that_would_expire_during_the_backoff_is_given_up(x_api, run_worker):
    first_backoff = policy.get("delivery_backoff_seconds")[0]
    x_api.fail_with = [503]
    message = queue_code("x", X_USER, expires_in=dt.timedelta(seconds=first_backoff - 1))

    run_worker()

    message = reload(message)
    assert (message.status, message.attempts) == ("expired", 1)
    assert waiting_tasks(message) == []


# --- Never sent twice ------------------------------------------------------------------------------


def test_sending_a_message_twice_sends_it_once(x_api):
    message = queue_code("x", X_USER)

    assert delivery.send_message(str(message.pk)) == "sent"
    assert delivery.send_message(str(message.pk)) == "sent"

    assert len(x_api.delivered) == 1


def test_duplicate_tasks_for_one_message_send_it_once(x_api, run_worker):
    message = queue_code("x", X_USER)
    deliver.enqueue(str(message.pk))
    deliver.enqueue(str(message.pk))

    run_worker()

    assert len(x_api.delivered) == 1
    assert sorted(t.return_value for t in tasks_for(message)) == ["sent", "sent", "sent"]


def _run_in_thread(target, results, index):
    try:
        results[index] = target()
    except BaseException as exc:  # reported by the test
        results[index] = exc
    finally:
        connections.close_all()


def test_two_workers_at_once_send_a_message_once(x_api):
    message = queue_code("x", X_USER)
    deliver.enqueue(str(message.pk))  # a duplicate task: two workers can each take one
    x_api.hold = threading.Event()  # the first send stays in flight while the other worker tries

    def worker():
        Worker(queue_names=["*"], interval=0, batch=True, backend_name="default", startup_delay=False,
               max_tasks=1, worker_id=f"w-{threading.get_ident()}", excluded_queue_names=[]).run()

    results = [None, None]
    threads = [threading.Thread(target=_run_in_thread, args=(worker, results, i)) for i in (0, 1)]
    for thread in threads:
        thread.start()
    # One worker is blocked in the gateway; the other must find the message already claimed.
    wait_for(lambda: [t.return_value for t in tasks_for(message) if t.status == "SUCCESSFUL"] == ["sending"],
             what="the second worker to find the message being sent")
    x_api.hold.set()
    for thread in threads:
        thread.join(BOUND)

    assert results == [None, None]
    assert len(x_api.delivered) == 1
    assert sorted(t.return_value for t in tasks_for(message)) == ["sending", "sent"]
    assert reload(message).status == "sent"


def test_concurrent_sends_of_one_message_reach_the_gateway_once(x_api):
    message = queue_code("x", X_USER)
    start = threading.Barrier(4)
    results = [None] * 4

    def send():
        start.wait(BOUND)
        return delivery.send_message(str(message.pk))

    threads = [threading.Thread(target=_run_in_thread, args=(send, results, i)) for i in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(BOUND)

    assert x_api.requests == 1
    assert results.count("sent") >= 1 and set(results) <= {"sent", "sending"}
    assert reload(message).status == "sent"


# --- The code is nowhere once sent -----------------------------------------------------------------


def _all_rows_text() -> str:
    from django.apps import apps

    return "\n".join(
        str(list(model.objects.values())) for model in apps.get_models() if model is not DevOutboxMessage
    )


def test_once_sent_the_code_is_nowhere_in_the_database_or_the_log(x_api, make_citizen, run_worker, caplog):
    key = make_citizen()
    codes.issue_code(key, purpose="login", transaction="tx-secret", channel="x", destination=X_USER, portal=PORTAL)

    run_worker()

    [dm] = x_api.delivered
    code = code_in(dm.text)
    assert "#" not in dm.text  # no WebOTP line: no browser reads a direct message
    message = OutboundMessage.objects.get(channel="x")
    assert message.status == "sent"
    assert message.body_sealed == ""
    assert PORTAL in message.body_redacted and "••••••" in message.body_redacted
    for row in OutboundMessage.objects.values():
        assert code not in str(row)
    for row in DBTaskResult.objects.values():
        assert code not in str(row)
    for row in AuditEvent.objects.values():
        assert code not in str(row)
    assert f"#{code}" not in _all_rows_text()
    assert dm.text.split("\n")[0] not in _all_rows_text()  # nor the clear sentence that carries it
    assert code not in caplog.text


class LeakyProvider:
    """A provider whose gateway library fails with an error quoting what it was given."""

    name = "leaky"

    def __init__(self, channel):
        self.channel = channel

    def submit_message(self, to, body, subject=""):
        raise RuntimeError(f"cannot encode {body!r}")


def test_an_unexpected_provider_error_fails_the_message_without_leaking_it(settings, run_worker, caplog):
    settings.CHAVE_X_PROVIDER = f"{__name__}.LeakyProvider"
    message = queue_code("x", X_USER, code="735104")

    run_worker()

    message = reload(message)
    assert (message.status, message.attempts) == ("failed", 1)  # gone or not, we cannot know: no resend
    assert message.last_error == "unexpected RuntimeError from the provider"
    assert waiting_tasks(message) == []
    for row in DBTaskResult.objects.values():
        assert row["status"] == "SUCCESSFUL"
        assert "735104" not in str(row)
    assert "735104" not in _all_rows_text()
    assert "735104" not in caplog.text


def test_a_misconfigured_provider_fails_its_messages_and_the_worker_carries_on(settings, run_worker):
    settings.CHAVE_X_PROVIDER = "chave.delivery.providers.nowhere.Provider"
    broken = queue_code("x", X_USER)
    fine = queue_code("sms", PHONE)

    run_worker()

    assert reload(broken).status == "failed"
    assert "misconfigured" in reload(broken).last_error
    assert reload(fine).status == "sent"
    assert DevOutboxMessage.objects.filter(to=PHONE).count() == 1


def test_a_channel_switched_off_after_queueing_fails_the_message(settings, x_api, run_worker):
    message = queue_code("x", X_USER)
    settings.CHAVE_X_PROVIDER = "off"

    run_worker()

    assert (reload(message).status, reload(message).last_error) == ("failed", "channel is off")
    assert x_api.requests == 0


def test_a_body_sealed_under_another_message_key_fails_unread(settings, x_api, run_worker):
    message = queue_code("x", X_USER)
    settings.CHAVE_MESSAGE_KEY = "a-rotated-message-key"

    run_worker()

    message = reload(message)
    assert message.status == "failed"
    assert "unreadable" in message.last_error
    assert x_api.requests == 0


def test_queueing_on_an_unknown_channel_is_refused():
    with pytest.raises(ValueError):
        delivery.queue_message(channel="fax", destination=PHONE, body="x", redacted="x")
    assert not OutboundMessage.objects.exists()
