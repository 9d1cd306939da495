"""``/scmd/SCMDService.svc``: the SOAP endpoint (POST) and its WSDL (``?wsdl``); the encryption
certificate at ``/scmd/encryption.crt``.

Before any XML is read: HTTP Basic credentials of an active integrator (401 with
``WWW-Authenticate`` otherwise; an address sending bad credentials is throttled like one sending
bad tokens to the other signing APIs, before any credential is looked up), the integrator's call
limit (``signing_api_per_client``), and the envelope's size (413 before reading when its length
says too much). Refusals at this level carry a SOAP Fault, so SOAP clients show its text. Faults
answer 400 rather than SOAP 1.1's 500: they are the sender's, and a 500 would page the operators
for someone else's malformed message (zeep and other clients read the fault from any status).
Every call is audited as ``signing.api`` with the operation, the integrator, the HTTP status and
the result code; never a field's value.
"""

from __future__ import annotations

import io

from django.conf import settings
from django.http import HttpResponse
from django.urls import reverse
from django.views.decorators.csrf import csrf_exempt

from chave import policy
from chave.audit import services as audit
from chave.login.services import client_ip
from chave.signing.api import BAD_TOKEN_PER_IP, PER_CLIENT, ApiError, copy_body
from chave.throttle import services as throttle

from . import encryption, services, soap
from .operations import Call

REALM = 'Basic realm="SCMDService", charset="UTF-8"'


def _soap(body: bytes, status: int = 200) -> HttpResponse:
    response = HttpResponse(body, status=status, content_type=soap.CONTENT_TYPE)
    response["Cache-Control"] = "no-store"
    return response


def _fault(fault: soap.Fault, **headers) -> HttpResponse:
    response = _soap(soap.fault_answer(fault), fault.http_status)
    for name, value in headers.items():
        response[name.replace("_", "-")] = value
    return response


def service_address() -> str:
    return settings.CHAVE_PUBLIC_URL.rstrip("/") + reverse("scmd:service")


@csrf_exempt
def service(request):
    if request.method in ("GET", "HEAD"):
        if {key.lower() for key in request.GET} & {"wsdl", "singlewsdl"}:
            response = HttpResponse(soap.wsdl_document(service_address()), content_type=soap.CONTENT_TYPE)
            response["Cache-Control"] = "public, max-age=3600"
            return response
        return HttpResponse(f"Chave SCMD signature service (SOAP 1.1). WSDL: {service_address()}?wsdl\n"
                            f"Encryption certificate: {settings.CHAVE_PUBLIC_URL.rstrip('/')}"
                            f"{reverse('scmd:encryption_certificate')}\n", content_type="text/plain; charset=utf-8")
    if request.method != "POST":
        response = _fault(soap.Fault("Use POST for SOAP calls, GET ?wsdl for the WSDL.", http_status=405))
        response["Allow"] = "GET, HEAD, POST"
        return response
    ip = client_ip(request)
    integrator, operation, call, rule = None, "", None, None
    try:
        gate = throttle.check((BAD_TOKEN_PER_IP, ip or ""))
        integrator = services.authenticate(request.headers.get("Authorization", "")) if gate.allowed else None
        if integrator is None:
            if gate.allowed:
                gate = throttle.hit((BAD_TOKEN_PER_IP, ip or ""))
            if not gate.allowed:
                rule = gate.rule
                response = _fault(soap.Fault("Too many calls without valid credentials from this address: try again "
                                             "later.", http_status=429), Retry_After=str(gate.retry_after_seconds))
            else:
                response = _fault(soap.Fault("Valid HTTP Basic credentials of an SCMD integrator are required.",
                                             http_status=401), WWW_Authenticate=REALM)
        else:
            gate = throttle.hit((PER_CLIENT, integrator.client_id))
            if not gate.allowed:
                rule = gate.rule
                response = _fault(soap.Fault("Too many calls from this integrator: try again later.", http_status=429),
                                  Retry_After=str(gate.retry_after_seconds))
            else:
                buffer = io.BytesIO()
                try:
                    copy_body(request, buffer, policy.get("scmd_max_envelope_bytes"))
                except ApiError:
                    raise soap.Fault("The message is too large.", http_status=413) from None
                operation, element = soap.read_request(buffer.getvalue(), request.headers.get("SOAPAction"))
                call = Call(integrator, ip)
                response = _soap(call.run(operation, element))
    except soap.Fault as fault:
        response = _fault(fault)
    audit.record("signing.api", outcome=str(response.status_code), citizen=call.citizen if call else None, ip=ip,
                 endpoint=f"scmd.{operation}" if operation else "scmd", throttle=rule,
                 client_id=integrator.client_id if integrator else None,
                 result=call.code if call and call.code is not None else None)
    return response


def encryption_certificate(request):
    """The certificate integrators encrypt ``UserId``, ``Pin``, the code and ``citizenId`` under (PEM)."""
    response = HttpResponse(encryption.certificate_pem(), content_type="application/x-pem-file")
    response["Content-Disposition"] = 'inline; filename="chave-scmd-encryption.crt"'
    response["Cache-Control"] = "public, max-age=3600"
    return response
