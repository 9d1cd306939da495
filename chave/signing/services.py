"""Remote signing: activation, the signing PIN, authorisation and signing of hashes.

Every write of the signing capability goes through here: the one signing core of the two
integrator interfaces (the CSC v2 API and the SCMD SOAP service, ``chave.scmd``), the personal
area, the counter and the CLI. Refusals a person or an integrator can act on come back as
values (:class:`PinDecision`, :class:`Started`, :class:`Authorised`, :class:`Signed`) with a
``reason``; activation errors are ``ValidationError`` with a code. Nothing here returns, logs or
audits a PIN, a code or a signature activation token (only its hash is stored).

The flow (``domain.md``, signing): signing PIN → a code by the citizen's channel (2 minutes),
whose message names the documents → a signature activation token (SAT, the CSC "SAD") that is
single use, bound to the credential, the citizen, the integrator and the exact hashes (at most
``signing_max_hashes``), valid at most ``signing_authorisation_seconds`` → the HSM signs.
"""

from __future__ import annotations

import base64
import binascii
import datetime as dt
import hashlib
import hmac
import logging
import secrets
from dataclasses import dataclass, field

from cryptography import x509
from cryptography.hazmat.primitives import serialization
from django.conf import settings
from django.core.exceptions import ValidationError
from django.db import transaction
from django.utils.translation import gettext_lazy as _

from chave import clock, policy
from chave.audit import services as audit
from chave.codes import services as codes
from chave.codes.models import Purpose
from chave.compiled import Compiled, first
from chave.delivery import services as delivery
from chave.identity import pins
from chave.identity.models import Citizen, ContactKind, Key, KeyStatus
from chave.identity.services import generate_temporary_pin
from chave.identity.validation import check_pin_rules
from chave.throttle import services as throttle

from . import pki
from .hsm import HsmError, hsm
from .models import KeyAlgorithm, SigningCertificate, SigningCredential, SigningRequest, new_id

logger = logging.getLogger(__name__)

# Digest algorithms a hash may be given in: name → (OID, length).
DIGESTS = {
    "sha256": ("2.16.840.1.101.3.4.2.1", 32),
    "sha384": ("2.16.840.1.101.3.4.2.2", 48),
    "sha512": ("2.16.840.1.101.3.4.2.3", 64),
}
DIGEST_BY_OID = {oid: name for name, (oid, _n) in DIGESTS.items()}
# The DER prefix of a DigestInfo (RFC 8017 §9.2, note 1) per digest: algorithm identifier with NULL
# parameters, then the OCTET STRING header of the digest.
DIGEST_INFO_PREFIXES = {
    "sha256": bytes.fromhex("3031300d060960864801650304020105000420"),
    "sha384": bytes.fromhex("3041300d060960864801650304020205000430"),
    "sha512": bytes.fromhex("3051300d060960864801650304020305000440"),
}
# A request whose hashes are whole DigestInfos (SCMD), each naming its own digest algorithm.
DIGEST_INFO = "digestinfo"
# Per key algorithm: the public key's algorithm OID, and what it signs with per digest
# (sha256/384/512WithRSAEncryption; ecdsa-with-SHA256/384/512).
KEY_OIDS = {KeyAlgorithm.RSA_3072: "1.2.840.113549.1.1.1", KeyAlgorithm.EC_P256: "1.2.840.10045.2.1"}
SIGN_ALGORITHMS = {
    KeyAlgorithm.RSA_3072: {"sha256": "1.2.840.113549.1.1.11", "sha384": "1.2.840.113549.1.1.12",
                            "sha512": "1.2.840.113549.1.1.13"},
    KeyAlgorithm.EC_P256: {"sha256": "1.2.840.10045.4.3.2", "sha384": "1.2.840.10045.4.3.3",
                           "sha512": "1.2.840.10045.4.3.4"},
}
RSA_BITS = 3072
CHANNEL_OF_KIND = {ContactKind.MOBILE: "sms", ContactKind.EMAIL: "email", ContactKind.X: "x"}
AREA = "Chave"


# --- Credentials ------------------------------------------------------------------------


def active_credential(citizen: Citizen | int | None) -> SigningCredential | None:
    if citizen is None:
        return None
    citizen_id = citizen if isinstance(citizen, int) else citizen.pk
    return _ACTIVE_CREDENTIAL.first(citizen_id)


