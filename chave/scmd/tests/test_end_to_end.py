"""An integrator of the Portuguese remote signature service, unchanged but for the address, the
credentials and the encryption certificate: a zeep client built from the WSDL Chave serves gets
the certificate, signs one hash and a batch, reads the code from the citizen's phone, validates
it, and each signature verifies against the returned certificate (sha256WithRSAEncryption)."""

from __future__ import annotations

import datetime as dt

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import padding

from chave.audit.models import AuditEvent

from .conftest import PHONE, digest_info

pytestmark = pytest.mark.django_db(transaction=True)
PIN = "5820"


def _chain(pem: str) -> list[x509.Certificate]:
    return x509.load_pem_x509_certificates(pem.encode())


def _no_documents(answer) -> bool:
    """A nil ArrayOfHashStructure (zeep shows it as an empty list)."""
    return answer.ArrayOfHashStructure is None or not answer.ArrayOfHashStructure.HashStructure


def test_certificate_sign_multiple_sign_validate(signer, integrator_client, outbox, clock):
    c = integrator_client
    signer(phone=PHONE)
    outbox.last(PHONE)  # the activation notice first (the clock is frozen: order by sending)
    clock.travel(dt.timedelta(seconds=1))

    chain = _chain(c.service.GetCertificate(applicationId=c.app, userId=c.encrypt("+351 912000701")))
    assert len(chain) == 3 and chain[0].subject.rfc4514_string().startswith("CN=Maria Teste Silva")
    public = chain[0].public_key()

    # One document.
    status = c.service.SCMDSign(request={"ApplicationId": c.app, "DocName": "contrato.pdf",
                                         "Hash": digest_info(b"contrato"), "Pin": c.encrypt(PIN),
                                         "UserId": c.encrypt("+351 912000701")})
    assert status.Code == "200" and status.ProcessId
    message = outbox.last(PHONE).body
    assert "«contrato.pdf»" in message and "Plataforma de Documentos" in message
    answer = c.service.ValidateOtp(code=c.encrypt(outbox.last_code(PHONE)), processId=status.ProcessId,
                                   applicationId=c.app)
    assert answer.Status.Code == "200" and _no_documents(answer)
    public.verify(answer.Signature, b"contrato", padding.PKCS1v15(), hashes.SHA256())
    assert _chain(answer.certificate)[0] == chain[0]

    # A batch, with SHA-256, SHA-384 and SHA-512 documents; the code message names them.
    clock.travel(dt.timedelta(seconds=31))
    documents = [("ata.pdf", b"ata", "sha256"), ("anexo.pdf", b"anexo", "sha384"), ("mapa.pdf", b"mapa", "sha512")]
    status = c.service.SCMDMultipleSign(
        request={"ApplicationId": c.app, "Pin": c.encrypt(PIN), "UserId": c.encrypt("912000701")},
        documents={"HashStructure": [{"Hash": digest_info(data, algorithm), "Name": name, "id": f"doc-{n}"}
                                     for n, (name, data, algorithm) in enumerate(documents)]})
    assert status.Code == "200", status
    assert "«ata.pdf», «anexo.pdf», «mapa.pdf»" in outbox.last(PHONE).body
    answer = c.service.ValidateOtp(code=c.encrypt(outbox.last_code(PHONE)), processId=status.ProcessId,
                                   applicationId=c.app)
    assert answer.Status.Code == "200" and answer.Signature is None
    signed = answer.ArrayOfHashStructure.HashStructure
    assert [(s.Name, s.id) for s in signed] == [(name, f"doc-{n}") for n, (name, _d, _a) in enumerate(documents)]
    for (_name, data, algorithm), item in zip(documents, signed, strict=True):
        public.verify(item.Hash, data, padding.PKCS1v15(), getattr(hashes, algorithm.upper())())

    # The certificate again, this time released by signing PIN + code.
    clock.travel(dt.timedelta(seconds=31))
    status = c.service.GetCertificateWithPin(applicationId=c.app, userId=c.encrypt(PHONE), pin=c.encrypt(PIN))
    assert status.Code == "200"
    answer = c.service.ValidateOtp(code=c.encrypt(outbox.last_code(PHONE)), processId=status.ProcessId,
                                   applicationId=c.app)
    assert answer.Status.Code == "200" and answer.Signature is None and _no_documents(answer)
    assert _chain(answer.certificate)[0] == chain[0]

    # Every call was audited with the integrator and its result, and no field's clear value.
    calls = AuditEvent.objects.filter(event="signing.api", detail__client_id=c.integrator.client_id)
    assert {e.detail["endpoint"] for e in calls} == {"scmd.GetCertificate", "scmd.SCMDSign", "scmd.SCMDMultipleSign",
                                                      "scmd.ValidateOtp", "scmd.GetCertificateWithPin"}
    assert all(e.detail["result"] == 200 for e in calls)
    assert PIN not in str(list(AuditEvent.objects.values_list("detail", flat=True)))


def test_get_certificate_gives_the_renewed_certificate_after_a_document_renewal(signer, integrator_client, clock):
    """A renewed identity document re-issues the citizen's certificate for the same key: the
    integrator's next GetCertificate gets it, with the same CA chain."""
    from chave.identity import services as identity

    c = integrator_client
    key, credential = signer(phone=PHONE, document_expiry=clock.today() + dt.timedelta(days=20))
    before = _chain(c.service.GetCertificate(applicationId=c.app, userId=c.encrypt("+351 912000701")))
    assert identity.renew_document(key, clock.today() + dt.timedelta(days=3650), by="civil-registry")
    after = _chain(c.service.GetCertificate(applicationId=c.app, userId=c.encrypt("+351 912000701")))
    credential.refresh_from_db()
    assert f"{after[0].serial_number:x}" == credential.serial_number != f"{before[0].serial_number:x}"
    assert after[0].public_key().public_numbers() == before[0].public_key().public_numbers()
    assert after[0].not_valid_after_utc > before[0].not_valid_after_utc and after[1:] == before[1:]
