"""Faults the delivery survives (issue 17): the SMS gateway down for minutes, and the worker killed
with SIGKILL in the middle of a send. On SQLite and on PostgreSQL (the suite's database).

- Gateway down: every message waits, retried with backoff; once the gateway is back each goes out
  exactly once. A code that expired meanwhile is never sent late (it says so: ``expired``).
- Worker killed mid-send: the message the gateway was handed is not sent again by the next
  worker; once the claim is older than ``delivery_sending_timeout_seconds`` its state says what
  happened (``interrupted``: it may or may not have arrived). Messages still waiting are sent by
  the next worker, and a message whose task died with the worker gets a new one.
"""

from __future__ import annotations

import datetime as dt
import signal
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest
from django.db import connection
from django_tasks_db.models import DBTaskResult

from chave import policy
from chave.audit.models import AuditEvent
from chave.delivery import services as delivery
from chave.delivery.models import OutboundMessage
from chave.testing.faults import ChaveProcess, chave_env, run_chave

from .conftest import BOUND, wait_for
from .test_delivery import DELIVERY_APPS, make_retries_due, queue_code, reload

pytestmark = [pytest.mark.django_db(transaction=True, available_apps=DELIVERY_APPS), pytest.mark.gateway,
              pytest.mark.faults]

PHONES = [f"+3519123401{i:02d}" for i in range(6)]


def queue_notice(destination: str, text: str = "Chave: the PIN of your key was changed."):
    return delivery.queue_message(channel="sms", destination=destination, subject="", body=text, redacted=text,
                                  kind="notice")


def next_attempt(clock) -> None:
    """Move the clock to the earliest retry and make the deferred tasks due (test_delivery's docstring)."""
    due = [m.next_attempt_at for m in OutboundMessage.objects.filter(status="queued") if m.next_attempt_at]
    if due and min(due) > clock.now():
        clock.travel(min(due) - clock.now())
    make_retries_due()


def test_the_sms_gateway_down_for_minutes_then_every_message_goes_once(kannel, run_worker, clock):
    kannel.stop_smsc()  # the SMSC link is gone: Kannel answers 503 to every sendsms
    started = clock.now()
    notices = [queue_notice(phone) for phone in PHONES[:4]]
    early_code = queue_code("sms", PHONES[4], code="271828")  # lives 5 minutes: dies during the outage
    late_code = None
    run_worker()
    outage = dt.timedelta(minutes=7)
    while clock.now() - started < outage:
        next_attempt(clock)
        if late_code is None and clock.now() - started >= dt.timedelta(minutes=4):
            late_code = queue_code("sms", PHONES[5], code="314159")  # asked for near the end of the outage
        run_worker()
        assert all(reload(n).status == "queued" for n in notices)  # waiting, not failed
    assert reload(early_code).status == "expired"
    attempts = reload(notices[0]).attempts
    assert attempts >= 5  # tried again and again through the outage

    kannel.start_smsc()  # the gateway is back
    for _ in range(3):  # the next retries fall due; a few worker rounds, as a running worker would do
        next_attempt(clock)
        run_worker()
    # Kannel took each (its answer first: a refusal says why in last_error), then the phones got them.
    assert [(reload(n).status, reload(n).last_error) for n in [*notices, late_code]] == [("sent", "")] * 5
    for phone in PHONES[:4]:
        assert len(kannel.wait_for_sms(phone)) == 1
    [code_sms] = kannel.wait_for_sms(PHONES[5])
    assert code_sms.text.endswith("#314159")
    assert not any(sms.to == PHONES[4] for sms in kannel.received())  # the dead code never went out
    assert OutboundMessage.objects.filter(status="queued").count() == 0  # none lost

    make_retries_due()
    run_worker()  # nothing is sent twice
    assert sorted(sms.to for sms in kannel.received()) == sorted([*PHONES[:4], PHONES[5]])


