"""Cards as PKCS#11 tokens (``python-pkcs11``): reading the certificate and signing with the key.

A Citizen Card is a token holding the authentication private key and its X.509 certificate,
found by the labels the card middleware gives them (``AUTH_KEY_LABEL``, ``AUTH_CERT_LABEL``).
Real cards are reached through the middleware's PKCS#11 module, development and test cards are
SoftHSM2 tokens made by ``chave dev-card issue``: only ``CHAVE_CARD_PKCS11_MODULE`` differs.

SoftHSM reads its configuration (``SOFTHSM2_CONF``) when the module is initialised, so the
commands point it at ``CHAVE_CARD_DEV_DIR/softhsm2.conf`` (:func:`use_dev_softhsm`) and nothing
global is touched. The module is loaded once per process; every use re-initialises it under one
lock, so that a card inserted (or a token created) after the start is seen.
"""

from __future__ import annotations

import os
import shutil
import subprocess
from dataclasses import dataclass, field
from pathlib import Path

import pkcs11
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import rsa, utils
from django.conf import settings
from pkcs11 import Attribute, KeyType, Mechanism, ObjectClass
from pkcs11 import exceptions as p11

from chave.signing.hsm import MODULE_LOCK

AUTH_KEY_LABEL = "CITIZEN AUTHENTICATION KEY"
AUTH_CERT_LABEL = "CITIZEN AUTHENTICATION CERTIFICATE"
AUTH_OBJECT_ID = b"\x45"
RSA_BITS = 2048

# The process's one PKCS#11 lock (the signing HSM's): the module is loaded, re-initialised and
# used by one thread at a time, whichever part of Chave uses it (chave.signing.hsm).
_lock = MODULE_LOCK


class CardError(Exception):
    """A card operation failed; ``reason`` names why (for the agent's message)."""

    def __init__(self, reason: str, detail: str = ""):
        super().__init__(detail or reason)
        self.reason = reason  # no_card | several_cards | wrong_pin | pin_locked | pin_format | no_key | module | failed


@dataclass(frozen=True)
class CardInfo:
    label: str  # the token label
    serial: str
    holder: str  # the certificate's common name (who the card belongs to)


@dataclass(frozen=True)
class Signed:
    certificate: bytes  # DER
    signature: bytes
    chain: list[bytes] = field(default_factory=list)


def softhsm_config_path() -> Path:
    return Path(settings.CHAVE_CARD_DEV_DIR) / "softhsm2.conf"


def is_softhsm(module: str | None = None) -> bool:
    return "softhsm" in Path(module or settings.CHAVE_CARD_PKCS11_MODULE).name


def use_dev_softhsm() -> Path | None:
    """With the SoftHSM module: write ``CHAVE_CARD_DEV_DIR/softhsm2.conf`` (tokens under
    ``CHAVE_CARD_DEV_DIR/tokens``) if missing and point ``SOFTHSM2_CONF`` at it."""
    if not is_softhsm():
        return None
    conf = softhsm_config_path()
    tokens = conf.parent / "tokens"
    tokens.mkdir(parents=True, exist_ok=True)
    os.chmod(conf.parent, 0o700)
    if not conf.exists():
        conf.write_text(f"directories.tokendir = {tokens}\nobjectstore.backend = file\nlog.level = ERROR\n"
                        "slots.removable = false\n")
    os.environ["SOFTHSM2_CONF"] = str(conf)
    return conf


def _lib():
    module = settings.CHAVE_CARD_PKCS11_MODULE
    try:
        lib = pkcs11.lib(module)
    except (RuntimeError, OSError) as exc:
        raise CardError("module", f"cannot load the PKCS#11 module {module}: {exc}") from exc
    from chave.signing.hsm import reinitialize_module  # the signing HSM's sessions end too: it must know

    reinitialize_module(module)
    return lib


def _tokens(lib):
    for slot in lib.get_slots(token_present=True):
        try:
            token = slot.get_token()
        except p11.PKCS11Error:
            continue
        if pkcs11.TokenFlag.TOKEN_INITIALIZED in token.flags:
            yield token


def _certificate_of(session) -> x509.Certificate | None:
    for obj in session.get_objects({Attribute.CLASS: ObjectClass.CERTIFICATE, Attribute.LABEL: AUTH_CERT_LABEL}):
        return x509.load_der_x509_certificate(bytes(obj[Attribute.VALUE]))
    return None


def _other_certificates(session) -> list[bytes]:
    found = []
    for obj in session.get_objects({Attribute.CLASS: ObjectClass.CERTIFICATE}):
        if obj[Attribute.LABEL] != AUTH_CERT_LABEL:
            found.append(bytes(obj[Attribute.VALUE]))
    return found


def list_cards() -> list[CardInfo]:
    """The tokens that hold an authentication certificate (read without the PIN)."""
    with _lock:
        lib = _lib()
        cards = []
        for token in _tokens(lib):
            try:
                with token.open() as session:
                    cert = _certificate_of(session)
            except p11.PKCS11Error:
                continue
            if cert is not None:
                names = cert.subject.get_attributes_for_oid(x509.NameOID.COMMON_NAME)
                cards.append(CardInfo(token.label, token.serial.decode(errors="replace").strip()
                                      if isinstance(token.serial, bytes) else str(token.serial),
                                      str(names[0].value) if names else ""))
        return cards


