"""An integrator builds a PAdES signature from what SCMD returns, with pyHanko's external-signer
path (interrupted signing) on its own side: the certificate from GetCertificate, the DigestInfo of
the signed attributes sent to SCMDSign, the RSA signature from ValidateOtp put into the CMS. The
PDF passes pyHanko's validator (trusted, intact, the whole file) and poppler's pdfsig."""

from __future__ import annotations

import asyncio
import datetime as dt
import hashlib
import io

import pytest
from asn1crypto import algos
from asn1crypto import x509 as asn1_x509
from cryptography import x509
from cryptography.hazmat.primitives.serialization import Encoding
from pyhanko.pdf_utils.incremental_writer import IncrementalPdfFileWriter
from pyhanko.pdf_utils.reader import PdfFileReader
from pyhanko.sign import fields, signers
from pyhanko.sign.signers.pdf_byterange import PreparedByteRangeDigest
from pyhanko.sign.signers.pdf_signer import PdfTBSDocument
from pyhanko.sign.timestamps import HTTPTimeStamper
from pyhanko.sign.validation import async_validate_pdf_signature
from pyhanko.sign.validation.status import SignatureCoverageLevel
from pyhanko_certvalidator.registry import SimpleCertificateStore

from chave.signing import pades
from chave.signing.services import DIGEST_INFO_PREFIXES
from chave.signing.tests.helpers import pdfsig, qpdf_check, sample_pdf

from .conftest import PHONE

pytestmark = pytest.mark.django_db(transaction=True)


def test_an_integrator_builds_a_pades_signature_that_pyhanko_and_pdfsig_accept(
        signer, integrator_client, outbox, clock, live_server, tmp_path):
    c = integrator_client
    signer(phone=PHONE)
    outbox.last(PHONE)
    clock.travel(dt.timedelta(seconds=1))
    pem = c.service.GetCertificate(applicationId=c.app, userId=c.encrypt(PHONE))
    chain = [asn1_x509.Certificate.load(cert.public_bytes(Encoding.DER))
             for cert in x509.load_pem_x509_certificates(pem.encode())]
    external = signers.ExternalSigner(
        signing_cert=chain[0], cert_registry=SimpleCertificateStore.from_certs(chain[1:]),
        signature_value=bytes(384), signature_mechanism=algos.SignedDigestAlgorithm({"algorithm": "sha256_rsa"}))
    pdf_signer = signers.PdfSigner(
        signers.PdfSignatureMetadata(field_name="Assinatura1", md_algorithm="sha256",
                                     subfilter=fields.SigSeedSubFilter.PADES),
        signer=external, timestamper=HTTPTimeStamper(live_server.url + "/pki/signing/tsa"))

    async def prepare():
        writer = IncrementalPdfFileWriter(io.BytesIO(sample_pdf()))
        digest, _tbs, output = await pdf_signer.async_digest_doc_for_signing(writer, bytes_reserved=16384)
        attrs = await external.signed_attrs(digest.document_digest, "sha256", use_pades=True)
        return digest, attrs, output

    digest, attrs, output = asyncio.run(prepare())
    to_sign = DIGEST_INFO_PREFIXES["sha256"] + hashlib.sha256(attrs.dump()).digest()
    status = c.service.SCMDSign(request={"ApplicationId": c.app, "DocName": "contrato.pdf", "Hash": to_sign,
                                         "Pin": c.encrypt("5820"), "UserId": c.encrypt(PHONE)})
    assert status.Code == "200", status
    answer = c.service.ValidateOtp(code=c.encrypt(outbox.last_code(PHONE)), processId=status.ProcessId,
                                   applicationId=c.app)
    assert answer.Status.Code == "200"

    async def finish():
        signing = signers.ExternalSigner(
            signing_cert=chain[0], cert_registry=SimpleCertificateStore.from_certs(chain[1:]),
            signature_value=answer.Signature,
            signature_mechanism=algos.SignedDigestAlgorithm({"algorithm": "sha256_rsa"}))
        cms = await signing.async_sign_prescribed_attributes(
            "sha256", signed_attrs=attrs, timestamper=HTTPTimeStamper(live_server.url + "/pki/signing/tsa"))
        await PdfTBSDocument.async_finish_signing(output, prepared_digest=PreparedByteRangeDigest(
            document_digest=digest.document_digest, reserved_region_start=digest.reserved_region_start,
            reserved_region_end=digest.reserved_region_end), signature_cms=cms)
        return output.getvalue()

    signed = asyncio.run(finish())

    async def validate():
        embedded = PdfFileReader(io.BytesIO(signed)).embedded_signatures[0]
        return await async_validate_pdf_signature(embedded, pades.validation_context(),
                                                  ts_validation_context=pades.validation_context())

    result = asyncio.run(validate())
    assert result.intact and result.valid and result.trusted
    assert result.coverage == SignatureCoverageLevel.ENTIRE_FILE
    assert result.md_algorithm == "sha256" and result.pkcs7_signature_mechanism in ("sha256_rsa", "rsassa_pkcs1v15")
    assert result.timestamp_validity is not None and result.timestamp_validity.valid
    path = tmp_path / "assinado.pdf"
    path.write_bytes(signed)
    assert "Signature is Valid" in pdfsig(path)
    assert qpdf_check(path).returncode == 0
