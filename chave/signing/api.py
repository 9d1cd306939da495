"""What the integrator APIs (CSC v2 and the CMD-style flow) share: JSON in and out, the service
token check, and an audit event for every call.

:func:`endpoint` wraps a view ``view(request, body, party) -> (status, payload, citizen)``: it
refuses anything but a JSON object POST (``GET`` too where allowed), finds the integrator behind
the bearer token (401 without one, unless the endpoint is public), and audits the call as
``signing.api`` with the endpoint, the integrator, the HTTP status and the citizen when known.
"""

from __future__ import annotations

import functools
import json
from pathlib import Path

from django.http import HttpResponse, JsonResponse
from django.views.decorators.csrf import csrf_exempt

from chave.audit import services as audit
from chave.login.services import client_ip

from . import integrators

MAX_BODY_BYTES = 256 * 1024
OPENAPI_DIR = Path(__file__).resolve().parent / "openapi"


class ApiError(Exception):
    def __init__(self, status: int, error: str, description: str, **extra):
        super().__init__(description)
        self.status, self.error, self.description, self.extra = status, error, description, extra


def _json(status: int, payload) -> HttpResponse:
    if status == 204:
        response = HttpResponse(status=204)
    else:
        response = JsonResponse(payload, status=status, json_dumps_params={"ensure_ascii": False})
    response["Cache-Control"] = "no-store"
    return response


def endpoint(name: str, *, public: bool = False, allow_get: bool = False, error_body=None):
    """``error_body(ApiError) -> dict`` shapes refusals (CSC: ``error`` + ``error_description``)."""

    def shape(e: ApiError) -> dict:
        if error_body is not None:
            return error_body(e)
        return {"error": e.error, "error_description": e.description, **e.extra}

    def decorate(view):
        @csrf_exempt
        @functools.wraps(view)
        def wrapped(request):
            ip = client_ip(request)
            party = None
            citizen = None
            try:
                if request.method not in ({"POST", "GET"} if allow_get else {"POST"}):
                    raise ApiError(405, "invalid_request", "Use POST.")
                if not public:
                    party = integrators.authenticate(request)
                    if party is None:
                        raise ApiError(401, "invalid_token", "A valid bearer token of scope csc is required.")
                body = {}
                if request.method == "POST" and request.body:
                    if len(request.body) > MAX_BODY_BYTES:
                        raise ApiError(413, "invalid_request", "The request is too large.")
                    try:
                        body = json.loads(request.body)
                    except (ValueError, UnicodeDecodeError):
                        raise ApiError(400, "invalid_request", "The body is not JSON.") from None
                    if not isinstance(body, dict):
                        raise ApiError(400, "invalid_request", "The body is a JSON object.")
                status, payload, citizen = view(request, body, party, ip)
            except ApiError as e:
                status, payload = e.status, shape(e)
                citizen = getattr(e, "citizen", None)
            audit.record("signing.api", outcome=str(status), citizen=citizen, ip=ip, endpoint=name,
                         client_id=party.client_id if party else None)
            response = _json(status, payload)
            if status == 401:
                response["WWW-Authenticate"] = 'Bearer error="invalid_token"'
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
            if kind is int and isinstance(value, str) and value.isdigit():
                value = int(value)
            if not isinstance(value, kind) or isinstance(value, bool) and kind is not bool:
                raise ApiError(400, "invalid_request", f"Invalid type for parameter {name}.")
            return value
    if required:
        raise ApiError(400, "invalid_request", f"Missing parameter {names[0]}.")
    return default
