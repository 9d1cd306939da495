"""Certificates, CRLs and OCSP answers signed by keys that never leave the HSM.

The signing CA, its OCSP responder and its time-stamp authority keep their private keys in the
HSM (``chave.signing.hsm``), as a qualified trust service must; the settings name them by label
(``CHAVE_SIGNING_CA_KEY_LABEL``, ``_OCSP_KEY_LABEL``, ``_TSA_KEY_LABEL``).

``cryptography``'s builders encode X.509 structures but sign only with a key they hold in
memory. So each object is built twice over the same contents: ``cryptography`` encodes it and
signs it with a throwaway key of the same algorithm (the to-be-signed part names the signature
algorithm, the issuer and its key identifier, never the signing key itself, so it is the same
bytes whichever key signs); the HSM then signs the digest of those to-be-signed bytes, and
``asn1crypto`` puts the to-be-signed part, as encoded, together with the HSM's signature. Every
result is verified against the issuer's public key before it is returned, so a label that names
the wrong key fails here, not at a relying party.
"""

from __future__ import annotations

import datetime as dt
from asn1crypto import crl as asn1_crl
from asn1crypto import ocsp as asn1_ocsp
from asn1crypto import x509 as asn1_x509
from cryptography import x509
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509 import ocsp

from .hsm import HsmError, hsm


# Per curve, a key that only ever signs drafts whose signature is thrown away.
_DRAFT_KEYS: dict[str, ec.EllipticCurvePrivateKey] = {}


def _hsm_signature(label: str, issuer_key: ec.EllipticCurvePublicKey, tbs: bytes,
                   algorithm: hashes.HashAlgorithm) -> bytes:
    digest = hashes.Hash(algorithm)
    digest.update(tbs)
    signature = hsm().sign_digests(label, [digest.finalize()])[0]
    try:
        issuer_key.verify(signature, tbs, ec.ECDSA(algorithm))
    except InvalidSignature as e:
        raise HsmError(f"the HSM key {label!r} is not the key of the issuing certificate") from e
    return signature


def _draft_key(issuer_key) -> ec.EllipticCurvePrivateKey:
    if not isinstance(issuer_key, ec.EllipticCurvePublicKey):
        raise HsmError("the HSM signs with ECDSA keys only")
    name = issuer_key.curve.name
    if name not in _DRAFT_KEYS:
        _DRAFT_KEYS[name] = ec.generate_private_key(issuer_key.curve)
    return _DRAFT_KEYS[name]


def _signed_in_the_hsm(draft, tbs: bytes, *, label: str, issuer_key, algorithm: hashes.HashAlgorithm,
                       outer, tbs_type, tbs_field: str, signature_field: str) -> bytes:
    """The DER of ``draft`` (an X.509 object signed by a throwaway key) with ``tbs`` as encoded and
    the HSM's signature over it: ``outer`` is its asn1crypto type, whose to-be-signed part is
    ``tbs_field`` (of ``tbs_type``) and whose signature is ``signature_field``."""
    signature = _hsm_signature(label, issuer_key, tbs, algorithm)
    algorithm_id = outer.load(draft.public_bytes(serialization.Encoding.DER))["signature_algorithm"]
    return outer({tbs_field: tbs_type.load(tbs), "signature_algorithm": algorithm_id,
                  signature_field: signature}).dump()


def sign_certificate(builder: x509.CertificateBuilder, *, label: str, issuer_key,
                     algorithm: hashes.HashAlgorithm) -> x509.Certificate:
    """``builder``'s certificate signed by the HSM key ``label`` whose public half is ``issuer_key``."""
    draft = builder.sign(_draft_key(issuer_key), algorithm)
    return x509.load_der_x509_certificate(_signed_in_the_hsm(
        draft, draft.tbs_certificate_bytes, label=label, issuer_key=issuer_key, algorithm=algorithm,
        outer=asn1_x509.Certificate, tbs_type=asn1_x509.TbsCertificate, tbs_field="tbs_certificate",
        signature_field="signature_value"))


def sign_crl(builder: x509.CertificateRevocationListBuilder, *, label: str, issuer_key,
             algorithm: hashes.HashAlgorithm) -> x509.CertificateRevocationList:
    """``builder``'s CRL signed by the HSM key ``label``."""
    draft = builder.sign(_draft_key(issuer_key), algorithm)
    return x509.load_der_x509_crl(_signed_in_the_hsm(
        draft, draft.tbs_certlist_bytes, label=label, issuer_key=issuer_key, algorithm=algorithm,
        outer=asn1_crl.CertificateList, tbs_type=asn1_crl.TbsCertList, tbs_field="tbs_cert_list",
        signature_field="signature"))


def sign_ocsp_response(builder: ocsp.OCSPResponseBuilder, *, label: str, responder: x509.Certificate,
                       algorithm: hashes.HashAlgorithm) -> bytes:
    """``builder``'s successful OCSP response (give it no responder id), signed by the HSM key
    ``label`` of the delegated ``responder``, which is named by key hash and embedded (DER).

    ``cryptography`` insists that the responder's certificate match the key it signs with, so the
    draft names a throwaway responder; the real responder id goes into the to-be-signed part
    before the HSM signs it."""
    key = responder.public_key()
    draft_key = _draft_key(key)
    draft = builder.responder_id(ocsp.OCSPResponderEncoding.HASH, _draft_certificate(draft_key)) \
        .certificates([responder]).sign(draft_key, algorithm)
    basic = asn1_ocsp.OCSPResponse.load(draft.public_bytes(serialization.Encoding.DER))["response_bytes"]["response"].parsed
    data = asn1_ocsp.ResponseData.load(draft.tbs_response_bytes)
    data["responder_id"] = asn1_ocsp.ResponderId(
        name="by_key", value=asn1_x509.Certificate.load(responder.public_bytes(serialization.Encoding.DER)).public_key.sha1)
    tbs = data.dump(force=True)
    signature = _hsm_signature(label, key, tbs, algorithm)
    signed = asn1_ocsp.OCSPResponse({
        "response_status": "successful",
        "response_bytes": {"response_type": "basic_ocsp_response", "response": asn1_ocsp.BasicOCSPResponse({
            "tbs_response_data": asn1_ocsp.ResponseData.load(tbs),
            "signature_algorithm": basic["signature_algorithm"],
            "signature": signature,
            "certs": basic["certs"],
        })},
    }).dump()
    if ocsp.load_der_ocsp_response(signed).tbs_response_bytes != tbs:
        raise HsmError("the OCSP response did not keep the bytes that were signed")
    return signed


_DRAFT_CERTS: dict[str, x509.Certificate] = {}


def _draft_certificate(key: ec.EllipticCurvePrivateKey) -> x509.Certificate:
    name = key.curve.name
    if name not in _DRAFT_CERTS:
        subject = x509.Name([x509.NameAttribute(x509.oid.NameOID.COMMON_NAME, "draft signer, never published")])
        now = dt.datetime.now(dt.timezone.utc)
        _DRAFT_CERTS[name] = (
            x509.CertificateBuilder().subject_name(subject).issuer_name(subject).public_key(key.public_key())
            .serial_number(1).not_valid_before(now).not_valid_after(now + dt.timedelta(days=1))
            .sign(key, hashes.SHA256())
        )
    return _DRAFT_CERTS[name]


def public_key(label: str):
    """The ``cryptography`` public key of the HSM key pair ``label``."""
    return serialization.load_der_public_key(hsm().public_key(label))