_ACTIVE_CREDENTIAL = Compiled(lambda citizen: first(SigningCredential.objects.select_related("citizen", "key")
                                                    .filter(citizen_id=citizen, status=SigningCredential.Status.ACTIVE)),
                              int)


def credential_by_id(credential_id) -> SigningCredential | None:
    if not isinstance(credential_id, str) or len(credential_id) > 40:
        return None
    return SigningCredential.objects.select_related("citizen", "key").filter(credential_id=credential_id).first()


def certificate(credential: SigningCredential) -> x509.Certificate:
    return x509.load_der_x509_certificate(bytes(credential.certificate_der))


def certificate_by_serial(credential: SigningCredential, serial: str) -> x509.Certificate | None:
    """One of the credential's certificates (current or earlier), by its hex serial."""
    row = credential.certificates.filter(serial_number=serial).first()
    return x509.load_der_x509_certificate(bytes(row.certificate_der)) if row else None


def renewed_on(credential: SigningCredential | None) -> dt.datetime | None:
    """When the credential's current certificate was re-issued (a renewed identity document), or
    None when it is the one issued at activation."""
    if credential is None:
        return None
    current = credential.certificates.filter(status=SigningCertificate.Status.CURRENT).first()
    return current.issued_at if current and current.issued_at > credential.created_at else None


def chain_pem(credential: SigningCredential) -> list[str]:
    """The credential's current certificate and the CA chain, PEM, signer first."""
    certs = [certificate(credential), *pki.material().chain]
    return [c.public_bytes(serialization.Encoding.PEM).decode() for c in certs]


def _check_new_signing_pin(key: Key, pin) -> str:
    check_pin_rules(pin, birth_date=key.citizen.birth_date)
    if pins.verify(key.pin_hash, pin)[0]:
        raise ValidationError(_("The signing PIN must differ from the login PIN."), code="signing_pin_same_as_login")
    return pin


@dataclass(frozen=True)
class Activated:
    credential: SigningCredential
    temporary_pin: str | None = None  # shown once when the CLI chose the PIN; it must be changed


def activate_signing(key: Key, signing_pin: str | None = None, *, by: str, ip: str | None = None,
                     channel: str = "") -> Activated:
    """Activate signing for the key's citizen: a key pair in the HSM, a certificate from the
    signing CA, the signing PIN stored as a hash.

    Without ``signing_pin`` one is generated and returned once, and must be changed before the
    first signature. Raises ``ValidationError``: the key is not active (``key_not_active``),
    signing is active already (``signing_already_active``), the PIN breaks the PIN rules or
    equals the login PIN (``signing_pin_same_as_login``). Audited as ``signing.activate``.
    """
    key = Key.objects.select_related("citizen").get(pk=key.pk)
    if key.effective_status(clock.now()) != KeyStatus.ACTIVE:
        raise ValidationError(_("Signing needs an active Digital Mobile Key."), code="key_not_active")
    if active_credential(key.citizen) is not None:
        raise ValidationError(_("Signing is already active for this person."), code="signing_already_active")
    temporary = signing_pin is None
    if temporary:
        signing_pin = generate_temporary_pin(key.citizen.birth_date)
        while pins.verify(key.pin_hash, signing_pin)[0]:
            signing_pin = generate_temporary_pin(key.citizen.birth_date)
    else:
        _check_new_signing_pin(key, signing_pin)
    pin_hash = pins.hash_pin(signing_pin)

    credential_id = new_id()
    label = f"chave-sign-{credential_id}"
    algorithm = KeyAlgorithm(settings.CHAVE_SIGNING_KEY_ALGORITHM)
    if algorithm == KeyAlgorithm.RSA_3072:
        public_key = hsm().generate_rsa_key(label, RSA_BITS)
    else:
        public_key = hsm().generate_key(label)
    try:
        cert = pki.issue_certificate(key.citizen, public_key, valid_until=key.valid_until)
        with transaction.atomic():
            Key.objects.select_for_update().get(pk=key.pk)
            if active_credential(key.citizen) is not None:
                raise ValidationError(_("Signing is already active for this person."), code="signing_already_active")
            credential = SigningCredential.objects.create(
                credential_id=credential_id, citizen=key.citizen, key=key, pin_hash=pin_hash,
                pin_must_change=temporary, hsm_label=label, key_algorithm=algorithm, created_at=clock.now(),
                **_certificate_fields(cert),
            )
            SigningCertificate.objects.create(credential=credential, issued_at=credential.created_at,
                                              **_certificate_fields(cert))
            audit.record("signing.activate", outcome="ok", citizen=key.citizen, channel=channel, ip=ip, by=by,
                         credential=credential_id, certificate_serial=credential.serial_number)
            delivery.notify(key.citizen, "signing_activated")
    except BaseException:
        hsm().destroy_key(label)
        raise
    return Activated(credential, signing_pin if temporary else None)


