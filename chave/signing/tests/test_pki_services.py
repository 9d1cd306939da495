"""The signing CA's status services as a relying party uses them: OCSP (RFC 6960) and the CRL,
answered over HTTP and signed by keys that are in the HSM (``chave.signing.ca_keys``)."""

from __future__ import annotations

import base64
import datetime as dt
import os

import pytest
from asn1crypto import x509 as asn1_x509
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509 import ocsp

from chave.signing import ca_keys, pki, services
from chave.signing.hsm import HsmError

pytestmark = pytest.mark.django_db


def _cert(signing_pki, name: str) -> x509.Certificate:
    return x509.load_pem_x509_certificate((signing_pki / name).read_bytes())


def ask(client, cert: x509.Certificate, issuer: x509.Certificate, *, nonce: bytes | None = None,
        remote: str = "127.0.0.1"):
    builder = ocsp.OCSPRequestBuilder().add_certificate(cert, issuer, hashes.SHA256())
    if nonce:
        builder = builder.add_extension(x509.OCSPNonce(nonce), critical=False)
    body = builder.build().public_bytes(serialization.Encoding.DER)
    answer = client.post("/pki/signing/ocsp", body, content_type="application/ocsp-request", REMOTE_ADDR=remote)
    assert answer.status_code == 200 and answer["Content-Type"] == "application/ocsp-response"
    return ocsp.load_der_ocsp_response(answer.content)


def signed_by_the_responder(response, responder: x509.Certificate) -> bool:
    """What a relying party checks: the delegated responder named by its key hash, embedded, and
    its signature over the response data."""
    key_bits = asn1_x509.Certificate.load(responder.public_bytes(serialization.Encoding.DER)).public_key
    assert response.responder_key_hash == key_bits.sha1 and response.responder_name is None
    assert [c.public_bytes(serialization.Encoding.DER) for c in response.certificates] == [
        responder.public_bytes(serialization.Encoding.DER)]
    responder.public_key().verify(response.signature, response.tbs_response_bytes,
                                  ec.ECDSA(response.signature_hash_algorithm))
    return True


def test_ocsp_says_good_then_revoked_signed_by_the_responder_with_the_nonce(signing_pki, signer, client,
                                                                           django_capture_on_commit_callbacks):
    ca, responder = _cert(signing_pki, "ca.crt"), _cert(signing_pki, "ocsp.crt")
    key, credential = signer()
    cert = services.certificate(credential)
    nonce = os.urandom(16)
    good = ask(client, cert, ca, nonce=nonce)
    assert good.response_status == ocsp.OCSPResponseStatus.SUCCESSFUL
    assert good.certificate_status == ocsp.OCSPCertStatus.GOOD and good.serial_number == cert.serial_number
    assert good.extensions.get_extension_for_class(x509.OCSPNonce).value.nonce == nonce
    assert signed_by_the_responder(good, responder)
    responder.verify_directly_issued_by(ca)

    with django_capture_on_commit_callbacks(execute=True):
        services.deactivate_signing(key.citizen, by="test")
    revoked = ask(client, cert, ca)
    assert revoked.certificate_status == ocsp.OCSPCertStatus.REVOKED
    assert revoked.revocation_reason == x509.ReasonFlags.cessation_of_operation
    assert signed_by_the_responder(revoked, responder)


def test_ocsp_for_a_certificate_of_another_issuer_is_unknown_and_garbage_is_malformed(signing_pki, client):
    root = _cert(signing_pki, "root.crt")
    unknown = ask(client, _cert(signing_pki, "ca.crt"), root)  # the sub-CA: not one of the certificates it issued
    assert unknown.certificate_status == ocsp.OCSPCertStatus.UNKNOWN
    assert signed_by_the_responder(unknown, _cert(signing_pki, "ocsp.crt"))
    garbage = client.post("/pki/signing/ocsp", b"\x30\x03junk", content_type="application/ocsp-request")
    assert ocsp.load_der_ocsp_response(garbage.content).response_status == ocsp.OCSPResponseStatus.MALFORMED_REQUEST


def test_the_crl_lists_revoked_certificates_and_is_signed_by_the_ca(signing_pki, signer, client,
                                                                    django_capture_on_commit_callbacks):
    ca = _cert(signing_pki, "ca.crt")
    kept, kept_credential = signer(phone="+351912000011")
    gone, gone_credential = signer(phone="+351912000012")
    with django_capture_on_commit_callbacks(execute=True):
        services.deactivate_signing(gone.citizen, by="test")
    answer = client.get("/pki/signing/ca.crl")
    crl = x509.load_der_x509_crl(answer.content)
    assert crl.is_signature_valid(ca.public_key()) and crl.issuer == ca.subject
    listed = {r.serial_number for r in crl}
    assert services.certificate(gone_credential).serial_number in listed
    assert services.certificate(kept_credential).serial_number not in listed


