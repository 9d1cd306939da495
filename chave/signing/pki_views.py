"""The signing PKI on Chave's own URLs (``/pki/signing/``): what certificates point to.

CA certificates (AIA caIssuers), CRLs (CRL distribution points), the OCSP responder (AIA OCSP,
RFC 6960: POST, or GET with the base64 request in the path) and the RFC 3161 time-stamp
authority (POST ``application/timestamp-query``). Machine endpoints: no session, no CSRF.

Each OCSP answer and time-stamp is signed in the HSM, so both are limited per client address
(``signing_ocsp_per_ip``: OCSP's own ``tryLater``; ``signing_tsa_per_ip``: 429 with
``Retry-After``). The sub-CA's CRL is signed once and kept in the cache until it is due or a
certificate is revoked (:func:`chave.signing.pki.crl_der`).
"""

from __future__ import annotations

import base64
import binascii
from urllib.parse import unquote


from cryptography.hazmat.primitives import serialization
from cryptography.x509 import ocsp as x509_ocsp
from django.http import HttpResponse
from django.views.decorators.csrf import csrf_exempt
from django.views.decorators.http import require_http_methods, require_safe

from chave.login.services import client_ip
from chave.throttle import services as throttle

from . import pki

MAX_REQUEST_BYTES = 64 * 1024


def _der(body: bytes, content_type: str, *, max_age: int = 0) -> HttpResponse:
    response = HttpResponse(body, content_type=content_type)
    response["Cache-Control"] = f"public, max-age={max_age}" if max_age else "no-store"
    return response


def _bad(message: str, status: int = 400) -> HttpResponse:
    return HttpResponse(message + "\n", status=status, content_type="text/plain; charset=utf-8")


@require_safe
def certificate(request, name: str):
    m = pki.material()
    cert = {"root": m.root, "ca": m.ca, "ocsp": m.ocsp, "tsa": m.tsa}[name]
    return _der(pki.der(cert), "application/pkix-cert", max_age=86400)


@require_safe
def ca_crl(request):
    return _der(pki.crl_der(), "application/pkix-crl", max_age=300)


@require_safe
def root_crl(request):
    return _der(pki.material().root_crl_der, "application/pkix-crl", max_age=3600)


@csrf_exempt
@require_http_methods(["GET", "POST"])
def ocsp(request, encoded: str = ""):
    if request.method == "POST":
        if request.content_type != "application/ocsp-request":
            return _bad("Send an application/ocsp-request.", 415)
        body = request.body[: MAX_REQUEST_BYTES + 1]
        if len(body) > MAX_REQUEST_BYTES:
            return _bad("The request is too large.", 413)
    else:
        try:
            body = base64.b64decode(unquote(encoded), validate=True)
        except (binascii.Error, ValueError):
            body = b""
    if not throttle.hit(("signing_ocsp_per_ip", client_ip(request) or "")).allowed:
        later = x509_ocsp.OCSPResponseBuilder.build_unsuccessful(x509_ocsp.OCSPResponseStatus.TRY_LATER)
        return _der(later.public_bytes(serialization.Encoding.DER), "application/ocsp-response")
    return _der(pki.ocsp_response_der(body), "application/ocsp-response")


@csrf_exempt
@require_http_methods(["POST"])
def tsa(request):
    if request.content_type != "application/timestamp-query":
        return _bad("Send an application/timestamp-query.", 415)
    if len(request.body) > MAX_REQUEST_BYTES:
        return _bad("The request is too large.", 413)
    decision = throttle.hit(("signing_tsa_per_ip", client_ip(request) or ""))
    if not decision.allowed:
        response = _bad("Too many time-stamp requests from this address: try again later.", 429)
        response["Retry-After"] = str(decision.retry_after_seconds)
        return response
    try:
        answer = pki.timestamp_response_der(request.body)
    except (ValueError, TypeError, KeyError):
        return _bad("This is not an RFC 3161 time-stamp request.")
    return _der(answer, "application/timestamp-reply")