def revoke_credential(credential: SigningCredential, *, reason: str, by: str, ip: str | None = None,
                      channel: str = "") -> bool:
    """Revoke the certificates (the CRL and OCSP say so from now on) and destroy the HSM key once
    the revocation commits. ``reason`` is an RFC 5280 CRLReason name. Returns False when the
    credential was revoked already. Audited as ``signing.revoke``."""
    now = clock.now()
    with transaction.atomic():
        updated = SigningCredential.objects.filter(pk=credential.pk, status=SigningCredential.Status.ACTIVE).update(
            status=SigningCredential.Status.REVOKED, revoked_at=now, revocation_reason=reason)
        if not updated:
            return False
        # Its key is destroyed: every certificate of it that is not revoked yet goes on the CRL,
        # an earlier one (superseded by a re-issue, still valid) as well as the current one.
        credential.certificates.exclude(status=SigningCertificate.Status.REVOKED).update(
            status=SigningCertificate.Status.REVOKED, revoked_at=now, revocation_reason=reason)
        audit.record("signing.revoke", outcome="ok", citizen=credential.citizen, channel=channel, ip=ip, by=by,
                     credential=credential.credential_id, reason=reason)
        delivery.notify(credential.citizen, "signing_deactivated")
        label = credential.hsm_label
        transaction.on_commit(lambda: hsm().destroy_key(label))
    return True


def _certificate_fields(cert: x509.Certificate) -> dict:
    """What a credential and its certificate history keep of a certificate."""
    return {"certificate_der": pki.der(cert), "serial_number": f"{cert.serial_number:x}",
            "not_before": cert.not_valid_before_utc, "not_after": cert.not_valid_after_utc}


# A re-issue gives at least this much more validity, or the certificate is kept as it is.
REISSUE_MIN_GAIN = dt.timedelta(days=1)


def reissue_certificate(credential: SigningCredential, *, by: str, ip: str | None = None,
                        channel: str = "") -> SigningCertificate | None:
    """The citizen's identity document was renewed: re-issue the credential's certificate for the
    same key in the HSM (no new activation; the signing PIN and its state stay as they are) when
    the key now outlives it (a certificate issued now ends at least :data:`REISSUE_MIN_GAIN`
    later) or the identity it certifies changed. The earlier certificate stays valid until its
    own notAfter (``superseded``) when the identity is the same, as a QTSP keeps a true
    certificate; when the identity changed it is revoked with reason ``superseded``. Returns the
    new certificate, or None when the current one is kept (or signing is not active). Raises
    :class:`~chave.signing.hsm.HsmError` when the HSM does not hold the certified key or fails,
    ``PkiNotReady`` without the CA's material. Audited as ``signing.reissue``; the citizen is told
    (``signing_certificate_renewed``)."""
    with transaction.atomic():
        row = SigningCredential.objects.select_for_update().select_related("citizen", "key").get(pk=credential.pk)
        if not row.is_active:
            return None
        citizen, key = row.citizen, row.key
        current = certificate(row)
        identity_changed = current.subject != pki.subject_name(citizen)
        if not identity_changed and pki.certificate_not_after(key.valid_until) < row.not_after + REISSUE_MIN_GAIN:
            return None
        public_key = hsm().public_key(row.hsm_label)
        if serialization.load_der_public_key(public_key).public_numbers() != current.public_key().public_numbers():
            raise HsmError(f"the key {row.hsm_label!r} in the HSM is not the certified one")
        cert = pki.issue_certificate(citizen, public_key, valid_until=key.valid_until)
        now = clock.now()
        previous = row.serial_number
        earlier = row.certificates.filter(status=SigningCertificate.Status.CURRENT)
        if identity_changed:
            earlier.update(status=SigningCertificate.Status.REVOKED, revoked_at=now,
                           revocation_reason=x509.ReasonFlags.superseded.value)
        else:
            earlier.update(status=SigningCertificate.Status.SUPERSEDED, superseded_at=now)
        fields = _certificate_fields(cert)
        issued = SigningCertificate.objects.create(credential=row, issued_at=now, **fields)
        SigningCredential.objects.filter(pk=row.pk).update(**fields)
        audit.record("signing.reissue", outcome="ok", citizen=citizen, channel=channel, ip=ip, by=by,
                     credential=row.credential_id, certificate_serial=issued.serial_number,
                     previous_serial=previous, previous_revoked=identity_changed,
                     not_after=issued.not_after.isoformat())
        delivery.notify(citizen, "signing_certificate_renewed", until=issued.not_after)
    for name, value in fields.items():
        setattr(credential, name, value)
    return issued


