from django.db import migrations, models


class Migration(migrations.Migration):
    """Citizens' signing keys may be RSA 3072 (the new default) or ECDSA P-256: every key made
    before this was P-256, and keeps working as such."""

    dependencies = [("signing", "0001_initial")]

    operations = [
        migrations.AddField(
            model_name="signingcredential",
            name="key_algorithm",
            field=models.CharField(choices=[("rsa-3072", "RSA 3072"), ("ec-p256", "ECDSA P-256")], default="ec-p256",
                                   max_length=16),
            preserve_default=False,
        ),
        migrations.AddField(
            model_name="signingrequest",
            name="document_ids",
            field=models.JSONField(blank=True, default=list),
        ),
        migrations.AlterField(
            model_name="signingrequest",
            name="via",
            field=models.CharField(choices=[("csc", "CSC API"), ("cmd", "SCMD (SOAP)"), ("area", "personal area")],
                                   max_length=4),
        ),
    ]
