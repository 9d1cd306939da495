"""The IdP's keys (made at migrate, rotated with a grace period, sealed at rest), its signed
metadata, and SAML service providers in the registry (`chave rp add --saml-metadata`)."""

import datetime as dt
import json

import pytest
from django.core.management import call_command
from django.core.management.base import CommandError
from saml2.mdstore import MetadataStore

from chave.federation.models import RelyingParty
from chave.saml import keys
from chave.saml.models import IdpKey, ServiceProvider

from .sp import pysaml2_portal

pytestmark = pytest.mark.django_db


def command(*args):
    """A command run in-process, its messages in English (they are translated: pt-PT is the default)."""
    from django.utils import translation

    with translation.override("en"):
        call_command(*args)


def idp_certs(client) -> list[str]:
    store = MetadataStore(None, None)
    store.load("inline", client.get("/saml/metadata").content.decode())
    entity = list(store.keys())[0]
    return ["".join(c.split()) for _n, c in store.certs(entity, "idpsso", "signing")]


def test_migrate_leaves_a_sealed_key_and_signed_metadata(client):
    row = IdpKey.objects.get(retired_at__isnull=True)  # made by the post-migrate hook
    assert "PRIVATE KEY" not in row.private_key_sealed and "BEGIN CERTIFICATE" in row.certificate_pem
    response = client.get("/saml/metadata")
    assert response["Content-Type"].startswith("application/samlmetadata+xml")
    text = response.content.decode()
    assert "<ns1:Signature" in text or ":Signature" in text
    assert "http://127.0.0.1:8000/saml/sso" in text and 'WantAuthnRequestsSigned="true"' in text
    assert idp_certs(client) == [keys.certificate_base64(row)]


def test_a_rotated_certificate_stays_published_for_the_grace_period(client, clock, settings):
    old = keys.active_key()
    new = keys.rotate(by="test")
    assert keys.active_key() == new
    assert idp_certs(client) == [keys.certificate_base64(new), keys.certificate_base64(old)]
    clock.travel(keys.grace() + dt.timedelta(seconds=1))
    assert idp_certs(client) == [keys.certificate_base64(new)]


def test_saml_keys_command_lists_and_rotates(capsys):
    command("saml_keys", "rotate")
    out = capsys.readouterr().out
    assert "New SAML signing certificate" in out
    command("saml_keys", "list", "--json")
    listing = json.loads(capsys.readouterr().out)
    assert [row["signing"] for row in listing] == [True, False]
    assert all("PRIVATE" not in json.dumps(row) for row in listing)


def test_rp_add_registers_a_saml_service_provider_from_its_metadata(tmp_path, client, capsys):
    portal = pysaml2_portal(tmp_path, client.get("/saml/metadata").content.decode())
    path = tmp_path / "sp.xml"
    path.write_text(portal.metadata_xml)
    command("rp", "add", "--name", "Portal SAML", "--nif", "600084779", "--contact-email", "dev@x.gov.pt",
                 "--saml-metadata", str(path), "--attributes", "NIC,NomeCompleto", "--min-level", "3", "--json")
    data = json.loads(capsys.readouterr().out)
    assert data["state"] == "requested" and data["saml"]["entity_id"] == portal.entity_id
    assert data["saml"]["acs"] == [portal.acs]
    sp = ServiceProvider.objects.get(entity_id=portal.entity_id)
    assert sp.relying_party.min_level == 3 and sp.certificates
    command("rp", "approve", sp.relying_party.client_id, "--reason", "ok")
    assert RelyingParty.objects.get(pk=sp.relying_party.pk).is_approved
    with pytest.raises(CommandError, match="already registered"):
        command("rp", "add", "--name", "Again", "--nif", "600084779", "--contact-email", "dev@x.gov.pt",
                     "--saml-metadata", str(path))


@pytest.mark.parametrize("content, message", [
    ("not xml at all", "not SAML 2.0 metadata"),
    ('<?xml version="1.0"?><!DOCTYPE x [<!ENTITY a "aaaa">]><x>&a;</x>', "not SAML 2.0 metadata"),
])
def test_rp_add_refuses_what_is_not_sp_metadata(tmp_path, content, message):
    path = tmp_path / "bad.xml"
    path.write_text(content)
    with pytest.raises(CommandError, match=message):
        command("rp", "add", "--name", "X", "--nif", "600084779", "--contact-email", "dev@x.gov.pt",
                     "--saml-metadata", str(path))
    assert not ServiceProvider.objects.exists()


def test_rp_add_refuses_metadata_without_a_signing_certificate(tmp_path, client):
    portal = pysaml2_portal(tmp_path, client.get("/saml/metadata").content.decode())
    import re

    stripped = re.sub(r"<ns\d:KeyDescriptor.*?</ns\d:KeyDescriptor>", "", portal.metadata_xml, flags=re.S)
    path = tmp_path / "nocert.xml"
    path.write_text(stripped)
    with pytest.raises(CommandError, match="no signing certificate"):
        command("rp", "add", "--name", "X", "--nif", "600084779", "--contact-email", "dev@x.gov.pt",
                     "--saml-metadata", str(path))
