"""What the integrator APIs (CSC v2 and the CMD-style flow) share: JSON in and out, the service
token check, and an audit event for every call.

:func:`endpoint` wraps a view ``view(request, body, party) -> (status, payload, citizen)``: it
refuses anything but a JSON object POST (``GET`` too where allowed), finds the integrator behind
the bearer token (401 without one, unless the endpoint is public), and audits the call as
``signing.api`` with the endpoint, the integrator, the HTTP status and the citizen when known.

Every authenticated call counts against ``signing_api_per_client`` (by the OAuth client of the
token); calls without a valid token count against ``signing_api_bad_token_per_ip``, and a client
IP over that limit is refused before its token is even looked up, so that nobody can try tokens
faster than the limit allows. Above either: 429 with ``Retry-After``, audited with the throttle.
Request bodies are read in chunks up to a limit (:func:`copy_body`): a ``Content-Length`` above
it is refused before anything is read.
"""

from __future__ import annotations

import functools
import io
import json
from pathlib import Path

from django.http import HttpResponse, JsonResponse
from django.views.decorators.csrf import csrf_exempt

from chave.audit import services as audit
from chave.login.services import client_ip
from chave.throttle import services as throttle

from . import integrators

OPENAPI_DIR = Path(__file__).resolve().parent / "openapi"
MAX_BODY_BYTES = 256 * 1024
BODY_CHUNK_BYTES = 64 * 1024
PER_CLIENT = "signing_api_per_client"
BAD_TOKEN_PER_IP = "signing_api_bad_token_per_ip"


class ApiError(Exception):
    def __init__(self, status: int, error: str, description: str, **extra):
        super().__init__(description)
        self.status, self.error, self.description, self.extra = status, error, description, extra
        self.headers: dict[str, str] = {}


def _dpop_refusal(error) -> ApiError:
    """401 for a DPoP-bound token whose proof is not right: the ``WWW-Authenticate: DPoP`` challenge
    saying why, and a fresh ``DPoP-Nonce`` (RFC 9449 §7.1, §9), as userinfo answers."""
    from chave.oidc import dpop

    refusal = ApiError(401, error.error, error.description)
    refusal.headers = dpop.error_headers(error, resource=True)
    return refusal


class Throttled(ApiError):
    """429: a named throttle refused; ``Retry-After`` says when the oldest counted call expires."""

    def __init__(self, decision: throttle.ThrottleDecision, description: str):
        super().__init__(429, "access_denied", description)
        self.rule = decision.rule
        self.retry_after = decision.retry_after_seconds


def _json(status: int, payload) -> HttpResponse:
    if status == 204:
        response = HttpResponse(status=204)
    else:
        response = JsonResponse(payload, status=status, json_dumps_params={"ensure_ascii": False})
    response["Cache-Control"] = "no-store"
    return response


def refusal(e: ApiError, body: dict | None = None) -> HttpResponse:
    """The JSON answer for ``e`` (``body`` in the API's own error shape; CSC's by default)."""
    response = _json(e.status, body or {"error": e.error, "error_description": e.description, **e.extra})
    if e.status == 401:
        response["WWW-Authenticate"] = 'Bearer error="invalid_token"'
    for name, value in e.headers.items():
        response[name] = value
    if isinstance(e, Throttled):
        response["Retry-After"] = str(e.retry_after)
    return response


def copy_body(request, out, limit: int, *, too_large: str = "The request is too large.") -> int:
    """Copy the request body into ``out`` in chunks and return its size; 413 (:class:`ApiError`)
    when ``Content-Length`` says more than ``limit`` (before reading a byte) or when the body
    turns out longer (a missing or understated length: at most ``limit + 1`` bytes are read)."""
    declared = request.META.get("CONTENT_LENGTH") or ""
    if declared.isdigit() and int(declared) > limit:
        raise ApiError(413, "invalid_request", too_large)
    size = 0
    while chunk := request.read(min(BODY_CHUNK_BYTES, limit + 1 - size)):
        size += len(chunk)
        if size > limit:
            raise ApiError(413, "invalid_request", too_large)
        out.write(chunk)
    return size


