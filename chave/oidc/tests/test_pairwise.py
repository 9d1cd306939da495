"""Pairwise subjects (OpenID Connect Core §8.1), issue 14 item 15: a portal's sector is the host of
all its redirect URIs, or the host of a ``sector_identifier_uri`` whose JSON lists all of them —
fetched and checked when the portal is approved. No one can give a portal another portal's sector
(and so the subjects another portal sees)."""

from __future__ import annotations

import json
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest
from django.core.exceptions import ValidationError
from joserfc.jwk import RSAKey

from chave.federation import services as federation
from chave.federation.models import RelyingParty
from chave.oidc import services

pytestmark = pytest.mark.django_db


class SectorDocuments:
    """A portal's web server on 127.0.0.1 publishing sector identifier documents."""

    def __init__(self):
        self.documents: dict[str, bytes] = {}
        documents = self.documents

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self):
                body = documents.get(self.path)
                self.send_response(200 if body is not None else 404)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(body or b"")))
                self.end_headers()
                self.wfile.write(body or b"")

            def log_message(self, *args):
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def publish(self, path: str, value) -> str:
        self.documents[path] = value if isinstance(value, bytes) else json.dumps(value).encode()
        return f"http://127.0.0.1:{self.server.server_port}{path}"


@pytest.fixture
def sector():
    documents = SectorDocuments()
    yield documents
    documents.server.shutdown()
    documents.server.server_close()


def register(redirect_uris, **extra):
    return services.register_relying_party(
        name="Portal", entity_nif="600084779", contact_email="dev@saude.gov.pt", redirect_uris=redirect_uris,
        jwks={"keys": [RSAKey.generate_key(2048, private=True).as_dict(private=False)]}, **extra).relying_party


def test_a_sector_that_is_not_the_redirect_uris_host_is_refused():
    with pytest.raises(ValidationError) as refused:
        register(["https://portal.example.gov.pt/cb"], sector_identifier="financas.gov.pt")
    assert [e.code for e in refused.value.error_dict["sector_identifier"]] == ["sector_not_redirect_host"]
    assert not RelyingParty.objects.exists()


def test_the_sector_of_one_host_is_that_host():
    party = register(["https://saude.gov.pt/a", "https://saude.gov.pt/b"], sector_identifier="saude.gov.pt")
    assert party.sector == "saude.gov.pt"


def test_a_sector_identifier_uri_listing_every_redirect_uri_lets_the_portal_be_approved(sector):
    uris = ["https://a.saude.gov.pt/cb", "https://b.saude.gov.pt/cb"]
    uri = sector.publish("/sector.json", [*uris, "https://c.saude.gov.pt/cb"])
    party = register(uris, sector_identifier_uri=uri)
    assert party.sector == "127.0.0.1"  # the document's host
    assert federation.decide(party, "approve", by="test").is_approved


@pytest.mark.parametrize("document, code", [
    (["https://a.saude.gov.pt/cb"], "sector_uri_mismatch"),
    ({"redirect_uris": ["https://a.saude.gov.pt/cb", "https://b.saude.gov.pt/cb"]}, "sector_uri_invalid"),
    (b"not json", "sector_uri_unreadable"),
    (None, "sector_uri_unreadable"),  # 404
])
def test_a_sector_identifier_uri_that_does_not_list_every_redirect_uri_stops_the_approval(sector, document, code):
    uris = ["https://a.saude.gov.pt/cb", "https://b.saude.gov.pt/cb"]
    uri = sector.publish("/sector.json", document) if document is not None else sector.publish("/x", []) + "-missing"
    party = register(uris, sector_identifier_uri=uri)
    with pytest.raises(ValidationError) as refused:
        federation.decide(party, "approve", by="test")
    assert refused.value.code == code
    party.refresh_from_db()
    assert party.state == RelyingParty.State.REQUESTED


def test_the_cli_says_why_an_approval_was_refused(sector):
    from io import StringIO

    from django.core.management import CommandError, call_command
    from django.utils import translation

    party = register(["https://a.saude.gov.pt/cb", "https://b.saude.gov.pt/cb"],
                     sector_identifier_uri=sector.publish("/s.json", ["https://a.saude.gov.pt/cb"]))
    with translation.override("en"), pytest.raises(
            CommandError, match="does not list these redirect URIs: https://b.saude.gov.pt/cb"):
        call_command("rp", "approve", party.client_id, "--reason", "checked", stdout=StringIO())


def test_a_sector_identifier_uri_set_later_stays_in_the_sector_and_is_read_at_once(sector):
    """Changed after registration (``chave rp settings``, the counter's portal page): on an approved
    portal the document is read at once and must list every redirect URI; another host is refused,
    since it would change (or borrow) the subjects the portal knows its citizens by."""
    from chave.oidc.models import client_settings

    uris = [sector.publish("/cb", []).replace("/cb", "/login/callback")]  # the portal's own host: 127.0.0.1
    party = federation.decide(register(uris), "approve", by="test")
    missing = sector.publish("/missing.json", ["https://other.gov.pt/cb"])
    with pytest.raises(ValidationError) as refused:
        services.set_client_settings(party, by="test", sector_identifier_uri=missing)
    assert [e.code for e in refused.value.error_dict["sector_identifier_uri"]] == ["sector_uri_mismatch"]
    with pytest.raises(ValidationError) as refused:
        services.set_client_settings(party, by="test", sector_identifier_uri="https://financas.gov.pt/sector.json")
    assert [e.code for e in refused.value.error_dict["sector_identifier_uri"]] == ["sector_uri_other_sector"]
    assert client_settings(RelyingParty.objects.get(pk=party.pk)).sector_identifier_uri == ""

    listing = sector.publish("/sector.json", uris)
    services.set_client_settings(party, by="test", sector_identifier_uri=listing)
    assert client_settings(RelyingParty.objects.get(pk=party.pk)).sector_identifier_uri == listing
    assert RelyingParty.objects.get(pk=party.pk).sector == "127.0.0.1"  # the subjects do not change
    services.set_client_settings(party, by="test", sector_identifier_uri="")  # one host: it may go
    assert client_settings(RelyingParty.objects.get(pk=party.pk)).sector_identifier_uri == ""