def on_key_renewed(sender, *, key: Key, by: str, ip: str | None = None, channel: str = "", **kwargs) -> None:
    """The key's document was renewed: its signing certificate follows (:func:`reissue_certificate`).
    An HSM or CA failure leaves the renewal done and the earlier certificate in use until its
    end: it is logged and audited (``failed``), and the next renewal tries again."""
    for credential in SigningCredential.objects.filter(key=key, status=SigningCredential.Status.ACTIVE):
        try:
            with transaction.atomic():
                reissue_certificate(credential, by=by, ip=ip, channel=channel)
        except (HsmError, pki.PkiNotReady) as exc:
            logger.warning("signing certificate of %s not re-issued: %s", credential.credential_id,
                           exc.__class__.__name__)
            audit.record("signing.reissue", outcome="failed", citizen=key.citizen, channel=channel, ip=ip, by=by,
                         credential=credential.credential_id, error=exc.__class__.__name__)


def deactivate_signing(citizen: Citizen, *, by: str, ip: str | None = None, channel: str = "") -> bool:
    """The citizen's active signing credential is revoked (``cessationOfOperation``); False when none."""
    credential = active_credential(citizen)
    if credential is None:
        return False
    return revoke_credential(credential, reason=x509.ReasonFlags.cessation_of_operation.value, by=by, ip=ip,
                             channel=channel)


def on_key_cancelled(sender, *, key: Key, by: str, **kwargs) -> None:
    for credential in SigningCredential.objects.filter(key=key, status=SigningCredential.Status.ACTIVE):
        revoke_credential(credential, reason=x509.ReasonFlags.cessation_of_operation.value, by=f"key cancelled ({by})")


def on_contact_changed(sender, *, key: Key, kind: str, by: str, **kwargs) -> None:
    """A new mobile number: the signature's second factor changed hands, so the certificate goes."""
    if kind != ContactKind.MOBILE:
        return
    for credential in SigningCredential.objects.filter(key=key, status=SigningCredential.Status.ACTIVE):
        revoke_credential(credential, reason=x509.ReasonFlags.affiliation_changed.value, by=f"mobile changed ({by})")


# --- The signing PIN ----------------------------------------------------------------------


@dataclass(frozen=True)
class PinDecision:
    ok: bool
    reason: str  # ok | wrong | must_change | not_active | throttled
    attempts_left: int = 0
    just_blocked: bool = False  # this failure was the last allowed one (AMA 901; later refusals 902)


def usable(credential: SigningCredential | None) -> str:
    """``""`` when the credential may sign now, else why not: not_active | must_change."""
    if credential is None or not credential.is_active:
        return "not_active"
    key = credential.key
    if key.effective_status(clock.now()) not in {KeyStatus.ACTIVE, KeyStatus.LOCKED}:
        return "not_active"
    if credential.pin_must_change:
        return "must_change"
    return ""


