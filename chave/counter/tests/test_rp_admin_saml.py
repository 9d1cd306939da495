"""SAML service providers on the counter's portal pages: shown with their entity ID and ACS,
approved like any portal, their metadata (certificate) replaced with a reason."""

import pytest

from chave.federation.models import RelyingPartyEvent
from chave.saml.models import ServiceProvider
from chave.saml.tests.conftest import register
from chave.saml.tests.sp import pysaml2_portal

pytestmark = pytest.mark.django_db


def test_staff_see_approve_and_replace_the_certificate_of_a_saml_sp(staff_client, tmp_path):
    from chave.saml import idp

    portal = pysaml2_portal(tmp_path, idp.metadata())
    sp = register(portal.metadata_xml, approve=False)
    client_id = sp.relying_party.client_id
    client = staff_client("rp-admin", counter="")
    page = client.get(f"/counter/rp/{client_id}/").content.decode()
    assert portal.entity_id in page and portal.acs in page and "SAML 2.0" in page
    assert "Change the portal's keys" not in page
    response = client.post(f"/counter/rp/{client_id}/decide", {"decide-decision": "approve",
                                                                "decide-reason": "Protocolo assinado"})
    assert response.status_code == 302
    sp.refresh_from_db()
    assert sp.relying_party.is_approved

    renewed = pysaml2_portal(tmp_path / ".." / tmp_path.name, idp.metadata(), name="renewed")  # same entity, new key
    response = client.post(f"/counter/rp/{client_id}/saml-metadata",
                           {"metadata-metadata": renewed.metadata_xml, "metadata-reason": "Certificado renovado"})
    assert response.status_code == 302, response.content.decode()[:2000]
    assert ServiceProvider.objects.get(pk=sp.pk).certificates != sp.certificates
    assert RelyingPartyEvent.objects.filter(relying_party=sp.relying_party, action="keys_changed").exists()

    other = pysaml2_portal(tmp_path, idp.metadata(), host="other.example.pt", name="other")
    response = client.post(f"/counter/rp/{client_id}/saml-metadata",
                           {"metadata-metadata": other.metadata_xml, "metadata-reason": "Certificado renovado"})
    assert response.status_code == 400 and "not " + portal.entity_id in response.content.decode()
    response = client.post(f"/counter/rp/{client_id}/saml-metadata",
                           {"metadata-metadata": "<junk", "metadata-reason": "Certificado renovado"})
    assert response.status_code == 400 and "not SAML 2.0 metadata" in response.content.decode()
