"""The test PKI of the Citizen Card (development and tests only): ``chave dev-pki init``.

A "Citizen Card (TEST)" root, an authentication sub-CA that issues the cards' authentication
certificates, and a delegated OCSP responder, kept as PEM files under
``CHAVE_CARD_DEV_DIR/pki`` (private keys 0600, the directory 0700). Revocations are a small JSON
file; the CRL and the OCSP answers are made on demand from it by Chave's own URLs
(``/pki/card/crl``, ``/pki/card/ocsp``, see ``views.py``), like the State's CA publishes them.

Production never uses this module: its trust anchors and intermediates come from
``CHAVE_CARD_TRUST_ANCHORS`` / ``CHAVE_CARD_INTERMEDIATES`` and revocation from the URLs in the
real certificates. Everything X.509 here is ``cryptography``.
"""

from __future__ import annotations

import datetime as dt
import json
import os
from dataclasses import dataclass
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from cryptography.x509 import ocsp
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID
from django.conf import settings

ROOT_NAME = "Citizen Card (TEST)"
SUB_CA_NAME = "Citizen Card (TEST) Authentication CA 001"
OCSP_NAME = "Citizen Card (TEST) OCSP Responder"
ORGANISATION = "Chave (TEST)"
KEY_BITS = 2048
ROOT_YEARS = 20
SUB_CA_YEARS = 12
OCSP_YEARS = 2
# How long a CRL or an OCSP answer made by the test PKI stays current.
CRL_HOURS = 24
OCSP_HOURS = 1
BACKDATE = dt.timedelta(minutes=5)  # a little slack for clocks that differ


class PkiError(Exception):
    """The test PKI is missing or unusable; the message says what to do."""


def pki_dir() -> Path:
    return Path(settings.CHAVE_CARD_DEV_DIR) / "pki"


def crl_url(base_url: str) -> str:
    return base_url.rstrip("/") + "/pki/card/crl"


def ocsp_url(base_url: str) -> str:
    return base_url.rstrip("/") + "/pki/card/ocsp"


def _name(cn: str) -> x509.Name:
    return x509.Name([
        x509.NameAttribute(NameOID.COUNTRY_NAME, "PT"),
        x509.NameAttribute(NameOID.ORGANIZATION_NAME, ORGANISATION),
        x509.NameAttribute(NameOID.COMMON_NAME, cn),
    ])


