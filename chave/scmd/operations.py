"""The six SCMD operations, translated onto the one signing core (``chave.signing.services``).

Each takes the integrator and the operation's (schema-valid) element and returns the answer's
bytes. Result codes (``SignStatus.Code``) are those of the specification (annex 4.1) and
``shared/domain.md``: 200 ok; 800 an invalid parameter (``Field`` names it: an ApplicationId that
is not the credentials' own, a field that does not decrypt under Chave's encryption certificate,
a hash that is not a SHA-256/384/512 DigestInfo); 801 wrong signing PIN; 802 invalid code; 816
code expired or process not found (or already used); 817 signing not active (no code is sent);
818 the citizen's signing key is ECDSA, which SCMD cannot return (use the CSC API); 900 generic
error, also too many documents (more than ``signing_max_hashes``); 901 the signing PIN was just
blocked and 902 it still is (the specification's fixed texts, naming Chave's personal area).

``GetCertificate`` answers a string, so its refusals are SOAP Faults whose ``detail`` carries the
same ``SignStatus``; an unknown number or one without signing gets an empty (nil) result, as
from the Portuguese service.
"""

from __future__ import annotations

from django.conf import settings
from django.core.exceptions import ValidationError
from django.utils.translation import gettext as _

from chave.identity.models import ContactKind
from chave.identity.services import find_key_by_contact
from chave.identity.validation import parse_mobile
from chave.signing import services as signing
from chave.signing.models import KeyAlgorithm, SigningRequest

from . import encryption, services
from .soap import TNS, Fault, Status, binary, certificate_answer, child, is_nil, sign_response_answer, status_answer, text

VIA = SigningRequest.Via.SCMD
OK, INVALID, WRONG_PIN, WRONG_CODE, EXPIRED, INACTIVE, NOT_RSA = 200, 800, 801, 802, 816, 817, 818
GENERIC, PIN_BLOCKED, PIN_MUST_CHANGE = 900, 901, 902
MAX_NAME = 200


class Refused(Exception):
    def __init__(self, status: Status):
        super().__init__(status.message)
        self.status = status


def _site() -> str:
    return settings.CHAVE_PUBLIC_URL.split("://", 1)[-1].rstrip("/")


def message(code: int, **values) -> str:
    """The message of a result code, in the request's language (pt-PT unless asked otherwise).
    901 and 902 are the specification's texts, word for word but for Chave's names and address."""
    texts = {
        OK: _("The code was sent to the citizen."),
        WRONG_PIN: _("The signing PIN is wrong (attempts left: %(left)s)."),
        WRONG_CODE: _("The security code is wrong (attempts left: %(left)s)."),
        EXPIRED: _("The security code expired, was already used, or the process does not exist: start again."),
        INACTIVE: _("Digital signature is not active for this mobile number. The citizen can activate it in "
                    "Chave's personal area or at a counter."),
        NOT_RSA: _("This citizen's signing key is ECDSA (P-256), which the SCMD service cannot use: sign through "
                   "Chave's CSC API (/csc/v2/), or ask the citizen to activate signing again."),
        GENERIC: _("The request could not be processed."),
        PIN_BLOCKED: _("To keep using Chave's signature, you must change your signing PIN. To change it, just sign "
                       "in with Chave at %(site)s."),
        PIN_MUST_CHANGE: _("To keep using Chave's signature, you must change your signing PIN at %(site)s. Sign in, "
                           "go to \"Personal area -> Digital signature: sign PDF documents\" and choose "
                           "\"Change the signing PIN\"."),
    }
    return texts[code] % {"site": _site(), **values} if code in (PIN_BLOCKED, PIN_MUST_CHANGE) or values \
        else texts[code]


def _invalid(field: str, why: str, value: str | None = None) -> Refused:
    return Refused(Status(INVALID, why, field=field, field_value=value))


def _own_application(integrator, application_id: bytes | None, field: str) -> None:
    if not services.owns(integrator, application_id):
        raise _invalid(field, _("The ApplicationId is not the one of these credentials."))


def _decrypt(value: str | None, field: str) -> str:
    try:
        return encryption.decrypt(value)
    except encryption.Undecryptable:
        raise _invalid(field, _("The field %(field)s does not decrypt with Chave's encryption certificate "
                                "(/scmd/encryption.crt).") % {"field": field}) from None


def _credential(user_id: str, field: str):
    """The active signing credential of the citizen with this mobile number (None when none), and
    the citizen when known."""
    try:
        phone = parse_mobile(user_id)
    except ValidationError:
        raise _invalid(field, _("The %(field)s is not a mobile number such as \"+351 912345678\".") % {
            "field": field}) from None
    key = find_key_by_contact(ContactKind.MOBILE, phone)
    citizen = key.citizen if key else None
    return signing.active_credential(citizen), citizen


