"""A flow shaped like the Portuguese remote signature service (CMD), for integrators moving from it.

Under ``/api/signing/cmd/``, JSON, with a service token (``client_credentials``, scope ``csc``):

- ``certificate`` ``{userId}`` → the signing certificate chain (PEM) of the citizen with that
  mobile number (``GetCertificate``);
- ``sign`` ``{userId, pin, documents: [{name, hash}], hashAlgorithm}`` → ``processId``, and a code
  sent to the citizen naming the documents (``CCMovelSign`` / ``CCMovelMultipleSign``);
- ``resend`` ``{processId}`` → a new code (``ForceSMS``);
- ``validate`` ``{processId, code}`` → each document's signature and the certificate (``ValidateOtp``).

Every answer carries the service's result ``code`` (``domain.md``): 200 ok, 801 wrong PIN, 802
invalid code, 816 code expired or process not found, 817 signing not active, 900 generic error
or too many hashes, 901 signing PIN blocked now / 902 still blocked (must be changed).
"""

from __future__ import annotations

import base64

from django.core.exceptions import ValidationError

from chave.identity.models import ContactKind
from chave.identity.services import find_key_by_contact
from chave.identity.validation import parse_mobile

from . import services
from .api import ApiError, endpoint, field
from .models import SigningRequest

VIA = SigningRequest.Via.SCMD
MESSAGES = {
    200: "OK",
    801: "Wrong signing PIN.",
    802: "Invalid code.",
    816: "The code expired or the process does not exist.",
    817: "Signing is not active for this user.",
    900: "The request could not be processed.",
    901: "Too many wrong signing PINs: the signing PIN must be changed.",
    902: "The signing PIN must be changed before signing.",
}
MAX_NAME = 200


def _result(code: int, citizen=None, **data):
    return 200, {"code": code, "message": MESSAGES[code], **data}, citizen


def _error_body(e: ApiError) -> dict:
    # Transport-level refusals (no token, not JSON) keep HTTP statuses, with the generic result code.
    return {"code": 900, "message": e.description}


def _credential_of(user_id):
    try:
        phone = parse_mobile(user_id)
    except ValidationError:
        return None, None
    key = find_key_by_contact(ContactKind.MOBILE, phone)
    citizen = key.citizen if key else None
    return services.active_credential(citizen), citizen


def _pin_refusal(decision) -> int:
    if decision is None:
        return 900
    if decision.reason == "wrong":
        return 801
    if decision.reason == "must_change":
        return 901 if decision.just_blocked else 902
    return 817 if decision.reason == "not_active" else 900


@endpoint("cmd.certificate", error_body=_error_body)
def certificate(request, body, party, ip):
    credential, citizen = _credential_of(field(body, "userId"))
    if credential is None:
        return _result(817, citizen)
    return _result(200, citizen, certificates=services.chain_pem(credential))


@endpoint("cmd.sign", error_body=_error_body)
def sign(request, body, party, ip):
    credential, citizen = _credential_of(field(body, "userId"))
    pin = field(body, "pin")
    documents = field(body, "documents", kind=list)
    algorithm = field(body, "hashAlgorithm", required=False, default="sha256")
    if not documents or not all(isinstance(d, dict) for d in documents) or algorithm not in services.DIGESTS:
        return _result(900, citizen)
    if services.too_many(documents):
        return _result(900, citizen, detail="too many hashes")
    try:
        hashes = services.parse_hashes([d.get("hash") for d in documents], algorithm)
    except services.BadHashes:
        return _result(900, citizen)
    names = [str(d.get("name") or "documento")[:MAX_NAME] for d in documents]
    if credential is None:
        return _result(817, citizen)
    started = services.start_request(credential, via=VIA, documents=names, hashes=hashes, hash_algorithm=algorithm,
                                     client_id=party.client_id, client_name=party.name, pin=pin, ip=ip)
    if not started.ok:
        if started.reason == "not_active":
            return _result(817, citizen)
        if started.reason == "must_change" and started.pin is None:
            return _result(902, citizen)
        if started.pin is not None:
            extra = {"attemptsLeft": started.pin.attempts_left} if started.pin.reason == "wrong" else {}
            return _result(_pin_refusal(started.pin), citizen, **extra)
        return _result(900, citizen)
    return _result(200, citizen, processId=started.request.process_id)


def _request(body, party):
    return services.find_request(field(body, "processId"), via=VIA, client_id=party.client_id)


@endpoint("cmd.resend", error_body=_error_body)
def resend(request, body, party, ip):
    pending = _request(body, party)
    if pending is None:
        return _result(816)
    issue = services.resend_code(pending, ip=ip)
    if not issue.sent:
        return _result(816 if issue.reason == "not_pending" else 900, pending.credential.citizen, reason=issue.reason)
    return _result(200, pending.credential.citizen)


@endpoint("cmd.validate", error_body=_error_body)
def validate(request, body, party, ip):
    pending = _request(body, party)
    code = field(body, "code")
    if pending is None:
        return _result(816)
    citizen = pending.credential.citizen
    result = services.authorise(pending, code=code, ip=ip)
    if not result.ok:
        if result.reason == "wrong_code":
            return _result(802, citizen, attemptsLeft=result.attempts_left)
        if result.reason in {"code_expired", "not_pending"}:
            return _result(816, citizen)
        return _result(817 if result.reason == "not_active" else 900, citizen)
    signed = services.sign_hashes(pending.credential, result.sad, pending.hashes, client_id=party.client_id, ip=ip)
    if not signed.ok:
        return _result(900, citizen)
    return _result(200, citizen, certificate=services.chain_pem(pending.credential)[0], signatures=[
        {"name": name, "hash": digest, "signature": base64.b64encode(signature).decode()}
        for name, digest, signature in zip(pending.documents, pending.hashes, signed.signatures, strict=True)
    ])
