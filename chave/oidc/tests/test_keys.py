"""The provider's signing keys as a portal sees them through /oidc/jwks: rotation, retention,
sealing at rest, one active key per algorithm under concurrency, and ``chave oidc_keys``."""

from __future__ import annotations

import dataclasses
import datetime as dt
import io
import json
import secrets
from urllib.parse import urlencode

import pytest
from cryptography.fernet import InvalidToken
from django.core.management import call_command
from django.db import IntegrityError, connection, transaction
from django.utils import translation
from joserfc import jws, jwt
from joserfc.errors import InvalidKeyIdError
from joserfc.jwk import KeySet

from chave.audit.models import AuditEvent
from chave.oidc import keys
from chave.oidc.models import SigningKey
from chave.throttle.tests.parallel import run_together

from .portal import query_of, register_portal
from .test_flow import sign_in

pytestmark = pytest.mark.django_db(transaction=True)


def published_kids(client) -> set[str]:
    return {k["kid"] for k in client.get("/oidc/jwks").json()["keys"]}


def keys_cli(*args) -> str:
    out = io.StringIO()
    with translation.override("en"):
        call_command("oidc_keys", *args, stdout=out, stderr=io.StringIO())
    return out.getvalue()


def id_token_for(client, portal) -> str:
    """Run the authorization request (the citizen is signed in and has consented) and redeem the code."""
    response = client.get(portal.authorize_url())
    assert response.status_code == 302 and response["Location"].startswith(portal.redirect_uri), response
    token = client.post("/oidc/token", urlencode(portal.token_form(query_of(response["Location"])["code"])),
                        content_type="application/x-www-form-urlencoded")
    assert token.status_code == 200, token.content
    return token.json()["id_token"]


def header_kid(token: str) -> str:
    return jws.extract_compact(token.encode()).headers()["kid"]


def test_a_token_signed_before_a_rotation_verifies_after_it_until_the_retention_ends(
        client, make_citizen, outbox, clock):
    make_citizen(phone="+351912345678", pin="4719")
    portal = register_portal()
    client.get(portal.authorize_url())
    client.get(sign_in(client, outbox)["Location"])
    client.post("/oidc/consent", {"decision": "allow", "attribute": []})
    before = id_token_for(client, portal)
    old_kid = header_kid(before)

    listed = json.loads(keys_cli("rotate", "--json"))
    new_rs256 = next(k["kid"] for k in listed if k["alg"] == "RS256")
    assert old_kid != new_rs256

    # Published side by side: the old token still verifies against what the portal downloads now.
    assert {old_kid, new_rs256} <= published_kids(client)
    claims = jwt.decode(before, KeySet.import_key_set(client.get("/oidc/jwks").json())).claims
    assert claims["aud"] == portal.client_id

    # Until the JWKS cache lifetime has passed the old key still signs (portals fetch the new one
    # meanwhile); then a new login (single sign-on, consent remembered) gets the new key.
    again = dataclasses.replace(portal, state=secrets.token_urlsafe(12), nonce=secrets.token_urlsafe(12),
                                verifier=secrets.token_urlsafe(48))
    assert header_kid(id_token_for(client, again)) == old_kid
    clock.travel(keys.cache_lifetime())
    again = dataclasses.replace(portal, state=secrets.token_urlsafe(12), nonce=secrets.token_urlsafe(12),
                                verifier=secrets.token_urlsafe(48))
    after = id_token_for(client, again)
    assert header_kid(after) == new_rs256
    jwt.decode(after, KeySet.import_key_set(client.get("/oidc/jwks").json()))

    clock.travel(keys.retention() - dt.timedelta(seconds=1))
    assert old_kid in published_kids(client)
    clock.travel(dt.timedelta(seconds=1))
    assert old_kid not in published_kids(client)
    assert new_rs256 in published_kids(client)
    with pytest.raises(InvalidKeyIdError):
        jwt.decode(before, KeySet.import_key_set(client.get("/oidc/jwks").json()))


def test_a_retired_key_is_published_at_least_as_long_as_the_tokens_it_signed_live(settings, clock):
    settings.CHAVE_POLICY = {**settings.CHAVE_POLICY, "oidc_key_retention_seconds": 60,
                             "oidc_id_token_seconds": 600}
    old = keys.active_key("ES256")
    keys.rotate()
    old.refresh_from_db()
    assert old.retired_at == clock.now() + keys.cache_lifetime()  # it signs until the next key does
    assert keys.published_until(old) == old.retired_at + dt.timedelta(seconds=600)
    clock.travel(keys.cache_lifetime() + dt.timedelta(seconds=599))
    assert old.kid in {row.kid for row in keys.published()}
    clock.travel(dt.timedelta(seconds=1))
    assert old.kid not in {row.kid for row in keys.published()}


