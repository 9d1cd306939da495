"""The development signing hierarchy and HSM token: ``chave signing dev-pki``.

:func:`ensure_dev_pki` makes, once, under ``<data dir>/pki/signing`` (or ``CHAVE_SIGNING_DIR``):

- ``root.crt``/``root.key``: "Chave Signing Root CA (TEST)", and ``root.crl`` (it revokes nothing);
- ``ca.crt``/``ca.key``: the signing sub-CA that issues citizens' signing certificates;
- ``ocsp.crt``/``ocsp.key``: the OCSP responder's delegated certificate (id-kp-OCSPSigning);
- ``tsa.crt``/``tsa.key``: the time-stamp authority's certificate (critical EKU timeStamping);
- ``hsm/``: a SoftHSM2 configuration and token directory, with the token initialised.

Keys are written 0600. Existing files are kept (idempotent), so running it again changes
nothing. Refused in production, where the CA, OCSP, TSA material and the HSM come from the
operator (the same file names in ``CHAVE_SIGNING_DIR``; the HSM named by the PKCS#11 settings).
"""

from __future__ import annotations

import datetime as dt
import os
import subprocess
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa
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


def _write_key(path: Path, key) -> None:
    data = key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                             serialization.NoEncryption())
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "wb") as f:
        f.write(data)


def _write_cert(path: Path, cert: x509.Certificate) -> None:
    path.write_bytes(cert.public_bytes(serialization.Encoding.PEM))


def _builder(subject: x509.Name, issuer: x509.Name, public_key, issuer_key, now: dt.datetime) -> x509.CertificateBuilder:
    return (
        x509.CertificateBuilder()
        .subject_name(subject)
        .issuer_name(issuer)
        .public_key(public_key)
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(days=1))
        .not_valid_after(now + DEV_VALIDITY)
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(public_key), critical=False)
        .add_extension(x509.AuthorityKeyIdentifier.from_issuer_public_key(issuer_key.public_key()), critical=False)
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


def init_softhsm_token(directory: Path) -> None:
    """The token named by ``CHAVE_SIGNING_TOKEN_LABEL``, initialised with ``CHAVE_SIGNING_USER_PIN``
    (once), in ``CHAVE_SIGNING_SOFTHSM2_CONF`` (written with its token directory beside it), or in
    ``directory``/hsm when that setting is empty. The HSM adapter points SoftHSM2 at the same file
    (:func:`chave.signing.hsm.hsm`)."""
    conf = Path(settings.CHAVE_SIGNING_SOFTHSM2_CONF or directory / "hsm" / "softhsm2.conf")
    tokens = conf.parent / "tokens"
    tokens.mkdir(parents=True, exist_ok=True, mode=0o700)
    if not conf.exists():
        conf.write_text(f"directories.tokendir = {tokens}\nobjectstore.backend = file\nlog.level = ERROR\n")
    env = {**os.environ, "SOFTHSM2_CONF": str(conf)}
    listing = subprocess.run(["softhsm2-util", "--show-slots"], env=env, capture_output=True, text=True, check=True)
    labels = {line.split(":", 1)[1].strip() for line in listing.stdout.splitlines() if line.strip().startswith("Label:")}
    if settings.CHAVE_SIGNING_TOKEN_LABEL in labels:
        return
    subprocess.run(
        ["softhsm2-util", "--init-token", "--free", "--label", settings.CHAVE_SIGNING_TOKEN_LABEL,
         "--so-pin", settings.CHAVE_SIGNING_USER_PIN + "-so", "--pin", settings.CHAVE_SIGNING_USER_PIN],
        env=env, capture_output=True, text=True, check=True,
    )


def ensure_dev_pki(data_dir: Path | str | None = None) -> Path:
    """Make the development signing hierarchy and HSM token if missing; returns its directory.

    ``data_dir`` is the service's data directory (the hierarchy goes to ``pki/signing`` in it);
    without it, ``CHAVE_SIGNING_DIR``. Raises ``ImproperlyConfigured`` in production.
    """
    if settings.IS_PRODUCTION:
        raise ImproperlyConfigured("The development signing PKI is refused in production.")
    directory = Path(data_dir) / "pki" / "signing" if data_dir is not None else Path(settings.CHAVE_SIGNING_DIR)
    directory.mkdir(parents=True, exist_ok=True, mode=0o700)
    now = clock.now()
    if not (directory / "root.crt").exists():
        root_key = ec.generate_private_key(ec.SECP384R1())
        root_name = _name("Chave Signing Root CA (TEST)")
        root = (
            _builder(root_name, root_name, root_key.public_key(), root_key, now)
            .add_extension(x509.BasicConstraints(ca=True, path_length=1), critical=True)
            .add_extension(_ca_usage(), critical=True)
            .sign(root_key, hashes.SHA384())
        )
        crl = (
            x509.CertificateRevocationListBuilder()
            .issuer_name(root.subject)
            .last_update(now - dt.timedelta(days=1))
            .next_update(now + DEV_VALIDITY)
            .add_extension(x509.CRLNumber(1), critical=False)
            .add_extension(x509.AuthorityKeyIdentifier.from_issuer_public_key(root_key.public_key()), critical=False)
            .sign(root_key, hashes.SHA384())
        )
        for name in ("ca.crt", "ocsp.crt", "tsa.crt"):
            (directory / name).unlink(missing_ok=True)
        _write_key(directory / "root.key", root_key)
        _write_cert(directory / "root.crt", root)
        (directory / "root.crl").write_bytes(crl.public_bytes(serialization.Encoding.DER))
    root_key = serialization.load_pem_private_key((directory / "root.key").read_bytes(), None)
    root = x509.load_pem_x509_certificate((directory / "root.crt").read_bytes())

    if not (directory / "ca.crt").exists():
        ca_key = ec.generate_private_key(ec.SECP384R1())
        ca = (
            _builder(_name("Chave Signing CA (TEST)"), root.subject, ca_key.public_key(), root_key, now)
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
        for name in ("ocsp.crt", "tsa.crt"):
            (directory / name).unlink(missing_ok=True)
        _write_key(directory / "ca.key", ca_key)
        _write_cert(directory / "ca.crt", ca)
    ca_key = serialization.load_pem_private_key((directory / "ca.key").read_bytes(), None)
    ca = x509.load_pem_x509_certificate((directory / "ca.crt").read_bytes())

    if not (directory / "ocsp.crt").exists():
        key = ec.generate_private_key(ec.SECP256R1())
        cert = (
            _builder(_name("Chave Signing OCSP Responder (TEST)"), ca.subject, key.public_key(), ca_key, now)
            .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
            .add_extension(_leaf_usage(non_repudiation=False), critical=True)
            .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.OCSP_SIGNING]), critical=False)
            .add_extension(x509.OCSPNoCheck(), critical=False)
            .sign(ca_key, hashes.SHA384())
        )
        _write_key(directory / "ocsp.key", key)
        _write_cert(directory / "ocsp.crt", cert)

    if not (directory / "tsa.crt").exists():
        # RSA: pyHanko's in-process time-stamper signs with RSA keys only.
        key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
        cert = (
            _issued_by_sub_ca(_builder(_name("Chave Time-Stamp Authority (TEST)"), ca.subject, key.public_key(),
                                       ca_key, now))
            .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
            .add_extension(_leaf_usage(non_repudiation=True), critical=True)
            .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.TIME_STAMPING]), critical=True)
            .sign(ca_key, hashes.SHA384())
        )
        _write_key(directory / "tsa.key", key)
        _write_cert(directory / "tsa.crt", cert)

    init_softhsm_token(directory)
    return directory