def _pin_error(exc: Exception) -> CardError:
    if isinstance(exc, p11.PinIncorrect):
        return CardError("wrong_pin")
    if isinstance(exc, (p11.PinLocked, p11.PinExpired)):
        return CardError("pin_locked")
    if isinstance(exc, (p11.PinLenRange, p11.PinInvalid)):
        return CardError("pin_format")
    return CardError("failed", exc.__class__.__name__)


def sign(data: bytes, *, pin: str, token_label: str | None = None) -> Signed:
    """Sign ``data`` with the card's authentication key after the card checks ``pin``.

    RSA keys sign with SHA256_RSA_PKCS (PKCS#1 v1.5, SHA-256), EC keys with ECDSA over SHA-256
    (returned DER-encoded). Raises :class:`CardError`: ``no_card``, ``several_cards`` (name one
    with ``token_label``), ``wrong_pin``, ``pin_locked``, ``pin_format``, ``no_key``, ``failed``.
    """
    with _lock:
        lib = _lib()
        tokens = [t for t in _tokens(lib) if token_label is None or t.label == token_label]
        if not tokens:
            raise CardError("no_card")
        if len(tokens) > 1:
            with_cert = []
            for t in tokens:
                with t.open() as s:
                    if _certificate_of(s) is not None:
                        with_cert.append(t)
            tokens = with_cert or tokens
            if len(tokens) > 1:
                raise CardError("several_cards")
        try:
            with tokens[0].open(user_pin=pin) as session:
                cert = _certificate_of(session)
                keys = list(session.get_objects({Attribute.CLASS: ObjectClass.PRIVATE_KEY,
                                                 Attribute.LABEL: AUTH_KEY_LABEL}))
                if cert is None or not keys:
                    raise CardError("no_key")
                key = keys[0]
                if key.key_type == KeyType.EC:
                    digest = hashes.Hash(hashes.SHA256())
                    digest.update(data)
                    raw = key.sign(digest.finalize(), mechanism=Mechanism.ECDSA)
                    half = len(raw) // 2
                    signature = utils.encode_dss_signature(int.from_bytes(raw[:half], "big"),
                                                           int.from_bytes(raw[half:], "big"))
                else:
                    signature = key.sign(data, mechanism=Mechanism.SHA256_RSA_PKCS)
                return Signed(cert.public_bytes(serialization.Encoding.DER), bytes(signature),
                              _other_certificates(session))
        except CardError:
            raise
        except p11.PKCS11Error as exc:
            raise _pin_error(exc) from exc


# --- Making test cards (SoftHSM) -----------------------------------------------------------


def _softhsm_util() -> str:
    found = shutil.which("softhsm2-util")
    if not found:
        raise CardError("module", "softhsm2-util is missing: install Debian's softhsm2 (make test does)")
    return found


def create_token(label: str, *, pin: str, so_pin: str) -> None:
    """Initialise a new SoftHSM token (a blank card) labelled ``label``."""
    if not is_softhsm():
        raise CardError("module", "test cards are SoftHSM tokens: set CHAVE_CARD_PKCS11_MODULE to SoftHSM's module")
    use_dev_softhsm()
    result = subprocess.run(
        [_softhsm_util(), "--init-token", "--free", "--label", label, "--so-pin", so_pin, "--pin", pin],
        capture_output=True, text=True, env=os.environ.copy(), timeout=60,
    )
    if result.returncode != 0:
        raise CardError("failed", (result.stderr or result.stdout).strip()[:300])


def generate_key(label: str, *, pin: str):
    """Generate the authentication key pair on the token, as the card's chip does; returns the
    public key (``cryptography``). The private key never leaves the token."""
    with _lock:
        lib = _lib()
        token = lib.get_token(token_label=label)
        with token.open(user_pin=pin, rw=True) as session:
            public, _private = session.generate_keypair(
                KeyType.RSA, RSA_BITS, id=AUTH_OBJECT_ID, label=AUTH_KEY_LABEL, store=True,
                private_template={Attribute.SENSITIVE: True, Attribute.EXTRACTABLE: False, Attribute.SIGN: True},
            )
            modulus = int.from_bytes(bytes(public[Attribute.MODULUS]), "big")
            exponent = int.from_bytes(bytes(public[Attribute.PUBLIC_EXPONENT]), "big")
            return rsa.RSAPublicNumbers(exponent, modulus).public_key()


def store_certificate(label: str, certificate: x509.Certificate, *, pin: str) -> None:
    """Write the authentication certificate on the token, beside its key (same CKA_ID)."""
    with _lock:
        lib = _lib()
        token = lib.get_token(token_label=label)
        with token.open(user_pin=pin, rw=True) as session:
            session.create_object({
                Attribute.CLASS: ObjectClass.CERTIFICATE,
                Attribute.CERTIFICATE_TYPE: pkcs11.CertificateType.X_509,
                Attribute.TOKEN: True,
                Attribute.PRIVATE: False,
                Attribute.LABEL: AUTH_CERT_LABEL,
                Attribute.ID: AUTH_OBJECT_ID,
                Attribute.SUBJECT: certificate.subject.public_bytes(),
                Attribute.ISSUER: certificate.issuer.public_bytes(),
                Attribute.VALUE: certificate.public_bytes(serialization.Encoding.DER),
            })