def _years(start: dt.datetime, years: int) -> dt.datetime:
    return start + dt.timedelta(days=365 * years + years // 4)


def _write(path: Path, data: bytes, *, secret: bool = False) -> None:
    mode = 0o600 if secret else 0o644
    tmp = path.with_suffix(path.suffix + ".tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, mode)
    with os.fdopen(fd, "wb") as f:
        f.write(data)
    os.chmod(tmp, mode)
    os.replace(tmp, path)


def _key_pem(key) -> bytes:
    return key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                             serialization.NoEncryption())


def _key_usage(*, certificates: bool) -> x509.KeyUsage:
    """keyCertSign + cRLSign for a CA, digitalSignature alone for a card or the OCSP responder."""
    return x509.KeyUsage(
        digital_signature=not certificates, content_commitment=False, key_encipherment=False,
        data_encipherment=False, key_agreement=False, key_cert_sign=certificates, crl_sign=certificates,
        encipher_only=False, decipher_only=False,
    )


def _ca_extensions(builder: x509.CertificateBuilder, public_key, issuer_key, *, path_length: int | None):
    builder = builder.add_extension(x509.BasicConstraints(ca=True, path_length=path_length), critical=True)
    builder = builder.add_extension(_key_usage(certificates=True), critical=True)
    builder = builder.add_extension(x509.SubjectKeyIdentifier.from_public_key(public_key), critical=False)
    return builder.add_extension(x509.AuthorityKeyIdentifier.from_issuer_public_key(issuer_key.public_key()),
                                 critical=False)


@dataclass(frozen=True)
class Issued:
    certificate: x509.Certificate

    @property
    def serial_hex(self) -> str:
        return format(self.certificate.serial_number, "x")


class DevPki:
    """The test PKI in ``directory`` (default ``CHAVE_CARD_DEV_DIR/pki``)."""

    def __init__(self, directory: Path | None = None):
        self.directory = Path(directory) if directory else pki_dir()

    def _path(self, name: str) -> Path:
        return self.directory / name

    def exists(self) -> bool:
        return all(self._path(n).exists() for n in ("root.pem", "sub-ca.pem", "sub-ca.key", "ocsp.pem", "ocsp.key"))

    # --- creation ----------------------------------------------------------------------

    def init(self, *, now: dt.datetime) -> bool:
        """Create the root, the sub-CA and the OCSP responder unless they exist; True when created."""
        if self.exists():
            return False
        self.directory.mkdir(parents=True, exist_ok=True)
        os.chmod(self.directory, 0o700)
        start = now - BACKDATE
        root_key = rsa.generate_private_key(public_exponent=65537, key_size=KEY_BITS)
        root = _ca_extensions(
            x509.CertificateBuilder().subject_name(_name(ROOT_NAME)).issuer_name(_name(ROOT_NAME))
            .public_key(root_key.public_key()).serial_number(x509.random_serial_number())
            .not_valid_before(start).not_valid_after(_years(start, ROOT_YEARS)),
            root_key.public_key(), root_key, path_length=1,
        ).sign(root_key, hashes.SHA256())
        ca_key = rsa.generate_private_key(public_exponent=65537, key_size=KEY_BITS)
        sub_ca = _ca_extensions(
            x509.CertificateBuilder().subject_name(_name(SUB_CA_NAME)).issuer_name(root.subject)
            .public_key(ca_key.public_key()).serial_number(x509.random_serial_number())
            .not_valid_before(start).not_valid_after(_years(start, SUB_CA_YEARS)),
            ca_key.public_key(), root_key, path_length=0,
        ).sign(root_key, hashes.SHA256())
        responder_key = rsa.generate_private_key(public_exponent=65537, key_size=KEY_BITS)
        responder = (
            x509.CertificateBuilder().subject_name(_name(OCSP_NAME)).issuer_name(sub_ca.subject)
            .public_key(responder_key.public_key()).serial_number(x509.random_serial_number())
            .not_valid_before(start).not_valid_after(_years(start, OCSP_YEARS))
            .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
            .add_extension(_key_usage(certificates=False), critical=True)
            .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.OCSP_SIGNING]), critical=False)
            .add_extension(x509.OCSPNoCheck(), critical=False)
            .add_extension(x509.SubjectKeyIdentifier.from_public_key(responder_key.public_key()), critical=False)
            .add_extension(x509.AuthorityKeyIdentifier.from_issuer_public_key(ca_key.public_key()), critical=False)
            .sign(ca_key, hashes.SHA256())
        )
        _write(self._path("root.key"), _key_pem(root_key), secret=True)
        _write(self._path("sub-ca.key"), _key_pem(ca_key), secret=True)
        _write(self._path("ocsp.key"), _key_pem(responder_key), secret=True)
        _write(self._path("root.pem"), root.public_bytes(serialization.Encoding.PEM))
        _write(self._path("sub-ca.pem"), sub_ca.public_bytes(serialization.Encoding.PEM))
        _write(self._path("ocsp.pem"), responder.public_bytes(serialization.Encoding.PEM))
        if not self._path("revoked.json").exists():
            _write(self._path("revoked.json"), b"{}")
        return True

    # --- reading -----------------------------------------------------------------------

    def _require(self) -> None:
        if not self.exists():
            raise PkiError(f"There is no test PKI in {self.directory}: run `chave dev-pki init` first.")

    def _cert(self, name: str) -> x509.Certificate:
        self._require()
        return x509.load_pem_x509_certificate(self._path(name).read_bytes())

    def _key(self, name: str):
        self._require()
        return serialization.load_pem_private_key(self._path(name).read_bytes(), password=None)

    @property
    def root(self) -> x509.Certificate:
        return self._cert("root.pem")

    @property
    def sub_ca(self) -> x509.Certificate:
        return self._cert("sub-ca.pem")

    @property
    def root_path(self) -> Path:
        return self._path("root.pem")

    @property
    def sub_ca_path(self) -> Path:
        return self._path("sub-ca.pem")

    def revoked(self) -> dict[str, dict]:
        path = self._path("revoked.json")
        return json.loads(path.read_text()) if path.exists() else {}

    # --- issuing and revoking -----------------------------------------------------------

    def issue_card_certificate(
        self, public_key, *, nic: str, given_name: str, family_name: str, full_name: str,
        not_before: dt.datetime, not_after: dt.datetime, base_url: str,
    ) -> Issued:
        """The authentication certificate of a card whose chip holds ``public_key``.

        Subject as on the real card: C=PT, GN, SN, CN = full name, serialNumber in
        ``CHAVE_CARD_SERIAL_FORMAT`` (``BI<NIC>``); keyUsage digitalSignature, EKU clientAuth,
        AIA (OCSP) and CRL distribution point at Chave's own URLs under ``base_url``.
        """
        ca_key, sub_ca = self._key("sub-ca.key"), self.sub_ca
        subject = x509.Name([
            x509.NameAttribute(NameOID.COUNTRY_NAME, "PT"),
            x509.NameAttribute(NameOID.GIVEN_NAME, given_name),
            x509.NameAttribute(NameOID.SURNAME, family_name),
            x509.NameAttribute(NameOID.SERIAL_NUMBER, settings.CHAVE_CARD_SERIAL_FORMAT.format(nic=nic)),
            x509.NameAttribute(NameOID.COMMON_NAME, full_name),
        ])
        certificate = (
            x509.CertificateBuilder().subject_name(subject).issuer_name(sub_ca.subject)
            .public_key(public_key).serial_number(x509.random_serial_number())
            .not_valid_before(not_before).not_valid_after(not_after)
            .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
            .add_extension(_key_usage(certificates=False), critical=True)
            .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.CLIENT_AUTH]), critical=False)
            .add_extension(x509.AuthorityInformationAccess([
                x509.AccessDescription(x509.AuthorityInformationAccessOID.OCSP,
                                       x509.UniformResourceIdentifier(ocsp_url(base_url))),
            ]), critical=False)
            .add_extension(x509.CRLDistributionPoints([
                x509.DistributionPoint(full_name=[x509.UniformResourceIdentifier(crl_url(base_url))],
                                       relative_name=None, reasons=None, crl_issuer=None),
            ]), critical=False)
            .add_extension(x509.SubjectKeyIdentifier.from_public_key(public_key), critical=False)
            .add_extension(x509.AuthorityKeyIdentifier.from_issuer_public_key(ca_key.public_key()), critical=False)
            .sign(ca_key, hashes.SHA256())
        )
        return Issued(certificate)

    def revoke(self, serial_number: int, *, at: dt.datetime,
               reason: str = x509.ReasonFlags.key_compromise.value) -> None:
        self._require()
        entries = self.revoked()
        entries[format(serial_number, "x")] = {"at": at.isoformat(), "reason": reason}
        _write(self._path("revoked.json"), json.dumps(entries, indent=1, sort_keys=True).encode())

    def _revocation_of(self, serial_number: int) -> tuple[dt.datetime, x509.ReasonFlags] | None:
        entry = self.revoked().get(format(serial_number, "x"))
        if entry is None:
            return None
        return dt.datetime.fromisoformat(entry["at"]), x509.ReasonFlags(entry.get("reason", "unspecified"))

    # --- publishing ------------------------------------------------------------------------

    def crl(self, *, now: dt.datetime) -> x509.CertificateRevocationList:
        """The sub-CA's current CRL, made now from the revocations."""
        ca_key, sub_ca = self._key("sub-ca.key"), self.sub_ca
        builder = (
            x509.CertificateRevocationListBuilder().issuer_name(sub_ca.subject)
            .last_update(now - BACKDATE).next_update(now + dt.timedelta(hours=CRL_HOURS))
            .add_extension(x509.AuthorityKeyIdentifier.from_issuer_public_key(ca_key.public_key()), critical=False)
            .add_extension(x509.CRLNumber(int(now.timestamp())), critical=False)
        )
        for serial_hex, entry in sorted(self.revoked().items()):
            revoked = (
                x509.RevokedCertificateBuilder().serial_number(int(serial_hex, 16))
                .revocation_date(dt.datetime.fromisoformat(entry["at"]))
                .add_extension(x509.CRLReason(x509.ReasonFlags(entry.get("reason", "unspecified"))), critical=False)
                .build()
            )
            builder = builder.add_revoked_certificate(revoked)
        return builder.sign(ca_key, hashes.SHA256())

    def ocsp_response(self, request_der: bytes, *, now: dt.datetime) -> bytes:
        """The DER OCSP answer to ``request_der`` (RFC 6960), signed by the delegated responder.

        A malformed request gets ``malformedRequest``; a certificate of another issuer gets
        ``unauthorized``; the request's nonce is echoed.
        """
        try:
            request = ocsp.load_der_ocsp_request(request_der)
            algorithm = request.hash_algorithm
        except (ValueError, TypeError):
            return ocsp.OCSPResponseBuilder.build_unsuccessful(
                ocsp.OCSPResponseStatus.MALFORMED_REQUEST).public_bytes(serialization.Encoding.DER)
        sub_ca = self.sub_ca
        issuer_name_hash, issuer_key_hash = _issuer_hashes(sub_ca, algorithm)
        if request.issuer_name_hash != issuer_name_hash or request.issuer_key_hash != issuer_key_hash:
            return ocsp.OCSPResponseBuilder.build_unsuccessful(
                ocsp.OCSPResponseStatus.UNAUTHORIZED).public_bytes(serialization.Encoding.DER)
        revocation = self._revocation_of(request.serial_number)
        status = ocsp.OCSPCertStatus.REVOKED if revocation else ocsp.OCSPCertStatus.GOOD
        builder = ocsp.OCSPResponseBuilder().add_response_by_hash(
            issuer_name_hash=issuer_name_hash, issuer_key_hash=issuer_key_hash,
            serial_number=request.serial_number, algorithm=algorithm, cert_status=status,
            this_update=now - BACKDATE, next_update=now + dt.timedelta(hours=OCSP_HOURS),
            revocation_time=revocation[0] if revocation else None,
            revocation_reason=revocation[1] if revocation else None,
        )
        responder = self._cert("ocsp.pem")
        builder = builder.responder_id(ocsp.OCSPResponderEncoding.HASH, responder).certificates([responder])
        for extension in request.extensions:
            if isinstance(extension.value, x509.OCSPNonce):
                builder = builder.add_extension(extension.value, critical=False)
        response = builder.sign(self._key("ocsp.key"), hashes.SHA256())
        return response.public_bytes(serialization.Encoding.DER)


def public_key_bits(public_key) -> bytes:
    """The contents of a SubjectPublicKeyInfo's BIT STRING (what OCSP's issuerKeyHash hashes)."""
    if isinstance(public_key, ec.EllipticCurvePublicKey):
        return public_key.public_bytes(serialization.Encoding.X962, serialization.PublicFormat.UncompressedPoint)
    return public_key.public_bytes(serialization.Encoding.DER, serialization.PublicFormat.PKCS1)


def _issuer_hashes(issuer: x509.Certificate, algorithm: hashes.HashAlgorithm) -> tuple[bytes, bytes]:
    """The CertID issuer hashes of ``issuer`` under ``algorithm``, as an OCSP request carries them."""
    name_hash = hashes.Hash(algorithm)
    name_hash.update(issuer.subject.public_bytes())
    key_hash = hashes.Hash(algorithm)
    key_hash.update(public_key_bits(issuer.public_key()))
    return name_hash.finalize(), key_hash.finalize()
