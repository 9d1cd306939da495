"""The Cloud Signature Consortium API v2 (``/csc/v2/``), for integrators in ``oauth2client`` mode.

``info``, ``credentials/list``, ``credentials/info``, ``credentials/sendOTP``,
``credentials/authorize`` (explicit mode: signing PIN and OTP) and ``signatures/signHash``. The
v1 field names (``hash``, ``hashAlgo``) are accepted beside the v2 ones (``hashes``,
``hashAlgorithmOID``), so existing CSC clients work unchanged. Credentials are SCAL 2: the SAD is
bound to the exact hashes given to ``credentials/authorize``.

Chave's extension: ``credentials/sendOTP`` takes an optional ``description`` (the document
name(s)), which the citizen's code message names.
"""

from __future__ import annotations

import base64

from cryptography.hazmat.primitives import serialization
from django.conf import settings

from chave.identity.services import find_citizen

from . import pki, services
from .api import ApiError, endpoint, field
from .models import KeyAlgorithm, SigningRequest

VIA = SigningRequest.Via.CSC
P256_OID = "1.2.840.10045.3.1.7"
MAX_DESCRIPTION = 200


def _credential(body, party):
    credential_id = field(body, "credentialID")
    credential = services.credential_by_id(credential_id)
    if credential is None:
        raise ApiError(400, "invalid_request", "Invalid parameter credentialID.")
    return credential


def _hash_algorithm(body, credential) -> str:
    oid = field(body, "hashAlgorithmOID", "hashAlgo", required=False)
    sign_algo = field(body, "signAlgo", required=False)
    by_oid = {v: k for k, v in services.sign_algorithm_oids(credential).items()}
    if oid is None and sign_algo in by_oid:
        return by_oid[sign_algo]
    if oid is None:
        raise ApiError(400, "invalid_request", "Missing parameter hashAlgorithmOID.")
    if oid not in services.DIGEST_BY_OID:
        raise ApiError(400, "invalid_request", "Unsupported hashAlgorithmOID.")
    return services.DIGEST_BY_OID[oid]


def _hashes(body, algorithm: str) -> list[str]:
    values = field(body, "hashes", "hash", kind=list)
    if services.too_many(values):
        raise ApiError(400, "invalid_request",
                       f"At most {settings.CHAVE_POLICY['signing_max_hashes']} hashes may be signed at once.")
    try:
        return services.parse_hashes(values, algorithm)
    except services.BadHashes as e:
        raise ApiError(400, "invalid_request", f"Invalid parameter hashes: {e}.") from None


@endpoint("csc.info", public=True, allow_get=True)
def info(request, body, party, ip):
    base = request.build_absolute_uri("/").rstrip("/")
    return 200, {
        "specs": "2.0.0.2",
        "name": "Chave",
        "logo": base + "/static/chave/logo.png",
        "region": "PT",
        "lang": "en",
        "description": "Chave remote qualified-style signatures (keys in an HSM; signing PIN + one-time code).",
        "authType": ["oauth2client"],
        "oauth2": base + "/oidc/token",
        "oauth2Issuer": base,
        "methods": ["credentials/list", "credentials/info", "credentials/authorize", "credentials/sendOTP",
                    "signatures/signHash"],
        "signAlgorithms": {"algos": sorted(
            oid for algorithm in services.SIGN_ALGORITHMS.values() for oid in algorithm.values())},
        "signature_formats": {"formats": ["P"]},
    }, None


@endpoint("csc.credentials.list")
def credentials_list(request, body, party, ip):
    user_id = field(body, "userID")
    citizen = find_citizen(user_id) if len(user_id) <= 254 else None
    credential = services.active_credential(citizen)
    ids = [credential.credential_id] if credential else []
    payload = {"credentialIDs": ids, "onlyValid": True}
    if field(body, "credInfo", kind=bool, required=False, default=False):
        payload["credentialInfos"] = [
            {"credentialID": credential.credential_id, **_info(credential, body)} for credential in
            ([credential] if credential else [])
        ]
    return 200, payload, citizen


