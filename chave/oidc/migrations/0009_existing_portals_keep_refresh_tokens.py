"""Portals registered before the OpenID Connect client settings (0007) keep their refresh tokens.

Before 0007 every portal got a refresh token with every sign-in (the authorization code and
refresh token grants were open to all). 0007 made refresh tokens depend on ``offline_access``,
which a party without a settings row does not have: such portals silently stopped getting them.
Each of them now gets a settings row with ``offline_access`` and ``always_refresh`` (a refresh token
with every sign-in, asked for or not), as before. Parties whose settings were set since 0007 keep
what was set; new portals ask for ``offline_access`` (Core §11).
"""

from django.db import migrations, models


def keep_refresh_tokens(apps, schema_editor):
    RelyingParty = apps.get_model("federation", "RelyingParty")
    ClientSettings = apps.get_model("oidc", "ClientSettings")
    without = RelyingParty.objects.filter(oidc_settings__isnull=True).values_list("pk", flat=True)
    ClientSettings.objects.bulk_create([ClientSettings(relying_party_id=pk, offline_access=True, always_refresh=True)
                                        for pk in without])


class Migration(migrations.Migration):

    dependencies = [
        ('oidc', '0008_backchannel_sending_since'),
    ]

    operations = [
        migrations.AddField(
            model_name='clientsettings',
            name='always_refresh',
            field=models.BooleanField(default=False),
        ),
        migrations.RunPython(keep_refresh_tokens, migrations.RunPython.noop),
    ]