def test_a_label_that_names_another_key_is_refused_before_anything_is_published(signing_pki, settings):
    from django.core.cache import cache

    cache.clear()  # a CRL an earlier test had signed would be served from the cache, without the HSM
    ca = _cert(signing_pki, "ca.crt")
    settings.CHAVE_SIGNING_CA_KEY_LABEL = settings.CHAVE_SIGNING_TSA_KEY_LABEL  # a key, but not the CA's
    with pytest.raises(HsmError, match="not the key of the issuing certificate"):
        pki.crl_der()
    public = ec.generate_private_key(ec.SECP256R1()).public_key()
    builder = (x509.CertificateBuilder().subject_name(ca.subject).issuer_name(ca.subject).public_key(public)
               .serial_number(7).not_valid_before(ca.not_valid_before_utc).not_valid_after(ca.not_valid_after_utc))
    with pytest.raises(HsmError):
        ca_keys.sign_certificate(builder, label=settings.CHAVE_SIGNING_CA_KEY_LABEL, issuer_key=ca.public_key(),
                                 algorithm=hashes.SHA384())
    settings.CHAVE_SIGNING_CA_KEY_LABEL = "no-such-key"
    with pytest.raises(HsmError, match="no single signing key"):
        pki.crl_der()


def test_the_ocsp_get_form_gives_the_same_answer(signing_pki, signer, client):
    ca = _cert(signing_pki, "ca.crt")
    _key, credential = signer()
    cert = services.certificate(credential)
    body = ocsp.OCSPRequestBuilder().add_certificate(cert, ca, hashes.SHA1()).build().public_bytes(
        serialization.Encoding.DER)
    answer = client.get("/pki/signing/ocsp/" + base64.b64encode(body).decode().replace("/", "%2F"))
    response = ocsp.load_der_ocsp_response(answer.content)
    assert response.certificate_status == ocsp.OCSPCertStatus.GOOD
    # A SHA-1 CertID is answered in kind.
    assert isinstance(response.hash_algorithm, hashes.SHA1)
    assert response.issuer_key_hash == asn1_x509.Certificate.load(ca.public_bytes(serialization.Encoding.DER)).public_key.sha1
    assert signed_by_the_responder(response, _cert(signing_pki, "ocsp.crt"))


def test_the_crl_is_signed_once_until_a_revocation_or_its_reissue(signing_pki, signer, client, clock,
                                                                  django_capture_on_commit_callbacks):
    first = client.get("/pki/signing/ca.crl").content
    assert client.get("/pki/signing/ca.crl").content == first  # the same signed CRL, not another HSM signature
    key, credential = signer(phone="+351912000013")
    with django_capture_on_commit_callbacks(execute=True):
        services.deactivate_signing(key.citizen, by="test")
    after = x509.load_der_x509_crl(client.get("/pki/signing/ca.crl").content)  # at once, not after an hour
    assert services.certificate(credential).serial_number in {r.serial_number for r in after}
    clock.travel(pki.CRL_REISSUE + dt.timedelta(seconds=1))
    reissued = x509.load_der_x509_crl(client.get("/pki/signing/ca.crl").content)
    assert reissued.last_update_utc > after.last_update_utc and reissued.next_update_utc > after.next_update_utc


def test_ocsp_and_the_tsa_are_limited_per_address(signing_pki, signer, client, settings):
    from asn1crypto import tsp

    settings.CHAVE_POLICY = {**settings.CHAVE_POLICY, "throttles": {
        **settings.CHAVE_POLICY["throttles"], "signing_ocsp_per_ip": (2, 60), "signing_tsa_per_ip": (1, 60)}}
    ca = _cert(signing_pki, "ca.crt")
    _key, credential = signer()
    cert = services.certificate(credential)
    assert ask(client, cert, ca).certificate_status == ocsp.OCSPCertStatus.GOOD
    assert ask(client, cert, ca).certificate_status == ocsp.OCSPCertStatus.GOOD
    assert ask(client, cert, ca).response_status == ocsp.OCSPResponseStatus.TRY_LATER  # RFC 6960's answer
    assert ask(client, cert, ca, remote="198.51.100.8").certificate_status == ocsp.OCSPCertStatus.GOOD  # another

    query = tsp.TimeStampReq({"version": "v1", "message_imprint": {
        "hash_algorithm": {"algorithm": "sha256"}, "hashed_message": b"\x01" * 32}, "cert_req": True}).dump()
    assert client.post("/pki/signing/tsa", query, content_type="application/timestamp-query").status_code == 200
    refused = client.post("/pki/signing/tsa", query, content_type="application/timestamp-query")
    assert refused.status_code == 429 and int(refused["Retry-After"]) > 0