def _info(credential, body) -> dict:
    cert = services.certificate(credential)
    which = field(body, "certificates", required=False, default="single")
    if which not in {"none", "single", "chain"}:
        raise ApiError(400, "invalid_request", "Invalid parameter certificates.")
    certs = {"none": [], "single": [cert], "chain": [cert, *pki.material().chain]}[which]
    max_failures = settings.CHAVE_POLICY["signing_pin_max_failures"]
    payload = {
        "description": f"Chave signing credential of {credential.citizen.full_name}",
        "signatureQualifier": "eu_eidas_qes",
        "key": _key_info(credential, cert),
        "cert": {
            "status": "valid" if credential.is_active else "revoked",
            "certificates": [base64.b64encode(c.public_bytes(serialization.Encoding.DER)).decode() for c in certs],
        },
        "authMode": "explicit",
        "SCAL": "2",
        "multisign": settings.CHAVE_POLICY["signing_max_hashes"],
        "lang": "en",
        # v2: the objects to collect; v1: PIN and OTP presence.
        "auth": {"mode": "explicit", "expression": "PIN AND OTP", "objects": [
            {"type": "Password", "id": "PIN", "format": "N", "label": "Signing PIN",
             "description": f"Your Chave signing PIN ({max_failures} wrong PINs block signing)"},
            {"type": "Password", "id": "OTP", "format": "N", "generator": "chave", "label": "Security code",
             "description": "The code sent to you after credentials/sendOTP"},
        ]},
        "PIN": {"presence": "true", "format": "N", "label": "Signing PIN"},
        "OTP": {"presence": "true", "type": "online", "format": "N", "label": "Security code", "ID": "chave"},
    }
    if field(body, "certInfo", kind=bool, required=False, default=False):
        payload["cert"].update({
            "issuerDN": cert.issuer.rfc4514_string(), "serialNumber": f"{cert.serial_number:x}",
            "subjectDN": cert.subject.rfc4514_string(),
            "validFrom": cert.not_valid_before_utc.strftime("%Y%m%d%H%M%SZ"),
            "validTo": cert.not_valid_after_utc.strftime("%Y%m%d%H%M%SZ"),
        })
    return payload


def _key_info(credential, cert) -> dict:
    """CSC's ``key``: status, the algorithms it signs with (the key's own OID first, as CSC
    clients such as pyHanko take the first), its length and, for EC, its curve."""
    key_oid = services.KEY_OIDS[credential.key_algorithm]
    info = {"status": "enabled" if credential.is_active else "disabled",
            "algo": [key_oid, *sorted(services.sign_algorithm_oids(credential).values())],
            "len": cert.public_key().key_size}
    if credential.key_algorithm == KeyAlgorithm.EC_P256:
        info["curve"] = P256_OID
    return info


@endpoint("csc.credentials.info")
def credentials_info(request, body, party, ip):
    credential = _credential(body, party)
    return 200, _info(credential, body), credential.citizen


PIN_ERRORS = {
    "wrong": ("invalid_pin", "The signing PIN is wrong."),
    "must_change": ("invalid_pin", "Signing is blocked after too many wrong signing PINs: the citizen must choose "
                                   "a new signing PIN in the personal area."),
    "not_active": ("invalid_request", "Signing is not active for this credential."),
    "throttled": ("access_denied", "Too many attempts from this client: try again later."),
}


def _refuse(reason: str, credential, attempts_left: int = 0):
    error, description = PIN_ERRORS.get(reason, ("invalid_request", "Refused."))
    extra = {"remaining_attempts": attempts_left} if reason == "wrong" else {}
    if reason == "wrong":
        description += f" Attempts left: {attempts_left}."
    e = ApiError(400 if reason != "throttled" else 429, error, description, **extra)
    e.citizen = credential.citizen
    return e


@endpoint("csc.credentials.sendOTP")
def send_otp(request, body, party, ip):
    credential = _credential(body, party)
    description = field(body, "description", required=False, default="")[:MAX_DESCRIPTION]
    started = services.start_request(
        credential, via=VIA, documents=[description or f"documents from {party.name}"], hashes=None,
        client_id=party.client_id, client_name=party.name, ip=ip)
    if not started.ok:
        if started.reason == "code_not_sent":
            e = ApiError(429, "access_denied", "The code could not be sent now: try again later.")
            e.citizen = credential.citizen
            raise e
        raise _refuse(started.reason, credential)
    return 204, None, credential.citizen