def _integrator(request, ip):
    """The party behind the bearer token; 401, or 429 once this IP sent too many bad tokens."""
    from chave.oidc import dpop

    gate = throttle.check((BAD_TOKEN_PER_IP, ip or ""))
    try:
        party = integrators.authenticate(request) if gate.allowed else None
    except dpop.DpopError as error:
        if error.error == "use_dpop_nonce":
            raise _dpop_refusal(error) from None  # the round trip every DPoP client makes: not a bad token
        gate = throttle.hit((BAD_TOKEN_PER_IP, ip or ""))
        if not gate.allowed:
            raise Throttled(gate, "Too many calls without a valid token from this address: try again later.") from None
        raise _dpop_refusal(error) from None
    if party is None:
        if gate.allowed:
            gate = throttle.hit((BAD_TOKEN_PER_IP, ip or ""))
        if not gate.allowed:
            raise Throttled(gate, "Too many calls without a valid token from this address: try again later.")
        raise ApiError(401, "invalid_token", "A valid bearer token of scope csc is required.")
    return party


def _next_dpop_nonce(request, response) -> None:
    """RFC 9449 §8.2, §9: a resource may give the next nonce with any answer to a DPoP call."""
    from chave.oidc import dpop

    if dpop.presented(request) is not None and dpop.nonce_required():
        response["DPoP-Nonce"] = dpop.current_nonce()


def _json_body(request) -> dict:
    buffer = io.BytesIO()
    if not copy_body(request, buffer, MAX_BODY_BYTES):
        return {}
    try:
        body = json.loads(buffer.getvalue())
    except (ValueError, RecursionError):  # ValueError covers UnicodeDecodeError; RecursionError: too deeply nested
        raise ApiError(400, "invalid_request", "The body is not JSON.") from None
    if not isinstance(body, dict):
        raise ApiError(400, "invalid_request", "The body is a JSON object.")
    if _has_nul(body):
        raise ApiError(400, "invalid_request", "Strings in the body may not contain the NUL character.")
    return body


def _has_nul(value) -> bool:
    """Whether a string anywhere in ``value`` holds "\\u0000" (PostgreSQL stores no NUL in text or
    jsonb: it would fail the request later). Iterative: the body may be nested as deep as JSON
    parsing allowed."""
    pending = [value]
    while pending:
        item = pending.pop()
        if isinstance(item, str):
            if "\x00" in item:
                return True
        elif isinstance(item, dict):
            pending.extend(item.keys())
            pending.extend(item.values())
        elif isinstance(item, list):
            pending.extend(item)
    return False


def endpoint(name: str, *, public: bool = False, allow_get: bool = False, error_body=None):
    """``error_body(ApiError) -> dict`` shapes refusals (CSC: ``error`` + ``error_description``)."""

    def decorate(view):
        @csrf_exempt
        @functools.wraps(view)
        def wrapped(request):
            ip = client_ip(request)
            party = rule = None
            try:
                if request.method not in ({"POST", "GET"} if allow_get else {"POST"}):
                    raise ApiError(405, "invalid_request", "Use POST.")
                if not public:
                    party = _integrator(request, ip)
                    gate = throttle.hit((PER_CLIENT, party.client_id))
                    if not gate.allowed:
                        raise Throttled(gate, "Too many calls from this integrator: try again later.")
                body = _json_body(request) if request.method == "POST" else {}
                status, payload, citizen = view(request, body, party, ip)
                response = _json(status, payload)
                _next_dpop_nonce(request, response)
            except ApiError as e:
                status, citizen, rule = e.status, getattr(e, "citizen", None), getattr(e, "rule", None)
                response = refusal(e, error_body(e) if error_body else None)
            audit.record("signing.api", outcome=str(status), citizen=citizen, ip=ip, endpoint=name,
                         client_id=party.client_id if party else None, throttle=rule)
            return response

        return wrapped

    return decorate


def openapi_document(filename: str):
    def view(request):
        return HttpResponse((OPENAPI_DIR / filename).read_bytes(), content_type="application/json")

    return view


def field(body: dict, *names: str, kind=str, required: bool = True, default=None):
    """The first of ``names`` present in ``body`` (v2 name first, then the v1 one), of ``kind``."""
    for name in names:
        if name in body and body[name] is not None:
            value = body[name]
            # Digits as a string are accepted for a number, but only ASCII ones ("²" is a digit to
            # str.isdigit, not to int) and no more than int() reads (4,300): else the wrong type.
            if kind is int and isinstance(value, str) and value.isascii() and value.isdigit() and len(value) <= 4300:
                value = int(value)
            if not isinstance(value, kind) or isinstance(value, bool) and kind is not bool:
                raise ApiError(400, "invalid_request", f"Invalid type for parameter {name}.")
            return value
    if required:
        raise ApiError(400, "invalid_request", f"Missing parameter {names[0]}.")
    return default
