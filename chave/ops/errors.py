"""Answering while the database is away: 503 with ``Retry-After``, never a 500.

When PostgreSQL restarts (or fails over, or SQLite stays locked past its timeout), a request in
flight gets ``OperationalError`` or ``InterfaceError`` from Django. Its transaction is rolled back
by the database, so nothing it did is half-written; what the citizen, the portal or the load
balancer should hear is "not now, try again in a few seconds": 503 with ``Retry-After``
(``unavailable_retry_after_seconds``), a plain page in both languages for a browser and JSON
(``temporarily_unavailable``, as OAuth names it) for an API client. Django drops a connection
that failed at the end of the request, so the next request connects afresh: the service recovers
by itself once the database is back.

Two doors lead here: :class:`DatabaseUnavailableMiddleware` for what a view raises (DEBUG or not),
and :func:`server_error`, the project's ``handler500``, for what the middleware raises around it
(saving a session). Any other error is the plain 500 page it always was.
"""

from __future__ import annotations

import json
import logging
import sys

from django.db import InterfaceError, OperationalError
from django.http import HttpResponse, HttpResponseServerError
from django.template import loader

from chave import policy
from chave.identity.pins import PepperUnavailable

log = logging.getLogger("chave.ops")

# The HSM that computes the PIN pepper gone (or its key missing) is the same kind of outage: no PIN
# can be checked, nothing was written, the citizen should try again shortly.
UNAVAILABLE = (OperationalError, InterfaceError, PepperUnavailable)


# Paths whose clients are programs (integrators, portals' servers): they get JSON.
API_PATHS = ("/api/", "/csc/", "/oidc/token", "/oidc/userinfo", "/health/")


def _wants_html(request) -> bool:
    accept = request.headers.get("Accept", "")
    if "text/html" in accept:
        return True
    return not ("json" in accept or request.path.startswith(API_PATHS))


def unavailable_response(request) -> HttpResponse:
    seconds = policy.get("unavailable_retry_after_seconds")
    if _wants_html(request):
        # No context processors: they would ask the database that is not there.
        response = HttpResponse(loader.get_template("503.html").render({"seconds": seconds}), status=503)
    else:
        response = HttpResponse(json.dumps({
            "error": "temporarily_unavailable",
            "error_description": "The service is briefly unavailable; try again shortly.",
        }), status=503, content_type="application/json")
    response["Retry-After"] = str(seconds)
    response["Cache-Control"] = "no-store"
    return response


class DatabaseUnavailableMiddleware:
    """A view that lost its database answers 503 + Retry-After."""

    def __init__(self, get_response):
        self.get_response = get_response

    def __call__(self, request):
        return self.get_response(request)

    def process_exception(self, request, exception):
        if isinstance(exception, UNAVAILABLE):
            log.warning("database or HSM unavailable during %s %s (%s): answered 503", request.method, request.path,
                        exception.__class__.__name__)
            return unavailable_response(request)
        return None


def server_error(request, *args, **kwargs):
    """``handler500``: 503 when the error was the database going away, Chave's 500 page otherwise."""
    error = sys.exc_info()[1]
    if isinstance(error, UNAVAILABLE):
        return unavailable_response(request)
    return HttpResponseServerError(loader.get_template("500.html").render())