@endpoint("csc.credentials.authorize")
def authorize(request, body, party, ip):
    credential = _credential(body, party)
    # v1 clients send the hashes alone (CSC v1 has no algorithm there): the digests' length names
    # it (32, 48 or 64 bytes: SHA-256, SHA-384 or SHA-512), as for pyHanko's CSC client, which
    # takes SHA-384 for a 3072-bit RSA key.
    oid = field(body, "hashAlgorithmOID", "hashAlgo", required=False)
    if oid is None:
        oid = services.DIGESTS[services.algorithm_by_length(field(body, "hashes", "hash", kind=list))][0]
    if oid not in services.DIGEST_BY_OID:
        raise ApiError(400, "invalid_request", "Unsupported hashAlgorithmOID.")
    algorithm = services.DIGEST_BY_OID[oid]
    hashes = _hashes(body, algorithm)
    num = field(body, "numSignatures", kind=int)
    if num != len(hashes):
        raise ApiError(400, "invalid_request", "numSignatures does not match the number of hashes.")
    pin = field(body, "PIN")
    otp = field(body, "OTP")
    pending = services.latest_request(credential, via=VIA, client_id=party.client_id)
    if pending is None or pending.status != SigningRequest.Status.CODE_SENT:
        e = ApiError(400, "invalid_otp", "No code is pending for this credential: call credentials/sendOTP first.")
        e.citizen = credential.citizen
        raise e
    result = services.authorise(pending, code=otp, pin=pin, hashes=hashes, hash_algorithm=algorithm, ip=ip)
    if not result.ok:
        if result.reason in {"wrong_code", "code_expired"}:
            description = (f"The OTP is invalid. Attempts left: {result.attempts_left}."
                           if result.reason == "wrong_code" else "The OTP has expired: call credentials/sendOTP again.")
            e = ApiError(400, "invalid_otp", description,
                         **({"remaining_attempts": result.attempts_left} if result.reason == "wrong_code" else {}))
            e.citizen = credential.citizen
            raise e
        if result.reason == "hashes_differ":
            raise ApiError(400, "invalid_request", "The hashes differ from those the code was sent for.")
        raise _refuse(result.reason, credential, result.attempts_left)
    return 200, {"SAD": result.sad, "expiresIn": settings.CHAVE_POLICY["signing_authorisation_seconds"]}, \
        credential.citizen


@endpoint("csc.signatures.signHash")
def sign_hash(request, body, party, ip):
    credential = _credential(body, party)
    algorithm = _hash_algorithm(body, credential)
    hashes = _hashes(body, algorithm)
    sign_algo = field(body, "signAlgo")
    if sign_algo not in {services.KEY_OIDS[credential.key_algorithm], services.sign_algorithm_oids(credential)[algorithm]}:
        kind = "RSA (PKCS#1 v1.5)" if credential.key_algorithm == KeyAlgorithm.RSA_3072 else "ECDSA"
        raise ApiError(400, "invalid_request", f"Invalid parameter signAlgo: the key signs with {kind}.")
    operation_mode = field(body, "operationMode", required=False, default="S")
    if operation_mode != "S":
        raise ApiError(400, "invalid_request", "Only synchronous operation (operationMode S) is offered.")
    sad = field(body, "SAD")
    signed = services.sign_hashes(credential, sad, hashes, client_id=party.client_id, hash_algorithm=algorithm, ip=ip)
    if not signed.ok:
        description = {
            "sad_expired": "The SAD has expired.",
            "hashes_differ": "The hashes differ from those the SAD authorises.",
            "not_active": "Signing is not active for this credential.",
        }.get(signed.reason, "Invalid SAD.")
        e = ApiError(400, "invalid_request", description)
        e.citizen = credential.citizen
        raise e
    return 200, {"signatures": [base64.b64encode(s).decode() for s in signed.signatures]}, credential.citizen
