"""The worker's doorbell: a queued message reaches the gateway adapter at once, not at the next look.

A real ``chave worker`` process with a two-minute ``--interval`` (so its polling cannot explain a
fast delivery) on a database of its own (SQLite, or PostgreSQL in the PostgreSQL pass, where the
doorbell is LISTEN/NOTIFY); messages are queued by another process, as the web service does.
"""

from __future__ import annotations

import json
import signal
import subprocess
import time

import pytest

from chave.identity.tests.test_cli import CHAVE, chave_environment, run_chave

INTERVAL = 120  # seconds: without the doorbell, each message would wait for up to this long
BOUND = 60

# Queues messages one after another, each once the previous one was sent (the worker is idle
# again, back at its doorbell), and prints how long each took from its queueing to the sink.
QUEUE_AND_TIME = """
import json, time
from django.db import transaction
from chave.delivery import services
from chave.delivery.models import OutboundMessage
took = []
for n in range(5):
    with transaction.atomic():
        message = services.queue_message(channel="sms", destination="+351912345678", body=f"hello {n}",
                                         redacted="hello")
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        sent = OutboundMessage.objects.get(pk=message.pk)
        if sent.sent_at:
            break
        time.sleep(0.01)
    took.append((sent.sent_at - sent.created_at).total_seconds() if sent.sent_at else None)
print(json.dumps(took))
"""


@pytest.mark.faults
def test_a_queued_message_wakes_the_worker(tmp_path):
    with chave_environment(tmp_path) as env:
        run_chave(env, "migrate", "--noinput", "-v0")
        log = tmp_path / "worker.log"
        with log.open("wb") as out:
            worker = subprocess.Popen([str(CHAVE), "worker", "--interval", str(INTERVAL)], env=env,
                                      stdout=out, stderr=subprocess.STDOUT, start_new_session=True)
        try:
            deadline = time.monotonic() + BOUND
            while "woken by the doorbell" not in log.read_text() and time.monotonic() < deadline:
                assert worker.poll() is None, log.read_text()
                time.sleep(0.1)
            # No pause for the worker's first look: a first message it finds there proves nothing, but the
            # next four are queued one at a time, each after the last was sent, so only the doorbell can
            # bring them in under the interval.
            took = json.loads(run_chave(env, "shell", "-c", QUEUE_AND_TIME).stdout.strip().splitlines()[-1])
            assert None not in took, f"a message was not sent within 30 s: {took}\n{log.read_text()}"
            # Far below the interval: each was picked up when its transaction committed (the bound
            # is loose for a loaded machine; bench/login.py measures the p95).
            assert max(took) < 5, took
            # The doorbell's wait ends on a stop signal as the sleep did.
            stopped = time.monotonic()
            worker.send_signal(signal.SIGTERM)
            assert worker.wait(timeout=BOUND) == 0
            assert time.monotonic() - stopped < 10
        finally:
            if worker.poll() is None:
                worker.kill()
                worker.wait()