class HoldingGateway:
    """Kannel's sendsms, answering only when the test lets it: a send the worker is in the middle of."""

    def __init__(self):
        self.received: list[tuple[str, str]] = []
        self.arrived = threading.Event()
        self.release = threading.Event()
        gateway = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args):
                pass

            def do_POST(self):
                body = self.rfile.read(int(self.headers.get("Content-Length") or 0)).decode()
                gateway.received.append((self.headers.get("X-Kannel-To", ""), body))
                gateway.arrived.set()
                gateway.release.wait(BOUND)
                try:
                    self.send_response(202)
                    self.end_headers()
                    self.wfile.write(b"0: Accepted for delivery")
                except OSError:  # the worker is dead: nobody reads the answer
                    pass

        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.httpd.daemon_threads = True
        self.url = f"http://127.0.0.1:{self.httpd.server_address[1]}/cgi-bin/sendsms"
        threading.Thread(target=self.httpd.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True).start()

    def close(self):
        self.release.set()
        self.httpd.shutdown()
        self.httpd.server_close()


@pytest.fixture
def holding_gateway():
    gateway = HoldingGateway()
    yield gateway
    gateway.close()


def _suite_database_url() -> str:
    """The suite's (test) database, for a ``chave`` process to share it."""
    db = connection.settings_dict
    if connection.vendor == "sqlite":
        return f"sqlite:///{db['NAME']}"
    return f"postgresql://{db['USER']}@{db['HOST'] or '127.0.0.1'}:{db['PORT'] or 5432}/{db['NAME']}"


def test_a_worker_killed_mid_send_sends_nothing_twice_and_the_message_says_so(holding_gateway, tmp_path, clock):
    held = queue_code("sms", PHONES[0], code="161803", expires_in=dt.timedelta(minutes=30))
    waiting = queue_notice(PHONES[1])
    env = chave_env(_suite_database_url(), tmp_path, CHAVE_SMS_PROVIDER="kannel", CHAVE_KANNEL_URL=holding_gateway.url,
                    CHAVE_HTTP_TIMEOUT="30")
    worker = ChaveProcess(env, "worker", "--interval", "0.05", log=tmp_path / "worker.log")
    try:
        assert holding_gateway.arrived.wait(BOUND), worker.output()
        wait_for(lambda: reload(held).status == "sending", what="the claim of the held message")
        worker.kill(signal.SIGKILL)  # mid-send: the gateway has the message, the worker never hears back
    finally:
        worker.kill()
    holding_gateway.release.set()
    assert [to for to, _ in holding_gateway.received] == [PHONES[0]]

    # The next worker sends what was waiting and leaves the interrupted send alone.
    run_chave(env, "worker", "--batch")
    assert sorted(to for to, _ in holding_gateway.received) == sorted(PHONES[:2])
    assert reload(waiting).status == "sent"
    assert reload(held).status == "sending"  # the claim is recent: its worker may still be at it

    # Once the claim is older than any gateway call can take, its state says what happened.
    timeout = dt.timedelta(seconds=policy.get("delivery_sending_timeout_seconds"))
    clock.freeze(reload(held).sending_since + timeout - dt.timedelta(seconds=1))
    assert delivery.recover_stalled() == {"interrupted": 0, "requeued": 0}
    clock.travel(dt.timedelta(seconds=2))
    assert delivery.recover_stalled() == {"interrupted": 1, "requeued": 0}
    held = reload(held)
    assert held.status == "interrupted" and "whether it arrived is unknown" in held.last_error
    assert held.body_sealed == ""  # the code is nowhere any more
    assert AuditEvent.objects.filter(event="message.delivery", outcome="interrupted").count() == 1
    run_chave(env, "worker", "--batch")
    assert [to for to, _ in holding_gateway.received].count(PHONES[0]) == 1  # never twice
    assert delivery.recover_stalled() == {"interrupted": 0, "requeued": 0}


def test_a_message_whose_task_died_with_its_worker_gets_a_new_one(kannel, run_worker, clock):
    message = queue_notice(PHONES[2])
    [task] = DBTaskResult.objects.filter(args_kwargs__args__0=str(message.pk))
    task.claim("a-worker-that-was-killed")  # as db_worker claims it, just before it died
    run_worker()
    assert reload(message).status == "queued"  # nobody will run that task any more
    assert delivery.recover_stalled() == {"interrupted": 0, "requeued": 0}  # not overdue yet

    clock.travel(dt.timedelta(seconds=policy.get("delivery_sending_timeout_seconds") + 1))
    assert delivery.recover_stalled() == {"interrupted": 0, "requeued": 1}
    assert delivery.recover_stalled() == {"interrupted": 0, "requeued": 0}  # one new task, not one per sweep
    run_worker()
    assert len(kannel.wait_for_sms(PHONES[2])) == 1
    assert reload(message).status == "sent"
