import django.db.models.deletion
from django.db import migrations, models


def history_of_existing_credentials(apps, schema_editor):
    """Each credential's certificate becomes the first of its history: current, or revoked with the
    credential (the CRL and OCSP now read the history)."""
    Credential = apps.get_model("signing", "SigningCredential")
    Certificate = apps.get_model("signing", "SigningCertificate")
    for credential in Credential.objects.iterator():
        revoked = credential.status == "revoked"
        Certificate.objects.create(
            credential=credential, serial_number=credential.serial_number, certificate_der=credential.certificate_der,
            not_before=credential.not_before, not_after=credential.not_after, issued_at=credential.created_at,
            status="revoked" if revoked else "current", revoked_at=credential.revoked_at if revoked else None,
            revocation_reason=credential.revocation_reason if revoked else "",
        )


class Migration(migrations.Migration):
    """A certificate history per signing credential: a renewed identity document re-issues the
    certificate for the same key, and the earlier one stays known to the CRL and OCSP."""

    dependencies = [
        ('signing', '0002_key_algorithm'),
    ]

    operations = [
        migrations.CreateModel(
            name='SigningCertificate',
            fields=[
                ('id', models.BigAutoField(auto_created=True, primary_key=True, serialize=False, verbose_name='ID')),
                ('serial_number', models.CharField(max_length=64, unique=True)),
                ('certificate_der', models.BinaryField()),
                ('not_before', models.DateTimeField()),
                ('not_after', models.DateTimeField()),
                ('issued_at', models.DateTimeField()),
                ('status', models.CharField(choices=[('current', 'current'), ('superseded', 'replaced, still valid'), ('revoked', 'revoked')], default='current', max_length=10)),
                ('superseded_at', models.DateTimeField(blank=True, null=True)),
                ('revoked_at', models.DateTimeField(blank=True, null=True)),
                ('revocation_reason', models.CharField(blank=True, max_length=32)),
                ('credential', models.ForeignKey(on_delete=django.db.models.deletion.PROTECT, related_name='certificates', to='signing.signingcredential')),
            ],
            options={
                'indexes': [models.Index(fields=['status', 'revoked_at'], name='signing_sig_status_fb2262_idx')],
                'constraints': [models.UniqueConstraint(condition=models.Q(('status', 'current')), fields=('credential',), name='signing_one_current_certificate_per_credential')],
            },
        ),
        migrations.RunPython(history_of_existing_credentials, migrations.RunPython.noop),
    ]
