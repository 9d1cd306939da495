"""``chave outbox`` and ``chave worker``, called as an operator or a test script would.

Most tests call the commands in-process, in English; a few run the real ``chave`` console script
against the test database, to see the exit code and the absence of a traceback as a shell would
(it speaks the default language, pt-PT).
"""

from __future__ import annotations

import datetime as dt
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
from django.core.management import CommandError, call_command
from django.conf import settings
from django.db import connection
from django.utils import translation
from django.utils.translation import gettext

from chave import clock
from chave.delivery import services as delivery
from chave.delivery.models import DevOutboxMessage, OutboundMessage
from chave.delivery.providers.sink import DevSink

PHONE = "+351912345678"
CHAVE = Path(sys.executable).with_name("chave")


@pytest.fixture(autouse=True)
def _in_english():
    with translation.override("en"):
        yield


def outbox(*args) -> str:
    from io import StringIO

    out = StringIO()
    call_command("outbox", *args, stdout=out)
    return out.getvalue()


def sink_send(channel: str, to: str, body: str, subject: str = "") -> None:
    DevSink(channel).submit_message(to, body, subject)


def run_chave(*commands: list[str]) -> list[subprocess.CompletedProcess]:
    """Run `chave` commands at once on the test database (committed rows only: transactional tests)."""
    db = connection.settings_dict
    if connection.vendor == "sqlite":
        url = f"sqlite:///{db['NAME']}"
    else:
        url = f"postgresql://{db['USER']}@{db['HOST']}:{db['PORT']}/{db['NAME']}"
    env = {**os.environ, "DJANGO_SETTINGS_MODULE": "chave.test_settings", "CHAVE_DATABASE_URL": url}
    running = [subprocess.Popen([str(CHAVE), *args], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                                env=env) for args in commands]
    done = []
    for process, args in zip(running, commands):
        stdout, stderr = process.communicate(timeout=60)
        done.append(subprocess.CompletedProcess(args, process.returncode, stdout, stderr))
    return done


# --- chave outbox ---------------------------------------------------------------------------------


@pytest.mark.django_db
def test_outbox_last_json_is_the_newest_message_to_a_number_typed_like_a_citizen(clock):
    sink_send("sms", PHONE, "Chave: o seu código é 111111.\n\n@127.0.0.1 #111111")
    clock.travel(dt.timedelta(seconds=40))
    sink_send("sms", PHONE, "Chave: o seu código é 222222.\n\n@127.0.0.1 #222222")
    sink_send("sms", "+351934567890", "someone else's")

    found = json.loads(outbox("--to", "912 345 678", "--last", "--json"))

    assert found["to"] == PHONE
    assert found["channel"] == "sms"
    assert found["body"].endswith("#222222")
    assert found["subject"] == ""
    assert dt.datetime.fromisoformat(found["sent_at"]) == clock.now()


@pytest.mark.django_db
def test_outbox_finds_an_email_address_typed_in_any_case():
    sink_send("email", "maria@example.pt", "Olá Maria", "O seu código de segurança Chave")

    found = json.loads(outbox("--to", "  Maria@Example.PT ", "--last", "--json"))

    assert (found["to"], found["channel"], found["subject"]) == (
        "maria@example.pt", "email", "O seu código de segurança Chave")
    assert found["body"] == "Olá Maria"


@pytest.mark.django_db
def test_outbox_lists_every_message_newest_first(clock):
    for n in (1, 2, 3):
        sink_send("sms", PHONE, f"message {n}")
        clock.travel(dt.timedelta(seconds=1))

    listed = json.loads(outbox("--to", "00351912345678", "--json"))
    text = outbox("--to", PHONE)

    assert [m["body"] for m in listed] == ["message 3", "message 2", "message 1"]
    assert text.index("message 3") < text.index("message 2") < text.index("message 1")
    assert json.loads(outbox("--to", PHONE, "--json", "--limit", "2"))[-1]["body"] == "message 2"


@pytest.mark.django_db
def test_outbox_finds_an_x_account_by_its_user_id():
    sink_send("x", "1234567890", "DM text")

    assert json.loads(outbox("--to", "1234567890", "--last", "--json"))["channel"] == "x"