def _usable_for_scmd(credential) -> None:
    if credential is None:
        raise Refused(Status(INACTIVE, message(INACTIVE)))
    if credential.key_algorithm != KeyAlgorithm.RSA_3072:
        raise Refused(Status(NOT_RSA, message(NOT_RSA)))


def _hash(value: bytes | None, field: str) -> str:
    try:
        return signing.parse_digest_infos([value or b""])[0]
    except signing.BadHashes:
        raise _invalid(field, _("The hash must be a DigestInfo: the SHA-256, SHA-384 or SHA-512 algorithm prefix "
                                "followed by the digest (RFC 8017, 9.2).")) from None


def _started(started: signing.Started) -> Status:
    if started.ok:
        return Status(OK, message(OK), process_id=started.request.process_id)
    decision = started.pin
    if started.reason == "not_active":
        return Status(INACTIVE, message(INACTIVE))
    if started.reason == "must_change":
        return Status(PIN_BLOCKED if decision and decision.just_blocked else PIN_MUST_CHANGE,
                      message(PIN_BLOCKED if decision and decision.just_blocked else PIN_MUST_CHANGE))
    if started.reason == "wrong":
        return Status(WRONG_PIN, message(WRONG_PIN, left=decision.attempts_left))
    if started.reason == "throttled":
        return Status(GENERIC, _("Too many signing PIN attempts from this integrator: try again later."))
    if started.reason == "code_not_sent":
        return Status(GENERIC, _("The code could not be sent to the citizen now: try again later."))
    return Status(GENERIC, message(GENERIC))


