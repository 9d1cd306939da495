"""Single sign-on across the doors: a citizen signed in for an OpenID Connect portal is not asked
again by a SAML SP at the same or a lower level, and the reverse; a higher level signs in again."""

import pytest

from chave.federation.attributes import PREFIX
from chave.oidc.tests.portal import query_of, register_portal
from chave.oidc.tests.signin import renew, sign_in

from .sp import fa_extensions
from .test_sso import answer, follow, start

pytestmark = pytest.mark.django_db(transaction=True)


def test_oidc_then_saml_then_oidc_without_signing_in_again(client, make_citizen, outbox, portal):
    make_citizen()
    oidc_portal = register_portal(mandatory=(), min_level=3)
    response = client.get(oidc_portal.authorize_url(scope="openid"))
    assert response["Location"].endswith("/login/")
    response = client.get(sign_in(client, outbox)["Location"])  # back at /oidc/authorize: the code
    assert response["Location"].startswith(oidc_portal.redirect_uri) and "code" in query_of(response["Location"])

    # The SAML SP at level 3: no login page, straight to consent, then the answer.
    request_id, response = start(client, portal, extensions=fa_extensions({"NIC": True}, level=3))
    assert follow(client, response)["Location"] == "/saml/consent"
    _, result = answer(portal, follow(client, client.post("/saml/consent", {"decision": "allow"})), request_id)
    assert result.ava[PREFIX + "NIC"]
    assert result.assertion.authn_statement[0].authn_context.authn_context_class_ref.text == "urn:chave:loa:3"

    # The SAML SP at level 4 (the Citizen Card) is more than this sign-in: to the login page.
    _, response = start(client, portal, extensions=fa_extensions({"NIC": True}, level=4))
    assert follow(client, response)["Location"].endswith("/login/")

    # Back to the OpenID Connect portal: still signed in, a code at once.
    response = client.get(renew(oidc_portal).authorize_url(scope="openid"))
    assert response["Location"].startswith(oidc_portal.redirect_uri) and "code" in query_of(response["Location"])


def test_saml_then_oidc_without_signing_in_again(client, make_citizen, outbox, portal):
    make_citizen()
    request_id, response = start(client, portal, extensions=fa_extensions({"NIC": True}, level=2))
    assert follow(client, response)["Location"].endswith("/login/")
    follow(client, sign_in(client, outbox))
    answer(portal, follow(client, client.post("/saml/consent", {"decision": "allow"})), request_id)
    oidc_portal = register_portal(mandatory=(), min_level=3)
    response = client.get(oidc_portal.authorize_url(scope="openid"))
    assert response["Location"].startswith(oidc_portal.redirect_uri) and "code" in query_of(response["Location"])