def check_signing_pin(credential: SigningCredential | None, pin, *, ip: str | None = None,
                      channel: str = "", client_id: str = "") -> PinDecision:
    """Check a signing PIN. ``signing_pin_max_failures`` consecutive wrong ones refuse signing
    until the citizen chooses a new signing PIN; a right one resets the count. Argon2 always
    runs (also when refused), the throttle first: per client IP for a citizen's own browser, per
    integrator (``client_id``) for the APIs, whose one server address speaks for all its
    citizens. Audited as ``signing.pin``."""
    citizen = credential.citizen if credential else None
    gate = throttle.hit(("signing_pin_per_client", client_id) if client_id else ("pin_attempt_per_ip", ip or ""))
    refusal = "throttled" if not gate.allowed else usable(credential)
    if refusal:
        pins.verify(None, str(pin))
        audit.record("signing.pin", outcome=refusal, citizen=citizen, channel=channel, ip=ip)
        return PinDecision(False, refusal)
    verified_hash = credential.pin_hash
    correct, needs_rehash = pins.verify(verified_hash, str(pin))
    max_failures = policy.get("signing_pin_max_failures")
    with transaction.atomic():
        row = SigningCredential.objects.select_for_update().get(pk=credential.pk)
        if row.pin_hash != verified_hash:
            correct, needs_rehash = pins.verify(row.pin_hash, str(pin))
        if row.pin_must_change or row.status != SigningCredential.Status.ACTIVE:
            audit.record("signing.pin", outcome="must_change", citizen=citizen, channel=channel, ip=ip)
            return PinDecision(False, "must_change" if row.pin_must_change else "not_active")
        if correct:
            row.pin_failures = 0
            if needs_rehash:
                row.pin_hash = pins.hash_pin(str(pin))
            row.save(update_fields=["pin_failures", "pin_hash"])
            audit.record("signing.pin", outcome="ok", citizen=citizen, channel=channel, ip=ip)
            throttle.refund(gate)  # only wrong PINs use up the address's (or integrator's) budget
            return PinDecision(True, "ok")
        row.pin_failures += 1
        blocked = row.pin_failures >= max_failures
        row.pin_must_change = blocked
        row.save(update_fields=["pin_failures", "pin_must_change"])
        audit.record("signing.pin", outcome="blocked" if blocked else "wrong", citizen=citizen, channel=channel,
                     ip=ip, failures=row.pin_failures)
    credential.pin_failures, credential.pin_must_change = row.pin_failures, row.pin_must_change
    if blocked:
        # Wrong signing PINs may come through an integrator's API: the citizen learns of it here.
        delivery.notify(citizen, "signing_pin_blocked")
        return PinDecision(False, "must_change", just_blocked=True)
    return PinDecision(False, "wrong", attempts_left=max_failures - row.pin_failures)


def change_signing_pin(credential: SigningCredential, new_pin: str, *, ip: str | None = None,
                       channel: str = "") -> None:
    """Set a new signing PIN (the caller authenticated the citizen at level 3 or more): clears the
    wrong-PIN count and the must-change state. Raises ``ValidationError`` when the PIN breaks the
    rules, equals the login PIN or the current signing PIN, or signing is not active."""
    if not credential.is_active:
        raise ValidationError(_("Signing is not active."), code="signing_not_active")
    _check_new_signing_pin(credential.key, new_pin)
    if pins.verify(credential.pin_hash, new_pin)[0]:
        raise ValidationError(_("Choose a signing PIN different from the current one."), code="pin_same")
    new_hash = pins.hash_pin(new_pin)
    with transaction.atomic():
        SigningCredential.objects.filter(pk=credential.pk).update(pin_hash=new_hash, pin_failures=0,
                                                                  pin_must_change=False)
        audit.record("signing.pin_change", outcome="ok", citizen=credential.citizen, channel=channel, ip=ip)
        delivery.notify(credential.citizen, "signing_pin_changed")
    credential.refresh_from_db()


# --- Hashes ----------------------------------------------------------------------------------


class BadHashes(ValueError):
    """The hashes are not base64 digests of the algorithm's length, or there are none."""


def parse_hashes(values, algorithm: str) -> list[str]:
    """Canonical base64 of each digest; raises :class:`BadHashes`. (How many is checked apart:
    too many is its own refusal.)"""
    if algorithm not in DIGESTS or not isinstance(values, list) or not values:
        raise BadHashes("hashes must be a non-empty list of base64 digests of a supported algorithm")
    length = DIGESTS[algorithm][1]
    result = []
    for value in values:
        if not isinstance(value, str) or len(value) > 200:
            raise BadHashes("each hash is a base64 string")
        try:
            raw = base64.b64decode(value.replace("-", "+").replace("_", "/") + "=" * (-len(value) % 4), validate=True)
        except (binascii.Error, ValueError):
            raise BadHashes("a hash is not valid base64") from None
        if len(raw) != length:
            raise BadHashes(f"a {algorithm} hash has {length} bytes")
        result.append(base64.b64encode(raw).decode())
    return result


def algorithm_by_length(values) -> str:
    """The digest algorithm whose length the first of ``values`` (base64) has; SHA-256 when it
    says nothing (:func:`parse_hashes` then refuses what is wrong)."""
    first = values[0] if isinstance(values, list) and values else None
    if isinstance(first, str) and len(first) <= 200:
        try:
            size = len(base64.b64decode(first.replace("-", "+").replace("_", "/") + "=" * (-len(first) % 4)))
        except (binascii.Error, ValueError):
            size = 0
        for name, (_oid, length) in DIGESTS.items():
            if size == length:
                return name
    return "sha256"


