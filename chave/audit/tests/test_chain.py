"""The audit log is tamper-evident: a hash chain `chave audit verify` checks (exit 1 on a break), and
a table the database itself refuses to change (UPDATE and DELETE), on SQLite and PostgreSQL."""

from __future__ import annotations

import io
import json
import threading

import pytest
from django.core.management import call_command
from django.db import DatabaseError, connection, transaction
from django.utils import translation

from chave.audit import chain
from chave.audit import services as audit
from chave.audit.models import AuditEvent
from chave.throttle.tests.parallel import run_together

pytestmark = pytest.mark.django_db


def verify(*args) -> tuple[int, str]:
    out = io.StringIO()
    try:
        with translation.override("en"):
            call_command("audit", "verify", *args, stdout=out)
    except SystemExit as exit:
        return exit.code, out.getvalue()
    return 0, out.getvalue()


def record_some(n: int = 5, **detail):
    return [audit.record("test.event", outcome="ok", ip="192.0.2.7", number=i, **detail) for i in range(n)]


def tamper(sql: str, params=()):
    """What someone holding the database's owner role can still do: lift the refusal and write."""
    with connection.cursor() as cursor:
        if connection.vendor == "postgresql":
            cursor.execute("SET LOCAL session_replication_role = replica")  # triggers off: a superuser's power
        else:
            cursor.execute("DROP TRIGGER audit_no_update")
            cursor.execute("DROP TRIGGER audit_no_delete")
        cursor.execute(sql, params)


def test_each_event_is_a_link_of_the_chain_and_the_chain_verifies(make_citizen):
    citizen = make_citizen().citizen
    events = record_some(3, items=[1, 2.0, "três"], nested={"b": 1, "a": None}) + [
        audit.record("test.event", citizen=citizen, channel="sms", ip="2001:db8::1", outcome="wrong")]
    assert all(e.prev_hash == p.hash for p, e in zip(events, events[1:]) if p.stream == e.stream)
    fresh = AuditEvent.objects.get(pk=events[-1].pk)
    assert fresh.hash == chain.hash_of(fresh)  # as read back from the database
    code, out = verify()
    assert code == 0 and "The audit log is intact" in out


def test_a_changed_event_breaks_the_chain_and_verify_exits_1():
    events = record_some(4)
    tamper("UPDATE audit_auditevent SET outcome = 'wrong' WHERE id = %s", [events[1].pk])
    code, out = verify()
    assert code == 1
    assert f"event {events[1].pk} (test.event" in out and "was changed after it was written" in out


def test_a_removed_event_breaks_the_chain():
    events = record_some(4)
    tamper("DELETE FROM audit_auditevent WHERE id = %s", [events[2].pk])
    code, out = verify()
    assert code == 1 and "events missing or added" in out and f"event {events[3].pk} " in out


def test_a_forged_event_cannot_be_made_to_fit_without_the_key(settings):
    events = record_some(2)
    key = settings.CHAVE_AUDIT_KEY
    settings.CHAVE_AUDIT_KEY = "what-an-attacker-guesses"
    forged = chain.link_hash(stream=events[-1].stream, seq=events[-1].seq + 1, prev_hash=events[-1].hash,
                             at=events[-1].at, event="key.unlock", outcome="ok", citizen_id=None, channel="",
                             ip=None, detail={})
    settings.CHAVE_AUDIT_KEY = key
    with connection.cursor() as cursor:
        cursor.execute(
            "INSERT INTO audit_auditevent (at, event, outcome, channel, detail, stream, seq, prev_hash, hash) "
            "VALUES (%s, 'key.unlock', 'ok', '', '{}', %s, %s, %s, %s)",
            [events[-1].at, events[-1].stream, events[-1].seq + 1, events[-1].hash, forged])
    code, out = verify()
    assert code == 1 and "was changed after it was written" in out


def test_anchored_heads_show_a_cut_end_of_the_log(tmp_path):
    record_some(3)
    code, out = verify("--json")
    assert code == 0
    anchors = tmp_path / "heads.json"
    anchors.write_text(out)
    heads = json.loads(out)["heads"]
    assert verify("--anchors", str(anchors))[0] == 0
    last = AuditEvent.objects.get(stream=int(next(iter(heads))), seq=next(iter(heads.values()))["seq"])
    tamper("DELETE FROM audit_auditevent WHERE id = %s", [last.pk])
    assert verify()[0] == 0  # the chain alone cannot see a cut end...
    code, out = verify("--anchors", str(anchors))
    assert code == 1 and "the end of the log was cut" in out  # ...the anchors do


