"""A citizen's browser going from a portal's request to its callback, for the protocol tests.

:func:`visit` follows the redirects of the authorization endpoint and, when sent there, signs in
through the real login pages (the code read from the development outbox, as from a phone) and
answers the consent page; it records which pages the citizen saw. :func:`redeem` and
:func:`claims_of` are the portal's side.
"""

from __future__ import annotations

import datetime as dt
import re
import secrets
from dataclasses import dataclass, field

from django.test import Client
from joserfc import jwt
from joserfc.jwk import KeySet

from chave.delivery.models import DevOutboxMessage

from .portal import Portal, query_of

PHONE = "+351912345678"
EMAIL = "maria@example.pt"
PIN = "4719"


@dataclass
class Visit:
    """Where the browser ended: the portal's callback (its query) or a page of ours."""

    response: object
    callback: dict | None = None
    pages: list[str] = field(default_factory=list)  # "login", "consent" in the order seen

    @property
    def code(self) -> str:
        assert self.callback and "code" in self.callback, f"no code: {self.callback or self.response}"
        return self.callback["code"]

    @property
    def error(self) -> str | None:
        return (self.callback or {}).get("error")


def sign_in(client: Client, outbox, *, identifier: str = PHONE, pin: str = PIN, channel: str | None = None):
    """The login pages: identifier + PIN, the channel when asked (``channel``), then the code
    read from what was sent. Returns the response to the code (or the page that refused)."""
    response = client.post("/login/", {"identifier": identifier, "pin": pin})
    if response.status_code != 302:
        return response
    if response["Location"].endswith("/login/channel/"):
        assert channel, "the login asks for a channel"
        response = client.post("/login/channel/", {"channel": channel})
        assert response.status_code == 302 and response["Location"].endswith("/login/code/"), response
    outbox.last(identifier)  # runs the delivery worker: the code reaches the phone or mailbox
    latest = DevOutboxMessage.objects.order_by("-sent_at", "-id").first()
    assert latest is not None, "no code was sent"
    return client.post("/login/code/", {"code": outbox.last_code(latest.to)})


def consent_choices(page: str) -> list[str]:
    """The optional attributes the consent page offers (checkboxes the citizen may untick)."""
    return re.findall(r'<input type="checkbox"[^>]*name="attribute" value="([^"]+)"', page)


def renew(portal: Portal) -> Portal:
    """A new request of the portal: fresh ``state``, ``nonce`` and PKCE verifier."""
    portal.state, portal.nonce = secrets.token_urlsafe(12), secrets.token_urlsafe(12)
    portal.verifier = secrets.token_urlsafe(48)
    return portal


def visit(client: Client, outbox, portal: Portal, *, identifier: str = PHONE, pin: str = PIN,
          channel: str | None = None, share: list[str] | None = None, refuse: bool = False,
          url: str | None = None, **params) -> Visit:
    """Send the browser to a new authorization request of the portal (fresh state, nonce and
    verifier, unless ``url`` is given) and follow it to the end.

    Signs in when the login page comes up, and at the consent page shares ``share`` of the
    optional attributes (all when None), or refuses with ``refuse``.
    """
    if url is None:
        renew(portal)
    response = client.get(url or portal.authorize_url(**params))
    seen: list[str] = []
    for _ in range(8):
        if response.status_code != 302:
            return Visit(response, None, seen)
        location = response["Location"]
        if location.startswith(portal.redirect_uri):
            return Visit(response, query_of(location), seen)
        if location.endswith("/login/"):
            seen.append("login")
            response = sign_in(client, outbox, identifier=identifier, pin=pin, channel=channel)
            continue
        if location.endswith("/oidc/consent"):
            seen.append("consent")
            page = client.get("/oidc/consent")
            assert page.status_code == 200
            if refuse:
                response = client.post("/oidc/consent", {"decision": "refuse"})
            else:
                offered = consent_choices(page.content.decode())
                chosen = offered if share is None else [a for a in offered if a in share]
                response = client.post("/oidc/consent", {"decision": "allow", "attribute": chosen})
            continue
        response = client.get(location)
    raise AssertionError("too many redirects")


def redeem(client: Client, portal: Portal, code: str, **overrides):
    return client.post("/oidc/token", portal.token_form(code, **overrides))


def refresh(client: Client, portal: Portal, refresh_token: str, **overrides):
    form = {"grant_type": "refresh_token", "refresh_token": refresh_token,
            "client_assertion_type": "urn:ietf:params:oauth:client-assertion-type:jwt-bearer",
            "client_assertion": portal.assertion(), **overrides}
    return client.post("/oidc/token", {k: v for k, v in form.items() if v is not None})


def userinfo(client: Client, access_token: str):
    return client.get("/oidc/userinfo", HTTP_AUTHORIZATION=f"Bearer {access_token}")


def claims_of(client: Client, id_token: str) -> dict:
    """The ID token's claims, its signature checked against the published JWKS."""
    keys = KeySet.import_key_set(client.get("/oidc/jwks").json())
    return jwt.decode(id_token, keys).claims


def tokens(client: Client, outbox, portal: Portal, **kwargs) -> dict:
    """The whole flow to the token response (asserting it succeeds), with the ID token decoded."""
    trip = visit(client, outbox, portal, **kwargs)
    response = redeem(client, portal, trip.code)
    assert response.status_code == 200, response.content
    body = response.json()
    body["claims"] = claims_of(client, body["id_token"])
    body["pages"] = trip.pages
    return body


_CODE_LINE = re.compile(r"#\d{6}\s*$")


def codes_sent(outbox, to: str | None = None) -> int:
    """How many security codes reached the citizen (to ``to``, or anywhere), after the delivery
    worker has run: what their phone and mailbox would show."""
    outbox.last(to or "")  # runs the worker
    messages = DevOutboxMessage.objects.all() if to is None else DevOutboxMessage.objects.filter(to=to)
    return sum(1 for m in messages if _CODE_LINE.search(m.body))


def ask(client: Client, portal: Portal, **params):
    """A new authorization request of the portal, answered without following it."""
    return client.get(renew(portal).authorize_url(**params))


def make_foreigner(*, phone: str = "+351913333333", doc_type: str = "passport", country: str = "BR",
                   number: str = "FB123456", full_name: str = "Ana Estrangeira Souza"):
    """A foreign resident with a key (passport by default), registered through the services."""
    from chave import clock
    from chave.identity import services
    from chave.identity.models import ContactKind
    from chave.identity.registry import DocumentRef, IdentityRecord, LocalRecords

    doc = DocumentRef(doc_type, country, number)
    LocalRecords().store(IdentityRecord(
        doc=doc, full_name=full_name, given_name=full_name.split()[0], family_name=full_name.split()[-1],
        birth_date=dt.date(1985, 3, 2), document_expiry=clock.today() + dt.timedelta(days=2000),
    ))
    key, _ = services.register_citizen(doc, [services.ContactInput(ContactKind.MOBILE, phone)], pin=PIN,
                                       contacts_verified_by="test")
    return key
