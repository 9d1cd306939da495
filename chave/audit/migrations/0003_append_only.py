"""The audit log's places are unique, and the database refuses UPDATE and DELETE (see 0002)."""

from django.db import migrations, models

from chave.audit.triggers import PG_DROP, PG_TRIGGER, SQLITE_DROP, SQLITE_NO_DELETE, SQLITE_NO_UPDATE

def refuse_changes(apps, schema_editor):
    vendor = schema_editor.connection.vendor
    if vendor == "postgresql":
        schema_editor.execute(PG_TRIGGER, params=None)
    elif vendor == "sqlite":
        schema_editor.execute(SQLITE_NO_UPDATE)
        schema_editor.execute(SQLITE_NO_DELETE)


def allow_changes(apps, schema_editor):
    vendor = schema_editor.connection.vendor
    if vendor == "postgresql":
        schema_editor.execute(PG_DROP, params=None)
    elif vendor == "sqlite":
        for statement in SQLITE_DROP:
            schema_editor.execute(statement)


class Migration(migrations.Migration):

    dependencies = [("audit", "0002_hash_chain")]

    operations = [
        migrations.AlterField("auditevent", "seq", models.PositiveBigIntegerField()),
        migrations.AddConstraint("auditevent", models.UniqueConstraint(fields=["stream", "seq"],
                                                                       name="audit_one_link_per_place")),
        migrations.RunPython(refuse_changes, allow_changes),
    ]