def test_verify_explains_a_file_that_is_not_anchors(tmp_path):
    bad = tmp_path / "heads.json"
    bad.write_text('{"heads": [1, 2]}')
    with pytest.raises(Exception, match="is not the JSON output of"), translation.override("en"):
        call_command("audit", "verify", "--anchors", str(bad))


def test_the_database_refuses_to_update_or_delete_an_event():
    event = record_some(1)[0]
    for attempt in (lambda: AuditEvent.objects.filter(pk=event.pk).update(outcome="forged"),
                    lambda: AuditEvent.objects.filter(pk=event.pk).delete(),
                    lambda: connection.cursor().execute("UPDATE audit_auditevent SET event = 'x'"),
                    lambda: connection.cursor().execute("DELETE FROM audit_auditevent")):
        with pytest.raises(DatabaseError, match="append-only"):
            with transaction.atomic():
                attempt()
    assert AuditEvent.objects.get(pk=event.pk).outcome == "ok"
    with pytest.raises(ValueError):
        event.delete()


def test_an_event_rolled_back_with_its_transaction_leaves_no_gap():
    record_some(1)
    with pytest.raises(RuntimeError), transaction.atomic():
        audit.record("test.event", outcome="rolled-back")
        raise RuntimeError
    record_some(1)
    assert not AuditEvent.objects.filter(outcome="rolled-back").exists()
    assert verify()[0] == 0


@pytest.mark.django_db(transaction=True)
def test_a_transaction_appending_several_events_reads_its_stream_head_once():
    from django.test.utils import CaptureQueriesContext

    record_some(1)
    with CaptureQueriesContext(connection) as queries, transaction.atomic():
        record_some(3)
    heads = [q["sql"] for q in queries.captured_queries if q["sql"].startswith('SELECT "audit_auditevent"."seq"')]
    assert len(heads) == 1
    assert verify()[0] == 0


@pytest.mark.django_db(transaction=True)
def test_after_a_rolled_back_transaction_the_next_event_follows_the_committed_head():
    """What a rolled-back transaction appended is not the head the next transaction builds on."""
    before = AuditEvent.objects.count()
    record_some(2)
    with pytest.raises(RuntimeError), transaction.atomic():
        record_some(2, rolled_back=True)
        raise RuntimeError
    record_some(1)
    with transaction.atomic():
        audit.record("test.event", outcome="ok")
        with pytest.raises(RuntimeError), transaction.atomic():
            audit.record("test.event", outcome="rolled-back")
            raise RuntimeError
        audit.record("test.event", outcome="ok")
    assert AuditEvent.objects.count() - before == 5
    assert verify()[0] == 0


@pytest.mark.django_db(transaction=True)
def test_concurrent_writers_each_append_to_a_stream_and_every_chain_verifies():
    """Many transactions writing events at once (each holding its transaction open a while, like
    a login step) neither wait for each other on PostgreSQL nor fork a chain."""
    inside = threading.Barrier(6, timeout=60)

    def work(i):
        with transaction.atomic():
            audit.record("test.concurrent", outcome="first", worker=i)
            if connection.vendor == "postgresql":
                inside.wait()  # all six hold a stream at once: six streams
            audit.record("test.concurrent", outcome="second", worker=i)
        return [audit.record("test.concurrent", outcome="after", worker=i, n=n).stream for n in range(5)]

    run_together(6, work)
    assert AuditEvent.objects.filter(event="test.concurrent").count() == 6 * 7
    streams = set(AuditEvent.objects.values_list("stream", flat=True))
    assert len(streams) == (6 if connection.vendor == "postgresql" else 1)
    code, out = verify()
    assert code == 0, out
    for stream in streams:
        places = list(AuditEvent.objects.filter(stream=stream).order_by("seq").values_list("seq", flat=True))
        assert places == list(range(1, len(places) + 1))
