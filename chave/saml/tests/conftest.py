import pytest

from chave.federation import services as federation
from chave.saml import services

from .sp import pysaml2_portal

ATTRIBUTES = ["NIC", "NomeProprio", "NomeApelido", "NomeCompleto", "DataNascimento", "NIF", "NumeroTelemovel",
              "CorreioElectronico", "DocType", "DocNationality", "DocNumber"]


def register(metadata_xml: str, *, name="Portal do Cidadão (teste)", approve=True, attributes=ATTRIBUTES,
             mandatory=(), min_level=2):
    sp = services.register_service_provider(
        metadata=services.read_metadata(metadata_xml), name=name, entity_nif="600084779",
        contact_email="dev@portal.example.pt", allowed_attributes=attributes, mandatory_attributes=list(mandatory),
        min_level=min_level, by="test")
    if approve:
        federation.decide(sp.relying_party, "approve", by="test", reason="test portal")
        sp.refresh_from_db()
    return sp


@pytest.fixture
def idp_metadata(client, db):
    response = client.get("/saml/metadata")
    assert response.status_code == 200
    return response.content.decode()


@pytest.fixture
def portal(tmp_path, idp_metadata):
    """A pysaml2 portal, registered and approved."""
    sp = pysaml2_portal(tmp_path, idp_metadata)
    sp.registration = register(sp.metadata_xml)
    return sp