@pytest.mark.django_db
@pytest.mark.parametrize(
    "typed, problem",
    [
        ("912 345", "This is not a valid mobile number."),
        ("212 345 678", "This number is not a mobile number."),  # a Lisbon landline
        ("maria@", "This is not a valid e-mail address."),
        ("   ", "Enter your mobile number or e-mail address."),
    ],
)
def test_outbox_explains_a_malformed_destination(typed, problem):
    with pytest.raises(CommandError) as refused:
        outbox("--to", typed, "--last", "--json")

    assert problem in str(refused.value)


@pytest.mark.django_db
def test_outbox_says_when_nothing_was_sent():
    with pytest.raises(CommandError, match=r"No message was sent to \+351912345678\.$"):
        outbox("--to", "912345678", "--last", "--json")


@pytest.mark.django_db
def test_outbox_says_when_messages_wait_for_the_worker():
    delivery.queue_message(channel="sms", destination=PHONE, body="queued", redacted="queued")

    with pytest.raises(CommandError, match="1 message.* still queued: is `chave worker` running"):
        outbox("--to", PHONE, "--last")


@pytest.mark.django_db
def test_outbox_refuses_a_limit_that_is_not_a_count():
    with pytest.raises(CommandError, match="--limit"):
        outbox("--to", PHONE, "--limit", "0")


# --- chave worker ---------------------------------------------------------------------------------


@pytest.mark.django_db(transaction=True, available_apps=["chave.delivery", "django_tasks_db", "chave.audit",
                                                         "chave.identity"])
def test_worker_batch_announces_itself_and_sends_what_is_due():
    from io import StringIO

    delivery.queue_message(channel="sms", destination=PHONE, body="Olá #482913", redacted="Olá #••••••")
    out = StringIO()

    call_command("worker", "--batch", stdout=out)

    assert out.getvalue().splitlines()[0] == (
        "Chave worker started (queues *; sms → sink, email → sink, x → off): sending what is due, then exiting.")
    assert OutboundMessage.objects.get().status == "sent"
    assert DevOutboxMessage.objects.get().body == "Olá #482913"


@pytest.mark.parametrize(
    "args, problem",
    [
        (["--interval", "-1"], "--interval: give a number of seconds, 0 or more"),
        (["--interval", "soon"], "--interval: give a number of seconds, 0 or more"),
        (["--max-tasks", "0"], "--max-tasks: give a whole number, 1 or more"),
        (["--worker-id", "x" * 65], "--worker-id: give a name of 1 to 64 characters"),
    ],
)
def test_worker_explains_bad_options(args, problem):
    with pytest.raises(CommandError, match=problem):
        call_command("worker", *args)


# --- As a shell runs them -------------------------------------------------------------------------


@pytest.mark.django_db(transaction=True, available_apps=["chave.delivery", "django_tasks_db", "chave.audit",
                                                         "chave.identity"])
def test_the_chave_commands_in_a_shell():
    delivery.queue_message(channel="sms", destination=PHONE, subject="", body="Olá, código #482913",
                           redacted="Olá, código #••••••", expires_at=clock.now() + dt.timedelta(minutes=5))

    [worker] = run_chave(["worker", "--batch"])
    shown, malformed, missing = run_chave(
        ["outbox", "--to", "912 345 678", "--last", "--json"],
        ["outbox", "--to", "912 345", "--last", "--json"],
        ["outbox", "--to", "maria@example.pt", "--last", "--json"],
    )

    with translation.override(settings.LANGUAGE_CODE):  # what the shell is told, in the default language
        started = gettext("Chave worker started (queues %(queues)s; %(channels)s): %(mode)s.").split(" (")[0]
        not_mobile = gettext("This is not a valid mobile number.")
        nothing = gettext("No message was sent to %(to)s.") % {"to": "maria@example.pt"}
    assert worker.returncode == 0, worker.stderr
    assert worker.stdout.startswith(started)
    assert shown.returncode == 0, shown.stderr
    assert json.loads(shown.stdout)["body"] == "Olá, código #482913"
    for refused, problem in ((malformed, not_mobile), (missing, nothing)):
        assert refused.returncode != 0
        assert problem in refused.stderr
        assert "Traceback" not in refused.stderr + refused.stdout


def test_the_worker_documents_itself():
    from chave.delivery.management.commands.worker import Command

    shown = " ".join(Command().create_parser("chave", "worker").format_help().split())

    for option in ("--batch", "--interval", "--max-tasks", "--reload"):
        assert option in shown
    assert "retrying with backoff" in shown
