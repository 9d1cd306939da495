"""Migrations that change what existing portals get: run on a database holding portals, as an
upgrade runs them, then the portals' sign-ins observed through the token endpoint."""

from __future__ import annotations

import pytest
from django.db import connection
from django.db.migrations.executor import MigrationExecutor

from chave.oidc.models import ClientSettings

from .portal import register_portal
from .signin import refresh, tokens

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.once]

BEFORE = ("oidc", "0008_backchannel_sending_since")
AFTER = ("oidc", "0009_existing_portals_keep_refresh_tokens")


def migrate(target):
    executor = MigrationExecutor(connection)
    executor.loader.build_graph()
    executor.migrate([target])


def test_portals_registered_before_client_settings_keep_their_refresh_tokens(client, outbox, make_citizen):
    make_citizen()
    old = register_portal(name="Portal antigo")  # registered before 0007: no settings row
    ClientSettings.objects.filter(relying_party__client_id=old.client_id).delete()
    new = register_portal(name="Portal novo", offline_access=False, redirect_uri="https://novo.example.gov.pt/cb")
    asks = register_portal(name="Portal que pede", redirect_uri="https://pede.example.gov.pt/cb")

    migrate(BEFORE)
    migrate(AFTER)

    kept = ClientSettings.objects.get(relying_party__client_id=old.client_id)
    assert (kept.offline_access, kept.always_refresh) == (True, True)
    assert not ClientSettings.objects.get(relying_party__client_id=new.client_id).offline_access  # as set since
    assert not ClientSettings.objects.get(relying_party__client_id=asks.client_id).always_refresh

    # The old portal never asked for offline_access, and still gets refresh tokens that work.
    body = tokens(client, outbox, old, scope="openid profile")
    assert body["refresh_token"] and body["scope"] == "openid profile"
    assert refresh(client, old, body["refresh_token"]).status_code == 200
    # New portals follow Core §11: only when asked for and allowed.
    assert "refresh_token" not in tokens(client, outbox, new, scope="openid profile offline_access")
    assert "refresh_token" not in tokens(client, outbox, asks, scope="openid profile")
    assert tokens(client, outbox, asks)["refresh_token"]  # it asks for offline_access
