"""Pushed authorization requests (RFC 9126).

A portal posts its authorization request to ``/oidc/par``, authenticated as at the token endpoint;
Chave checks it as the authorization endpoint would and keeps it (:class:`PushedRequest`), answering
with a ``request_uri`` (``urn:ietf:params:oauth:request_uri:…``). The browser then comes to
``/oidc/authorize?client_id=…&request_uri=…``: the kept parameters are the request, and nothing
in the URL can change them.

The reference is random (only its hash is stored). It must be first used within
``oidc_par_seconds``; the browser that first used it keeps it (in its session) while the citizen
signs in and consents — the authorization endpoint is entered again then — for at most a login
transaction's lifetime; the code issued from it consumes it (single use).
"""

from __future__ import annotations

import copy
import datetime as dt
import secrets

from authlib.oauth2.rfc6749 import InvalidClientError, InvalidRequestError
from authlib.oidc.core.errors import ConsentRequiredError, LoginRequiredError
from django.http import QueryDict

from chave import clock, policy

from .models import PushedRequest, RelyingParty, token_hash

URN_PREFIX = "urn:ietf:params:oauth:request_uri:"
SESSION_PUSHED = "chave.oidc.pushed"
CLIENT_AUTH_METHODS = ["client_secret_basic", "private_key_jwt"]


def _as_get(request, parameters: dict[str, str]):
    """A copy of ``request`` that carries ``parameters`` as its query string (what the
    authorization endpoint's checks read)."""
    fake = copy.copy(request)
    query = QueryDict(mutable=True)
    for name, value in parameters.items():
        query[name] = value
    fake.GET, fake.method = query, "GET"
    fake._post = QueryDict()
    return fake


def push(request, *, dpop_jkt: str | None = None) -> tuple[str, int]:
    """Authenticate the client, check the request and keep it; returns (``request_uri``,
    lifetime in seconds). ``dpop_jkt``: the key of the DPoP proof the push came with, to which
    the code will be bound (RFC 9449 §10.1). Raises ``OAuth2Error`` (``invalid_client``,
    ``invalid_request``, ``invalid_scope``, ... as the authorization endpoint would, but never a
    redirect)."""
    from . import views
    from .server import server

    srv = server()
    oauth_request = srv.create_oauth2_request(request)
    oauth_request.chave_endpoint = "pushed_authorization_request"
    client: RelyingParty = srv.authenticate_client(oauth_request, CLIENT_AUTH_METHODS, "pushed_authorization_request")
    parameters = {name: request.POST[name] for name in request.POST}
    for name in ("client_assertion", "client_assertion_type", "client_secret"):
        parameters.pop(name, None)
    if parameters.get("client_id", client.client_id) != client.client_id:
        raise InvalidClientError(description="'client_id' does not match the client's credentials.")
    parameters["client_id"] = client.client_id
    if "request_uri" in parameters:
        raise InvalidRequestError("A pushed request may not itself carry 'request_uri'.")
    parameters = views.request_object_parameters(client, parameters)
    if dpop_jkt:
        if parameters.get("dpop_jkt", dpop_jkt) != dpop_jkt:
            raise InvalidRequestError("'dpop_jkt' is not the key of the DPoP proof.")
        parameters["dpop_jkt"] = dpop_jkt
    try:
        views.validate_authorization_request(_as_get(request, parameters),
                                             {name: [value] for name, value in parameters.items()})
    except (LoginRequiredError, ConsentRequiredError):
        pass  # prompt=none is answered when the browser comes (the citizen may be signed in then)
    now = clock.now()
    reference = secrets.token_urlsafe(32)
    lifetime = policy.get("oidc_par_seconds")
    # What can no longer be used is forgotten (unused past its lifetime, or past a login's length).
    PushedRequest.objects.filter(created_at__lt=now - dt.timedelta(
        seconds=lifetime + policy.get("login_transaction_seconds"))).delete()
    PushedRequest.objects.create(reference_hash=token_hash(reference), relying_party=client, parameters=parameters,
                                 created_at=now, expires_at=now + dt.timedelta(seconds=lifetime))
    return URN_PREFIX + reference, lifetime


class UnusableRequestUri(Exception):
    """The ``request_uri`` cannot be used: the citizen gets a page (no redirect URI is trusted)."""


def resolve(request, client_id: str | None, request_uri: str) -> PushedRequest:
    """The pushed request ``request_uri`` names, for this browser, bound to it at first use.

    Raises :class:`UnusableRequestUri` when it is not ours, unknown, of another client, used
    already, expired before its first use, or in use by another browser or for longer than a
    login transaction."""
    if not request_uri.startswith(URN_PREFIX) or not client_id:
        raise UnusableRequestUri("Only a 'request_uri' from Chave's pushed authorization request endpoint works here.")
    reference = request_uri.removeprefix(URN_PREFIX)
    row = PushedRequest.objects.select_related("relying_party").filter(
        reference_hash=token_hash(reference)).first()
    if row is None or row.relying_party.client_id != client_id or not row.relying_party.is_approved:
        raise UnusableRequestUri("This 'request_uri' is not known for this client.")
    now = clock.now()
    if row.used_at is not None:
        raise UnusableRequestUri("This 'request_uri' was already used.")
    bound = request.session.get(SESSION_PUSHED) or []
    if row.first_used_at is None:
        if row.expires_at <= now:
            raise UnusableRequestUri("This 'request_uri' has expired.")
        claimed = PushedRequest.objects.filter(pk=row.pk, first_used_at__isnull=True).update(first_used_at=now)
        if claimed != 1:
            raise UnusableRequestUri("This 'request_uri' is in use by another browser.")
        request.session[SESSION_PUSHED] = [*bound[-9:], row.pk]
        return row
    if row.pk not in bound:
        raise UnusableRequestUri("This 'request_uri' is in use by another browser.")
    if now - row.first_used_at > dt.timedelta(seconds=policy.get("login_transaction_seconds")):
        raise UnusableRequestUri("This 'request_uri' has expired.")
    return row


def consume(row: PushedRequest) -> bool:
    """Mark the pushed request used (a code is being issued from it); False when it already was."""
    return PushedRequest.objects.filter(pk=row.pk, used_at__isnull=True).update(used_at=clock.now()) == 1
