"""The audit log becomes a hash chain (issue 17).

Existing events are chained in the order they were written (stream 0); every new event is a link of
its own (chave/audit/chain.py). Migration 0003 then makes the places unique and has the database
refuse UPDATE and DELETE of any row:

- PostgreSQL: one row-level trigger for UPDATE and DELETE. TRUNCATE is a statement of its own and
  is not refused, so that Django's flush (what a test database is emptied with) still works;
  production takes TRUNCATE away from the application's role (THREATS.md, R14).
- SQLite: one trigger each. SQLite has no TRUNCATE: Django's flush deletes rows, so the test suite
  lifts the DELETE trigger around its flush (chave/conftest.py) the way an operator would.
"""

from django.db import migrations, models


def chain_existing(apps, schema_editor):
    from chave.audit import chain

    AuditEvent = apps.get_model("audit", "AuditEvent")
    prev, seq, links = chain.GENESIS, 0, []
    for event in AuditEvent.objects.order_by("id").iterator(chunk_size=2000):
        seq += 1
        event.stream, event.seq, event.prev_hash = 0, seq, prev
        event.hash = prev = chain.link_hash(stream=0, seq=seq, prev_hash=event.prev_hash, at=event.at,
                                            event=event.event, outcome=event.outcome, citizen_id=event.citizen_id,
                                            channel=event.channel, ip=event.ip, detail=event.detail)
        links.append(event)
        if len(links) >= 2000:
            AuditEvent.objects.bulk_update(links, ["stream", "seq", "prev_hash", "hash"])
            links = []
    AuditEvent.objects.bulk_update(links, ["stream", "seq", "prev_hash", "hash"])


class Migration(migrations.Migration):

    dependencies = [("audit", "0001_initial")]

    operations = [
        migrations.AddField("auditevent", "stream", models.PositiveIntegerField(default=0)),
        migrations.AddField("auditevent", "seq", models.PositiveBigIntegerField(null=True)),
        migrations.AddField("auditevent", "prev_hash", models.CharField(default="", max_length=64),
                            preserve_default=False),
        migrations.AddField("auditevent", "hash", models.CharField(default="", max_length=64),
                            preserve_default=False),
        migrations.RunPython(chain_existing, migrations.RunPython.noop),
    ]
