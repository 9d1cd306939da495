"""The development signing hierarchy and HSM token: ``chave signing dev-pki``.

:func:`ensure_dev_pki` makes, once, under ``<data dir>/pki/signing`` (or ``CHAVE_SIGNING_DIR``):

- ``hsm/``: a SoftHSM2 configuration and token directory, with the token initialised;
- ``root.crt``: "Chave Signing Root CA (TEST)", and ``root.crl`` (it revokes nothing). Its key
  lives in memory only while the hierarchy is made, as an offline root's would;
- ``ca.crt``: the signing sub-CA that issues citizens' signing certificates (ECDSA P-384);
- ``ocsp.crt``: the OCSP responder's delegated certificate (id-kp-OCSPSigning, P-256);
- ``tsa.crt``: the time-stamp authority's certificate (critical EKU timeStamping, P-256).

The sub-CA's, OCSP responder's and TSA's private keys are generated inside the HSM token
(sensitive, never extractable) under ``CHAVE_SIGNING_CA_KEY_LABEL``, ``_OCSP_KEY_LABEL`` and
``_TSA_KEY_LABEL``; no private key is written to disk. A complete hierarchy (every certificate
present, each key in the token and matching its certificate) is kept, so running it again
changes nothing; an incomplete one (say, an older layout with key files, or a wiped token) is
made again from the start. Refused in production, where the certificates come from the
operator (the same file names in ``CHAVE_SIGNING_DIR``) and the keys are in the HSM named by
the PKCS#11 settings.
"""

from __future__ import annotations

import datetime as dt
import os
import subprocess
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID
from django.conf import settings
from django.core.exceptions import ImproperlyConfigured

from chave import clock

DEV_VALIDITY = dt.timedelta(days=10 * 365)


def pki_url(name: str) -> str:
    return settings.CHAVE_SIGNING_PKI_URL.rstrip("/") + "/" + name


def _name(common_name: str) -> x509.Name:
    return x509.Name([
        x509.NameAttribute(NameOID.COUNTRY_NAME, "PT"),
        x509.NameAttribute(NameOID.ORGANIZATION_NAME, "Chave (TEST)"),
        x509.NameAttribute(NameOID.COMMON_NAME, common_name),
    ])


def _write_cert(path: Path, cert: x509.Certificate) -> None:
    path.write_bytes(cert.public_bytes(serialization.Encoding.PEM))


def _builder(subject: x509.Name, issuer: x509.Name, public_key, issuer_public_key, now: dt.datetime) -> x509.CertificateBuilder:
    return (
        x509.CertificateBuilder()
        .subject_name(subject)
        .issuer_name(issuer)
        .public_key(public_key)
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(days=1))
        .not_valid_after(now + DEV_VALIDITY)
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(public_key), critical=False)
        .add_extension(x509.AuthorityKeyIdentifier.from_issuer_public_key(issuer_public_key), critical=False)
    )


def _ca_usage() -> x509.KeyUsage:
    return x509.KeyUsage(digital_signature=False, content_commitment=False, key_encipherment=False,
                         data_encipherment=False, key_agreement=False, key_cert_sign=True, crl_sign=True,
                         encipher_only=False, decipher_only=False)


def _leaf_usage(*, non_repudiation: bool) -> x509.KeyUsage:
    return x509.KeyUsage(digital_signature=True, content_commitment=non_repudiation, key_encipherment=False,
                         data_encipherment=False, key_agreement=False, key_cert_sign=False, crl_sign=False,
                         encipher_only=False, decipher_only=False)


def _issued_by_sub_ca(builder: x509.CertificateBuilder) -> x509.CertificateBuilder:
    """Where relying parties find the sub-CA's certificate and the status of what it issued."""
    return (
        builder
        .add_extension(x509.AuthorityInformationAccess([
            x509.AccessDescription(x509.oid.AuthorityInformationAccessOID.OCSP,
                                   x509.UniformResourceIdentifier(pki_url("ocsp"))),
            x509.AccessDescription(x509.oid.AuthorityInformationAccessOID.CA_ISSUERS,
                                   x509.UniformResourceIdentifier(pki_url("ca.crt"))),
        ]), critical=False)
        .add_extension(x509.CRLDistributionPoints([
            x509.DistributionPoint([x509.UniformResourceIdentifier(pki_url("ca.crl"))], None, None, None)
        ]), critical=False)
    )