class Call:
    """One operation call: who, from where, and the citizen once known (for the audit)."""

    def __init__(self, integrator, ip: str | None):
        self.integrator, self.ip, self.citizen, self.code = integrator, ip, None, None

    def run(self, operation: str, element) -> bytes:
        handler = getattr(self, operation)
        try:
            answer = handler(element)
        except Refused as refusal:
            self.code = refusal.status.code
            if operation == "GetCertificate":
                raise Fault(refusal.status.message, status=refusal.status) from None
            if operation == "ValidateOtp":
                return sign_response_answer(refusal.status)
            return status_answer(operation, refusal.status)
        return answer

    def _start(self, operation: str, *, user_id, pin, documents, hashes, document_ids=None,
               fields=("UserId", "Pin")) -> bytes:
        credential, self.citizen = _credential(_decrypt(user_id, fields[0]), fields[0])
        pin = _decrypt(pin, fields[1])
        _usable_for_scmd(credential)
        if signing.too_many(hashes):
            raise Refused(Status(GENERIC, _("Too many documents to sign: at most %(max)s at once.") % {
                "max": settings.CHAVE_POLICY["signing_max_hashes"]}))
        status = _started(signing.start_request(
            credential, via=VIA, documents=documents, hashes=hashes, hash_algorithm=signing.DIGEST_INFO,
            document_ids=document_ids, client_id=self.integrator.client_id, client_name=self.integrator.name,
            pin=pin, ip=self.ip))
        self.code = status.code
        return status_answer(operation, status)

    # --- The operations ---------------------------------------------------------------------

    def GetCertificate(self, element) -> bytes:
        _own_application(self.integrator, binary(element, "applicationId", TNS), "applicationId")
        credential, self.citizen = _credential(_decrypt(text(element, "userId", TNS), "userId"), "userId")
        if credential is None:
            self.code = INACTIVE
            return certificate_answer(None)
        _usable_for_scmd(credential)
        self.code = OK
        return certificate_answer("".join(signing.chain_pem(credential)))

    def GetCertificateWithPin(self, element) -> bytes:
        _own_application(self.integrator, binary(element, "applicationId", TNS), "applicationId")
        return self._start("GetCertificateWithPin", user_id=text(element, "userId", TNS), pin=text(element, "pin", TNS),
                           documents=[_("your signing certificate")], hashes=[], fields=("userId", "pin"))

    def SCMDSign(self, element) -> bytes:
        request = child(element, "request", TNS)
        if is_nil(request):
            raise _invalid("request", _("The request is missing."))
        _own_application(self.integrator, binary(request, "ApplicationId"), "ApplicationId")
        digest_info = _hash(binary(request, "Hash"), "Hash")
        name = (text(request, "DocName") or "").strip()[:MAX_NAME] or _("a document from %(integrator)s") % {
            "integrator": self.integrator.name}
        return self._start("SCMDSign", user_id=text(request, "UserId"), pin=text(request, "Pin"),
                           documents=[name], hashes=[digest_info])

    def SCMDMultipleSign(self, element) -> bytes:
        request, array = child(element, "request", TNS), child(element, "documents", TNS)
        if is_nil(request):
            raise _invalid("request", _("The request is missing."))
        _own_application(self.integrator, binary(request, "ApplicationId"), "ApplicationId")
        items = [] if is_nil(array) else [i for i in array if isinstance(i.tag, str)]
        if not items:
            raise _invalid("documents", _("There are no documents to sign."))
        if signing.too_many(items):
            raise Refused(Status(GENERIC, _("Too many documents to sign: at most %(max)s at once.") % {
                "max": settings.CHAVE_POLICY["signing_max_hashes"]}))
        hashes, names, ids = [], [], []
        for n, item in enumerate(items):
            if is_nil(item):
                raise _invalid(f"HashStructure[{n}]", _("A document is empty."))
            hashes.append(_hash(binary(item, "Hash"), f"HashStructure[{n}].Hash"))
            names.append((text(item, "Name") or "").strip()[:MAX_NAME] or _("document %(n)s") % {"n": n + 1})
            ids.append((text(item, "id") or "")[:MAX_NAME])
        return self._start("SCMDMultipleSign", user_id=text(request, "UserId"), pin=text(request, "Pin"),
                           documents=names, hashes=hashes, document_ids=ids)

    def _process(self, element):
        pending = signing.find_request(text(element, "processId", TNS), via=VIA, client_id=self.integrator.client_id)
        if pending is None:
            raise Refused(Status(EXPIRED, message(EXPIRED)))
        self.citizen = pending.credential.citizen
        return pending

    def ValidateOtp(self, element) -> bytes:
        _own_application(self.integrator, binary(element, "applicationId", TNS), "applicationId")
        pending = self._process(element)
        code = _decrypt(text(element, "code", TNS), "code")
        result = signing.authorise(pending, code=code, ip=self.ip)
        if not result.ok:
            if result.reason == "wrong_code":
                raise Refused(Status(WRONG_CODE, message(WRONG_CODE, left=result.attempts_left),
                                     process_id=pending.process_id))
            if result.reason in {"code_expired", "not_pending"}:
                raise Refused(Status(EXPIRED, message(EXPIRED), process_id=pending.process_id))
            if result.reason == "not_active":
                raise Refused(Status(INACTIVE, message(INACTIVE)))
            if result.reason == "must_change":
                raise Refused(Status(PIN_MUST_CHANGE, message(PIN_MUST_CHANGE)))
            raise Refused(Status(GENERIC, message(GENERIC), process_id=pending.process_id))
        signed = signing.sign_hashes(pending.credential, result.sad, pending.hashes,
                                     client_id=self.integrator.client_id, ip=self.ip)
        if not signed.ok:
            raise Refused(Status(GENERIC, message(GENERIC), process_id=pending.process_id))
        self.code = OK
        status = Status(OK, _("Signed.") if pending.hashes else _("The certificate was released."),
                        process_id=pending.process_id)
        certificate = "".join(signing.chain_pem(pending.credential))
        if not pending.hashes:
            return sign_response_answer(status, certificate=certificate)
        if pending.document_ids:
            return sign_response_answer(status, certificate=certificate, documents=list(zip(
                signed.signatures, pending.documents, pending.document_ids, strict=True)))
        return sign_response_answer(status, certificate=certificate, signature=signed.signatures[0])

    def ForceSMS(self, element) -> bytes:
        _own_application(self.integrator, binary(element, "applicationId", TNS), "applicationId")
        pending = self._process(element)
        citizen_id = _decrypt(text(element, "citizenId", TNS), "citizenId")
        mobile = pending.credential.key.contacts.filter(kind=ContactKind.MOBILE, live=True).values_list(
            "value", flat=True).first()
        try:
            same = mobile is not None and parse_mobile(citizen_id) == mobile
        except ValidationError:
            same = False
        if not same:
            raise _invalid("citizenId", _("The citizenId is not the mobile number of this process."))
        issue = signing.resend_code(pending, ip=self.ip)
        if issue.sent:
            self.code = OK
            return status_answer("ForceSMS", Status(OK, message(OK), process_id=pending.process_id))
        if issue.reason == "not_pending":
            raise Refused(Status(EXPIRED, message(EXPIRED), process_id=pending.process_id))
        if issue.reason == "cooldown" and issue.retry_at is not None:
            from chave import clock

            wait = max(1, int((issue.retry_at - clock.now()).total_seconds() + 0.999))
            why = _("A new code can be sent %(seconds)s seconds after the last one.") % {"seconds": wait}
        elif issue.reason == "too_many_sends":
            why = _("No more codes can be sent for this process: start again.")
        else:
            why = _("The code could not be sent to the citizen now: try again later.")
        raise Refused(Status(GENERIC, why, process_id=pending.process_id))