def parse_digest_infos(values) -> list[str]:
    """Canonical base64 of each DigestInfo (RFC 8017 §9.2: an algorithm prefix of
    :data:`DIGEST_INFO_PREFIXES` followed by a digest of its length), given as bytes; raises
    :class:`BadHashes` for an empty one, another algorithm or a wrong length."""
    if not isinstance(values, list) or not values:
        raise BadHashes("no hash")
    result = []
    for raw in values:
        if not isinstance(raw, bytes | bytearray) or not raw:
            raise BadHashes("a hash is empty")
        split_digest_info(bytes(raw))
        result.append(base64.b64encode(bytes(raw)).decode())
    return result


def split_digest_info(raw: bytes) -> tuple[str, bytes]:
    """The digest algorithm and the digest of a DigestInfo; :class:`BadHashes` if it is none of
    SHA-256, SHA-384 or SHA-512 with its exact length."""
    for name, prefix in DIGEST_INFO_PREFIXES.items():
        if raw.startswith(prefix) and len(raw) == len(prefix) + DIGESTS[name][1]:
            return name, raw[len(prefix):]
    raise BadHashes("a hash is not a SHA-256, SHA-384 or SHA-512 DigestInfo")


def sign_algorithm_oids(credential: SigningCredential) -> dict[str, str]:
    """What the credential's key signs with, per digest algorithm (OIDs)."""
    return SIGN_ALGORITHMS[KeyAlgorithm(credential.key_algorithm)]


def _sign_in_hsm(credential: SigningCredential, hash_algorithm: str, hashes: list[str]) -> list[bytes]:
    """The credential's key signs each hash (canonical base64): an RSA key a PKCS#1 v1.5 signature
    over the DigestInfo, a P-256 key an ECDSA signature (DER) over the digest."""
    raw = [base64.b64decode(h) for h in hashes]
    if hash_algorithm == DIGEST_INFO:
        pairs = [split_digest_info(r) for r in raw]
    else:
        pairs = [(hash_algorithm, r) for r in raw]
    if credential.key_algorithm == KeyAlgorithm.RSA_3072:
        return hsm().sign_pkcs1(credential.hsm_label, [DIGEST_INFO_PREFIXES[a] + d for a, d in pairs])
    return hsm().sign_digests(credential.hsm_label, [d for _a, d in pairs])


def too_many(hashes: list) -> bool:
    return len(hashes) > policy.get("signing_max_hashes")


def documents_label(documents: list[str]) -> str:
    names = [f"«{d}»" for d in documents[:3]]
    more = len(documents) - len(names)
    return ", ".join(names) + (f" (+{more})" if more > 0 else "")


# --- Authorisation: PIN + code → signature activation token ---------------------------------


@dataclass(frozen=True)
class Started:
    ok: bool
    reason: str  # sent | not_active | must_change | wrong | throttled | too_many_hashes | code_not_sent
    request: SigningRequest | None = None
    issue: codes.IssueResult | None = None
    pin: PinDecision | None = None


def _code_channel(key: Key) -> tuple[str, str] | None:
    """The citizen's channel for signing codes: the Chave app (the device used last), else the
    verified mobile number, else the e-mail."""
    from chave.app.services import signing_device

    device = signing_device(key)
    if device is not None:
        return "app", str(device.pk)
    contacts = {c.kind: c.value for c in key.contacts.filter(verified_at__isnull=False)}
    for kind in (ContactKind.MOBILE, ContactKind.EMAIL, ContactKind.X):
        if kind in contacts:
            return CHANNEL_OF_KIND[kind], contacts[kind]
    return None


def _send_code(request: SigningRequest, *, ip: str | None) -> codes.IssueResult:
    key = request.credential.key
    channel = _code_channel(key)
    if channel is None:
        return codes.IssueResult(False, "no_channel")
    return codes.issue_code(
        key, purpose=Purpose.SIGNING, transaction=request.code_transaction, channel=channel[0],
        destination=channel[1], ip=ip, portal=request.client_name or AREA,
        documents=documents_label(request.documents), client_id=request.client_id,
    )