def init_softhsm_token(directory: Path, label: str | None = None, user_pin: str | None = None) -> None:
    """The token named ``label`` (``CHAVE_SIGNING_TOKEN_LABEL`` by default), initialised with
    ``user_pin`` (``CHAVE_SIGNING_USER_PIN``) once, in ``CHAVE_SIGNING_SOFTHSM2_CONF`` (written with
    its token directory beside it), or in ``directory``/hsm when that setting is empty. The HSM
    adapter points SoftHSM2 at the same file (:func:`chave.signing.hsm.hsm`)."""
    label = label or settings.CHAVE_SIGNING_TOKEN_LABEL
    user_pin = user_pin or settings.CHAVE_SIGNING_USER_PIN
    conf = Path(settings.CHAVE_SIGNING_SOFTHSM2_CONF or directory / "hsm" / "softhsm2.conf")
    tokens = conf.parent / "tokens"
    tokens.mkdir(parents=True, exist_ok=True, mode=0o700)
    if not conf.exists():
        conf.write_text(f"directories.tokendir = {tokens}\nobjectstore.backend = file\nlog.level = ERROR\n")
    env = {**os.environ, "SOFTHSM2_CONF": str(conf)}
    listing = subprocess.run(["softhsm2-util", "--show-slots"], env=env, capture_output=True, text=True, check=True)
    labels = {line.split(":", 1)[1].strip() for line in listing.stdout.splitlines() if line.strip().startswith("Label:")}
    if label in labels:
        return
    subprocess.run(
        ["softhsm2-util", "--init-token", "--free", "--label", label, "--so-pin", user_pin + "-so", "--pin", user_pin],
        env=env, capture_output=True, text=True, check=True,
    )


# What the HSM holds for the hierarchy: (setting naming the label, certificate file, curve).
HSM_KEYS = (("CHAVE_SIGNING_CA_KEY_LABEL", "ca.crt", "secp384r1"),
            ("CHAVE_SIGNING_OCSP_KEY_LABEL", "ocsp.crt", "secp256r1"),
            ("CHAVE_SIGNING_TSA_KEY_LABEL", "tsa.crt", "secp256r1"))
FILES = ("root.crt", "root.crl", "ca.crt", "ocsp.crt", "tsa.crt")


def ensure_dev_pki(data_dir: Path | str | None = None) -> Path:
    """Make the development signing hierarchy and HSM token if missing; returns its directory.

    ``data_dir`` is the service's data directory (the hierarchy goes to ``pki/signing`` in it);
    without it, ``CHAVE_SIGNING_DIR``. Raises ``ImproperlyConfigured`` in production.
    """
    if settings.IS_PRODUCTION:
        raise ImproperlyConfigured("The development signing PKI is refused in production.")
    directory = Path(data_dir) / "pki" / "signing" if data_dir is not None else Path(settings.CHAVE_SIGNING_DIR)
    directory.mkdir(parents=True, exist_ok=True, mode=0o700)
    init_softhsm_token(directory)
    if not _complete(directory):
        _make(directory, clock.now())
    ensure_dev_encryption_certificate(directory, clock.now())
    return directory


ENCRYPTION_CERT = "scmd-encryption.crt"


def ensure_dev_encryption_certificate(directory: Path, now: dt.datetime) -> None:
    """The SCMD service's encryption certificate (``scmd-encryption.crt``): integrators encrypt
    the citizen's number, signing PIN and code under its RSA key, which is generated in the HSM
    (``CHAVE_SCMD_ENCRYPTION_KEY_LABEL``, decrypt only, never extractable) and certified by the
    signing sub-CA for key encipherment. Kept when the key in the HSM matches it."""
    from .ca_keys import sign_certificate
    from .hsm import HsmError, hsm

    path = directory / ENCRYPTION_CERT
    label = settings.CHAVE_SCMD_ENCRYPTION_KEY_LABEL
    if path.exists():
        cert = x509.load_pem_x509_certificate(path.read_bytes())
        try:
            if hsm().public_key(label) == cert.public_key().public_bytes(
                    serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo) \
                    and cert.issuer == x509.load_pem_x509_certificate((directory / "ca.crt").read_bytes()).subject:
                return
        except HsmError:
            pass
    while hsm().destroy_key(label):
        pass
    public = serialization.load_der_public_key(hsm().generate_rsa_key(label, 3072, sign=False, decrypt=True))
    ca = x509.load_pem_x509_certificate((directory / "ca.crt").read_bytes())
    builder = (
        _builder(_name("Chave SCMD encryption (TEST)"), ca.subject, public, ca.public_key(), now)
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .add_extension(x509.KeyUsage(digital_signature=False, content_commitment=False, key_encipherment=True,
                                     data_encipherment=True, key_agreement=False, key_cert_sign=False,
                                     crl_sign=False, encipher_only=False, decipher_only=False), critical=True)
    )
    _write_cert(path, sign_certificate(_issued_by_sub_ca(builder), label=settings.CHAVE_SIGNING_CA_KEY_LABEL,
                                       issuer_key=ca.public_key(), algorithm=hashes.SHA384()))