def test_the_jwks_holds_public_keys_only_and_the_private_halves_are_sealed_at_rest(client, settings):
    client.get("/oidc/jwks")  # first use makes the keys
    rows = list(SigningKey.objects.all())
    assert sorted(row.alg for row in rows) == ["ES256", "RS256"]
    secrets_in_clear = []
    for row in rows:
        private = keys.private_key(row).as_dict(private=True)
        secrets_in_clear += [private["d"]] + [private[m] for m in ("p", "q", "dp", "dq", "qi") if m in private]
    assert all(len(value) > 20 for value in secrets_in_clear)

    published = json.dumps(client.get("/oidc/jwks").json())
    assert not any(value in published for value in secrets_in_clear)
    assert all("d" not in k for k in json.loads(published)["keys"])

    # Nothing in any table of the database holds a private member in clear.
    with connection.cursor() as cursor:
        for table in connection.introspection.table_names():
            cursor.execute(f"SELECT * FROM {connection.ops.quote_name(table)}")
            dump = repr(cursor.fetchall())
            leaked = [value[:8] for value in secrets_in_clear if value in dump]
            assert not leaked, f"private key material in clear in {table}"

    # Sealed under the configured secret: another secret cannot open them.
    settings.CHAVE_KEY_SEAL_SECRET = "another-secret"
    with pytest.raises(InvalidToken):
        keys.private_key(rows[0])


@pytest.mark.parametrize(("alg", "callers"), [("ES256", 12), ("RS256", 4)])
def test_concurrent_first_use_makes_a_single_active_key(alg, callers):
    kids = run_together(callers, lambda i: keys.active_key(alg).kid)
    assert len(set(kids)) == 1
    assert SigningKey.objects.filter(alg=alg, retired_at__isnull=True).count() == 1
    assert SigningKey.objects.filter(alg=alg).count() == 1


def test_concurrent_rotations_leave_one_active_key_per_algorithm():
    keys.active_key("RS256"), keys.active_key("ES256")
    made = run_together(3, lambda i: [row.kid for row in keys.rotate()])
    active = SigningKey.objects.filter(retired_at__isnull=True)
    assert sorted(active.values_list("alg", flat=True)) == ["ES256", "RS256"]
    assert set(active.values_list("kid", flat=True)) in [set(kids) for kids in made]
    assert SigningKey.objects.count() == 2 + 3 * 2  # every rotation took effect, one after another
    assert AuditEvent.objects.filter(event="oidc.keys_rotated").count() == 3


def test_the_database_refuses_a_second_active_key_of_an_algorithm():
    row = keys.active_key("RS256")
    with pytest.raises(IntegrityError), transaction.atomic():
        SigningKey.objects.create(kid="other", alg="RS256", private_jwk_sealed="x", public_jwk={},
                                  created_at=row.created_at)
    # A retired one of the same algorithm is fine (that is what rotation leaves behind).
    SigningKey.objects.create(kid="older", alg="RS256", private_jwk_sealed="x", public_jwk={},
                              created_at=row.created_at, retired_at=row.created_at)


def test_oidc_keys_list_and_rotate(clock):
    assert "No signing keys yet" in keys_cli("list")
    assert json.loads(keys_cli("list", "--json")) == []

    first = {keys.active_key(alg).kid for alg in keys.ALGORITHMS}
    text = keys_cli("rotate")
    new = {row.kid for row in SigningKey.objects.filter(retired_at__isnull=True)}
    assert new.isdisjoint(first)
    assert all(kid in text for kid in new) and "stay published until" in text and "They sign from" in text

    now = clock.now()
    switch = now + keys.cache_lifetime()
    listed = json.loads(keys_cli("list", "--json"))
    assert [set(k) for k in listed] == [{"kid", "alg", "created_at", "activates_at", "retired_at", "published_until",
                                         "active", "published"}] * 4
    by_kid = {k["kid"]: k for k in listed}
    for kid in first:  # still signing, until the next keys take over
        assert by_kid[kid]["active"] is True and by_kid[kid]["published"] is True
        assert by_kid[kid]["retired_at"] == switch.isoformat()
        assert by_kid[kid]["published_until"] == (switch + keys.retention()).isoformat()
    for kid in new:
        assert by_kid[kid] | {"created_at": None} == {
            "kid": kid, "alg": by_kid[kid]["alg"], "created_at": None, "activates_at": switch.isoformat(),
            "retired_at": None, "published_until": None, "active": False, "published": True}
    assert "next, published, signs from" in keys_cli("list")

    event = AuditEvent.objects.get(event="oidc.keys_rotated")
    assert sorted(event.detail["retired"]) == sorted(first) and sorted(event.detail["made"]) == sorted(new)
    assert event.detail["by"].endswith("(CLI)")

    clock.travel(keys.cache_lifetime())
    assert sorted(k["kid"] for k in json.loads(keys_cli("list", "--json")) if k["active"]) == sorted(new)
    clock.travel(keys.retention())
    text = keys_cli("list")
    assert text.count("no longer published") == 2 and text.count("active") == 2
    assert [k["published"] for k in json.loads(keys_cli("list", "--json")) if not k["active"]] == [False, False]
