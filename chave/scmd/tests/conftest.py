"""Fixtures for the SCMD tests: an integrator with its Basic credentials, and ``integrator_client``,
a zeep client built from the WSDL Chave serves (the integrator's side: it encrypts fields under
the certificate it downloads from Chave, as an integrator of the Portuguese service does)."""

from __future__ import annotations

import base64
from types import SimpleNamespace

import pytest
import requests

from chave.signing.tests.conftest import signer  # noqa: F401 - a citizen with signing active

PHONE = "+351912000701"


def digest_info(data: bytes, algorithm: str = "sha256") -> bytes:
    """What an integrator sends as ``Hash``: the DigestInfo prefix and the digest (RFC 8017 §9.2)."""
    import hashlib

    from chave.signing.services import DIGEST_INFO_PREFIXES

    return DIGEST_INFO_PREFIXES[algorithm] + hashlib.new(algorithm, data).digest()


@pytest.fixture
def integrator(signing_pki, db):
    from chave.scmd import services

    return services.add_integrator("Plataforma de Documentos", by="test")


@pytest.fixture
def integrator_client(integrator, live_server, settings):
    """A zeep client of ``integrator`` from ``<live server>/scmd/SCMDService.svc?wsdl``, with
    ``encrypt(text)`` (RSA PKCS#1 v1.5 under the published certificate, base64) and ``app``
    (the ApplicationId's bytes)."""
    import zeep
    from cryptography import x509
    from cryptography.hazmat.primitives.asymmetric import padding
    from zeep.transports import Transport

    settings.CHAVE_PUBLIC_URL = live_server.url
    session = requests.Session()
    session.auth = (integrator.integrator.username, integrator.password)
    client = zeep.Client(live_server.url + "/scmd/SCMDService.svc?wsdl", transport=Transport(session=session))
    pem = requests.get(live_server.url + "/scmd/encryption.crt", timeout=30).content
    public = x509.load_pem_x509_certificate(pem).public_key()

    def encrypt(text: str) -> str:
        return base64.b64encode(public.encrypt(text.encode(), padding.PKCS1v15())).decode()

    return SimpleNamespace(client=client, service=client.service, encrypt=encrypt,
                           app=integrator.integrator.application_id.encode(), session=session,
                           url=live_server.url + "/scmd/SCMDService.svc", integrator=integrator.integrator)