def _complete(directory: Path) -> bool:
    from .hsm import HsmError, hsm

    if not all((directory / name).exists() for name in FILES):
        return False
    for setting, cert_file, _curve in HSM_KEYS:
        cert = x509.load_pem_x509_certificate((directory / cert_file).read_bytes())
        try:
            held = hsm().public_key(getattr(settings, setting))
        except HsmError:
            return False
        if held != cert.public_key().public_bytes(serialization.Encoding.DER,
                                                  serialization.PublicFormat.SubjectPublicKeyInfo):
            return False
    return True


def _make(directory: Path, now: dt.datetime) -> None:
    """The whole hierarchy, from a new root; the certificates are written last."""
    from .ca_keys import sign_certificate
    from .hsm import hsm

    for path in [*directory.glob("*.key"), *(directory / name for name in FILES)]:
        path.unlink(missing_ok=True)  # an older layout kept private keys in files: none are kept now
    held = {}
    for setting, _cert_file, curve in HSM_KEYS:
        label = getattr(settings, setting)
        while hsm().destroy_key(label):
            pass
        held[setting] = serialization.load_der_public_key(hsm().generate_key(label, curve))

    root_key = ec.generate_private_key(ec.SECP384R1())
    root_name = _name("Chave Signing Root CA (TEST)")
    root = (
        _builder(root_name, root_name, root_key.public_key(), root_key.public_key(), now)
        .add_extension(x509.BasicConstraints(ca=True, path_length=1), critical=True)
        .add_extension(_ca_usage(), critical=True)
        .sign(root_key, hashes.SHA384())
    )
    root_crl = (
        x509.CertificateRevocationListBuilder()
        .issuer_name(root.subject)
        .last_update(now - dt.timedelta(days=1))
        .next_update(now + DEV_VALIDITY)
        .add_extension(x509.CRLNumber(1), critical=False)
        .add_extension(x509.AuthorityKeyIdentifier.from_issuer_public_key(root_key.public_key()), critical=False)
        .sign(root_key, hashes.SHA384())
    )
    ca_public = held["CHAVE_SIGNING_CA_KEY_LABEL"]
    ca = (
        _builder(_name("Chave Signing CA (TEST)"), root.subject, ca_public, root_key.public_key(), now)
        .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
        .add_extension(_ca_usage(), critical=True)
        .add_extension(x509.AuthorityInformationAccess([
            x509.AccessDescription(x509.oid.AuthorityInformationAccessOID.CA_ISSUERS,
                                   x509.UniformResourceIdentifier(pki_url("root.crt"))),
        ]), critical=False)
        .add_extension(x509.CRLDistributionPoints([
            x509.DistributionPoint([x509.UniformResourceIdentifier(pki_url("root.crl"))], None, None, None)
        ]), critical=False)
        .sign(root_key, hashes.SHA384())
    )
    del root_key  # an offline root: nothing after this needs its key

    def by_the_ca(builder: x509.CertificateBuilder) -> x509.Certificate:
        return sign_certificate(builder, label=settings.CHAVE_SIGNING_CA_KEY_LABEL, issuer_key=ca_public,
                                algorithm=hashes.SHA384())

    ocsp_public = held["CHAVE_SIGNING_OCSP_KEY_LABEL"]
    ocsp = by_the_ca(
        _builder(_name("Chave Signing OCSP Responder (TEST)"), ca.subject, ocsp_public, ca_public, now)
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .add_extension(_leaf_usage(non_repudiation=False), critical=True)
        .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.OCSP_SIGNING]), critical=False)
        .add_extension(x509.OCSPNoCheck(), critical=False)
    )
    tsa_public = held["CHAVE_SIGNING_TSA_KEY_LABEL"]
    tsa = by_the_ca(
        _issued_by_sub_ca(_builder(_name("Chave Time-Stamp Authority (TEST)"), ca.subject, tsa_public, ca_public,
                                   now))
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .add_extension(_leaf_usage(non_repudiation=True), critical=True)
        .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.TIME_STAMPING]), critical=True)
    )
    (directory / "root.crl").write_bytes(root_crl.public_bytes(serialization.Encoding.DER))
    for name, cert in (("root.crt", root), ("tsa.crt", tsa), ("ocsp.crt", ocsp), ("ca.crt", ca)):
        _write_cert(directory / name, cert)