def start_request(credential: SigningCredential | None, *, via: str, documents: list[str],
                  hashes: list[str] | None = None, hash_algorithm: str = "sha256", client_id: str = "",
                  client_name: str = "", pin: str | None = None, ip: str | None = None,
                  document_ids: list[str] | None = None) -> Started:
    """Open an authorisation and send the code. With ``pin`` (the CMD-style flow and the personal
    area) the signing PIN is checked first and no code is sent when it is wrong; without (CSC's
    ``credentials/sendOTP``) the PIN comes with the code at :func:`authorise`.

    ``hashes`` are canonical base64 (:func:`parse_hashes`); more than ``signing_max_hashes`` is
    refused (``too_many_hashes``). Audited as ``signing.request``.
    """
    refusal = usable(credential)
    if refusal:
        audit.record("signing.request", outcome=refusal, citizen=credential.citizen if credential else None,
                     ip=ip, client_id=client_id, via=via)
        return Started(False, refusal)
    if hashes is not None and too_many(hashes):
        return Started(False, "too_many_hashes")
    if pin is not None:
        decision = check_signing_pin(credential, pin, ip=ip, channel=via, client_id=client_id)
        if not decision.ok:
            return Started(False, decision.reason, pin=decision)
    request = SigningRequest.objects.create(
        credential=credential, via=via, client_id=client_id, client_name=client_name,
        documents=[str(d)[:200] for d in documents], document_ids=[str(i)[:200] for i in document_ids or []],
        hashes=list(hashes or []), hash_algorithm=hash_algorithm,
        created_at=clock.now(),
    )
    issue = _send_code(request, ip=ip)
    audit.record("signing.request", outcome="sent" if issue.sent else issue.reason, citizen=credential.citizen,
                 ip=ip, client_id=client_id, via=via, process=request.process_id, hashes=len(request.hashes),
                 documents=len(request.documents))
    if not issue.sent:
        SigningRequest.objects.filter(pk=request.pk).update(status=SigningRequest.Status.FAILED)
        return Started(False, "code_not_sent", request=request, issue=issue)
    return Started(True, "sent", request=request, issue=issue)


def find_request(process_id, *, via: str, client_id: str = "") -> SigningRequest | None:
    if not isinstance(process_id, str) or len(process_id) > 40:
        return None
    return (SigningRequest.objects.select_related("credential__citizen", "credential__key")
            .filter(process_id=process_id, via=via, client_id=client_id).first())


def latest_request(credential: SigningCredential, *, via: str, client_id: str) -> SigningRequest | None:
    return (SigningRequest.objects.select_related("credential__citizen", "credential__key")
            .filter(credential=credential, via=via, client_id=client_id).order_by("-created_at", "-id").first())


def resend_code(request: SigningRequest, *, ip: str | None = None) -> codes.IssueResult:
    """A new code for a request still waiting for one (the earlier code stops working); the
    resend cooldown and per-request send limit apply."""
    if request.status != SigningRequest.Status.CODE_SENT or usable(request.credential) == "not_active":
        return codes.IssueResult(False, "not_pending")
    return _send_code(request, ip=ip)


@dataclass(frozen=True)
class Authorised:
    ok: bool
    # ok | wrong_code | code_expired | wrong | must_change | not_active | throttled | hashes_differ |
    # too_many_hashes | not_pending
    reason: str
    sad: str = field(default="", repr=False)
    expires_at: dt.datetime | None = None
    attempts_left: int = 0
    pin: PinDecision | None = None


def _sad_hash(sad: str) -> str:
    return hashlib.sha256(b"chave-sad\x00" + sad.encode()).hexdigest()


