"""Key rotation that portals caching the JWKS survive (issue 14 item 11).

A portal that caches ``/oidc/jwks`` for as long as its ``Cache-Control: max-age`` allows, and reads
it again only when that has passed, verifies every ID token Chave issues across ``chave oidc_keys
rotate`` — also when it fetched the JWKS just before the rotation. ``activate`` starts the new
keys earlier only with ``--force``. Discovery and the JWKS carry ``Cache-Control`` and CORS.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import re
import secrets
from io import StringIO

import pytest
from django.core.management import CommandError, call_command
from django.utils import translation
from joserfc import jws, jwt
from joserfc.errors import InvalidKeyIdError
from joserfc.jwk import KeySet

from chave import clock as service_clock
from chave.oidc import keys

from .portal import register_portal
from .signin import redeem, visit

pytestmark = pytest.mark.django_db(transaction=True)


class CachingPortal:
    """A portal that keeps the JWKS for its max-age, as HTTP caches and client libraries do."""

    def __init__(self, client):
        self.client, self.keys, self.until, self.fetches = client, None, None, 0

    def jwks(self) -> KeySet:
        now = service_clock.now()
        if self.keys is None or now >= self.until:
            response = self.client.get("/oidc/jwks")
            max_age = int(re.search(r"max-age=(\d+)", response["Cache-Control"]).group(1))
            self.keys, self.until = KeySet.import_key_set(response.json()), now + dt.timedelta(seconds=max_age)
            self.fetches += 1
        return self.keys

    def verify(self, token: str) -> dict:
        return jwt.decode(token, self.jwks()).claims


def id_token(client, outbox, portal) -> str:
    fresh = dataclasses.replace(portal, state=secrets.token_urlsafe(12), nonce=secrets.token_urlsafe(12),
                                verifier=secrets.token_urlsafe(48))
    response = redeem(client, fresh, visit(client, outbox, fresh, url=fresh.authorize_url()).code)
    assert response.status_code == 200, response.content
    return response.json()["id_token"]


def test_a_portal_caching_the_jwks_verifies_every_id_token_across_a_rotation(client, outbox, make_citizen, clock):
    make_citizen()
    portal = register_portal()
    caching = CachingPortal(client)
    assert caching.verify(id_token(client, outbox, portal))["aud"] == portal.client_id  # cached now
    clock.travel(dt.timedelta(seconds=1))
    call_command("oidc_keys", "rotate", stdout=StringIO())  # right after the portal cached the old set
    lifetime = keys.cache_lifetime()
    kids = set()
    for _step in range(12):  # two cache lifetimes, a login every 50 s
        token = id_token(client, outbox, portal)
        kids.add(jws.extract_compact(token.encode()).headers()["kid"])
        assert caching.verify(token)["aud"] == portal.client_id  # never a key it does not have
        clock.travel(lifetime / 6)
    assert caching.fetches >= 2  # it did fetch the new set, when its cache expired
    assert len(kids) == 2  # and the new key did take over


def test_signing_with_the_new_key_at_once_would_fail_such_a_portal(client, outbox, make_citizen, clock):
    """What ``activate --force`` risks, shown: the cached set lacks the new key."""
    make_citizen()
    portal = register_portal()
    caching = CachingPortal(client)
    caching.verify(id_token(client, outbox, portal))
    call_command("oidc_keys", "rotate", stdout=StringIO())
    call_command("oidc_keys", "activate", "--force", stdout=StringIO())
    with pytest.raises(InvalidKeyIdError):
        caching.verify(id_token(client, outbox, portal))


def test_activate_is_refused_within_the_cache_lifetime_without_force(clock):
    old = keys.active_key("RS256")
    call_command("oidc_keys", "rotate", stdout=StringIO())
    with translation.override("en"), pytest.raises(CommandError, match="less than the JWKS cache lifetime"):
        call_command("oidc_keys", "activate", stdout=StringIO())
    assert keys.active_key("RS256").kid == old.kid
    clock.travel(keys.cache_lifetime() - dt.timedelta(seconds=10))
    out = StringIO()
    with translation.override("en"):
        call_command("oidc_keys", "activate", "--force", stdout=out)
    assert keys.active_key("RS256").kid != old.kid and "New ID tokens are signed with" in out.getvalue()


def test_activate_after_the_cache_lifetime_needs_no_force(clock):
    keys.published()  # the first keys of both algorithms
    old = keys.active_key("ES256")
    call_command("oidc_keys", "rotate", stdout=StringIO())
    pending = {row.kid for row in keys.pending()}
    assert len(pending) == 2 and old.kid not in pending
    clock.travel(keys.cache_lifetime())
    call_command("oidc_keys", "activate", stdout=StringIO())  # nothing pending any more: a no-op
    assert keys.active_key("ES256").kid in pending


def test_the_first_keys_sign_at_once(clock):
    made = keys.rotate()  # no key yet: nothing to wait for
    assert {keys.active_key(row.alg).kid for row in made} == {row.kid for row in made}


@pytest.mark.parametrize("path", ["/.well-known/openid-configuration", "/.well-known/oauth-authorization-server",
                                  "/oidc/jwks"])
def test_discovery_and_jwks_may_be_cached_and_read_from_browsers(client, settings, path):
    response = client.get(path)
    max_age = settings.CHAVE_POLICY["oidc_jwks_max_age_seconds"]
    assert response["Cache-Control"] == f"public, max-age={max_age}"
    assert response["Access-Control-Allow-Origin"] == "*"