def authorise(request: SigningRequest, *, code, pin: str | None = None, hashes: list[str] | None = None,
              hash_algorithm: str = "sha256", ip: str | None = None) -> Authorised:
    """Check the code (and, for CSC, the signing PIN first) and issue the signature activation
    token bound to the request's exact hashes, returned once. ``hashes`` (of ``hash_algorithm``)
    name them when the request was opened without (CSC); when it named them, they must be the same.
    Audited as ``signing.authorise``."""
    credential = request.credential
    if request.status != SigningRequest.Status.CODE_SENT:
        return Authorised(False, "not_pending")
    if hashes is not None:
        if too_many(hashes):
            return Authorised(False, "too_many_hashes")
        if request.hashes and (sorted(request.hashes) != sorted(hashes) or request.hash_algorithm != hash_algorithm):
            return Authorised(False, "hashes_differ")
    if pin is not None:
        decision = check_signing_pin(credential, pin, ip=ip, channel=request.via, client_id=request.client_id)
        if not decision.ok:
            return Authorised(False, decision.reason, pin=decision, attempts_left=decision.attempts_left)
    elif usable(credential):
        return Authorised(False, usable(credential))
    sad = secrets.token_urlsafe(32)
    # The code is spent and the SAD issued in one transaction: a process killed between the two
    # (or a database gone) leaves neither, so the same code still authorises (issue 17).
    with transaction.atomic():
        result = codes.verify_code(purpose=Purpose.SIGNING, transaction=request.code_transaction, submitted=code,
                                   ip=ip)
        if not result.ok:
            reason = "wrong_code" if result.reason in {"wrong", "malformed"} else "code_expired"
            audit.record("signing.authorise", outcome=reason, citizen=credential.citizen, ip=ip, via=request.via,
                         client_id=request.client_id, process=request.process_id)
            return Authorised(False, reason, attempts_left=result.attempts_left)
        now = clock.now()
        expires_at = now + dt.timedelta(seconds=policy.get("signing_authorisation_seconds"))
        fields = {"status": SigningRequest.Status.AUTHORISED, "sad_hash": _sad_hash(sad),
                  "sad_expires_at": expires_at}
        if hashes is not None and not request.hashes:
            fields["hashes"] = list(hashes)
            fields["hash_algorithm"] = hash_algorithm
        won = SigningRequest.objects.filter(pk=request.pk, status=SigningRequest.Status.CODE_SENT).update(**fields)
        if won != 1:
            transaction.set_rollback(True)  # the code stays unspent: someone else authorised this request
            return Authorised(False, "not_pending")
        audit.record("signing.authorise", outcome="ok", citizen=credential.citizen, ip=ip, via=request.via,
                     client_id=request.client_id, process=request.process_id)
    request.refresh_from_db()
    return Authorised(True, "ok", sad=sad, expires_at=expires_at)


@dataclass(frozen=True)
class Signed:
    ok: bool
    reason: str  # ok | sad_invalid | sad_expired | hashes_differ | not_active | wrong_credential
    signatures: list[bytes] = field(default_factory=list, repr=False)
    request: SigningRequest | None = None


def sign_hashes(credential: SigningCredential | None, sad, hashes: list[str], *, client_id: str = "",
                hash_algorithm: str | None = None, ip: str | None = None) -> Signed:
    """Spend the signature activation token ``sad`` on exactly the hashes it authorised (and, when
    ``hash_algorithm`` is given, of that algorithm) and sign them in the HSM (in order). Any use
    spends it: a second use, another credential or integrator, an expired token, or other hashes
    are refused. Audited as ``signing.sign``.

    The HSM signs inside the transaction that spends the token (the request's row locked): a process
    killed or a database gone before it commits leaves the token unspent and nothing recorded as
    signed, so the integrator may present it again; once it commits, the signatures exist."""
    if not isinstance(sad, str) or not sad or len(sad) > 200:
        return Signed(False, "sad_invalid")
    now = clock.now()
    signatures: list[bytes] = []
    with transaction.atomic():
        request = (SigningRequest.objects.select_for_update().select_related("credential__citizen", "credential__key")
                   .filter(sad_hash=_sad_hash(sad)).first())
        if request is None or request.status != SigningRequest.Status.AUTHORISED or credential is None:
            return Signed(False, "sad_invalid")
        if request.credential_id != credential.pk or not hmac.compare_digest(request.client_id, client_id):
            outcome = "wrong_credential"
        elif request.sad_expires_at <= now:
            outcome = "sad_expired"
        elif sorted(request.hashes) != sorted(hashes) or hash_algorithm not in (None, request.hash_algorithm):
            outcome = "hashes_differ"
        elif usable(request.credential) == "not_active":
            outcome = "not_active"
        else:
            outcome = "ok"
        if outcome == "ok":
            signatures = _sign_in_hsm(request.credential, request.hash_algorithm, hashes)
        request.status = SigningRequest.Status.SIGNED if outcome == "ok" else SigningRequest.Status.FAILED
        request.signed_at = now
        request.save(update_fields=["status", "signed_at"])
        audit.record("signing.sign", outcome=outcome, citizen=request.credential.citizen, ip=ip, via=request.via,
                     client_id=request.client_id, process=request.process_id, hashes=len(hashes))
    if outcome != "ok":
        return Signed(False, outcome, request=request)
    return Signed(True, "ok", signatures, request=request)
