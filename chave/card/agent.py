"""The card agent (``chave card-agent``): the citizen's own program between the browser and the card.

It listens on 127.0.0.1 only and serves one website, the *service origin* (``CHAVE_PUBLIC_URL``
or ``--service``). The flow needs no JavaScript (``PROTOCOL.md``):

1. Chave's card page posts a form to ``POST /sign`` (challenge id, challenge, return URL). The
   agent refuses it unless the request's ``Origin`` (or, without one, ``Referer``) is the
   service origin and the return URL is on it; it keeps the request for the challenge's
   lifetime under a random id.
2. It answers with its *own* page asking for the card PIN (and which card, when several are
   inserted). The PIN is posted to the agent (``POST /pin``, only from the agent's own page) and
   goes to the card through PKCS#11; it never reaches Chave.
3. The card signs ``protocol.signed_payload`` (challenge id, challenge, service origin); the
   agent answers with a page whose form posts the certificate and signature to the return URL
   (a visible "Continue" button; a one-line script presses it when scripts run).

Programs use ``POST /v1/sign`` (JSON, see ``PROTOCOL.md``). Every request must name the agent's
own host (``127.0.0.1:<port>`` or ``localhost:<port>``), against DNS rebinding.
"""

from __future__ import annotations

import datetime as dt
import html
import json
import secrets
import threading
from dataclasses import dataclass
from urllib.parse import parse_qs

from django.conf import settings
from django.template.loader import render_to_string
from django.utils import translation
from django.utils.translation import gettext as _

from chave import clock, policy

from . import protocol, tokens

LOOPBACK = "127.0.0.1"
MAX_BODY = 64 * 1024
SIGN_PATH, PIN_PATH, JSON_SIGN_PATH, STATUS_PATH = "/sign", "/pin", "/v1/sign", "/v1/status"


def card_error_text(reason: str) -> str:
    return {
        "no_card": _("No Citizen Card was found. Insert your card in the reader and try again."),
        "several_cards": _("Several cards are inserted: choose one."),
        "wrong_pin": _("The card PIN is wrong. After too many wrong PINs the card blocks its PIN."),
        "pin_locked": _("The card's PIN is blocked. Unblock it at a counter with the card's PUK."),
        "pin_format": _("Type the card PIN: the digits you received with your card."),
        "no_key": _("This card has no authentication key and certificate."),
        "module": _("The card reader software could not be used. Check the card agent's settings."),
    }.get(reason, _("The card could not sign. Take it out, insert it again and retry."))


@dataclass
class Pending:
    challenge_id: str
    challenge: str
    return_url: str
    language: str
    expires_at: dt.datetime


class CardAgent:
    """The agent's WSGI application. ``signer`` and ``lister`` default to the PKCS#11 ones."""

    def __init__(self, *, service_url: str, port: int, token_label: str | None = None,
                 signer=tokens.sign, lister=tokens.list_cards):
        self.service_origin = protocol.origin_of(service_url)
        if not self.service_origin:
            raise ValueError(f"not a website address: {service_url!r}")
        self.listening_on(port)
        self.token_label = token_label
        self.signer, self.lister = signer, lister
        self._pending: dict[str, Pending] = {}
        self._lock = threading.Lock()

    def listening_on(self, port: int) -> None:
        self.port = int(port)
        self.own_origin = f"http://{LOOPBACK}:{self.port}"

    # --- plumbing -----------------------------------------------------------------------

    def __call__(self, environ, start_response):
        method, path = environ.get("REQUEST_METHOD", "GET"), environ.get("PATH_INFO", "/")
        with translation.override(settings.LANGUAGE_CODE):
            if environ.get("HTTP_HOST", "") not in (f"{LOOPBACK}:{self.port}", f"localhost:{self.port}"):
                return self._text(start_response, "421 Misdirected Request", "unknown host")
            routes = {("GET", "/"): self.home, ("POST", SIGN_PATH): self.sign_form, ("POST", PIN_PATH): self.pin,
                      ("POST", JSON_SIGN_PATH): self.sign_json, ("GET", STATUS_PATH): self.status}
            handler = routes.get((method, path))
            if handler is None:
                return self._text(start_response, "404 Not Found", "not found")
            return handler(environ, start_response)

    def _body(self, environ) -> bytes:
        try:
            length = int(environ.get("CONTENT_LENGTH") or 0)
        except ValueError:
            length = 0
        if length > MAX_BODY:
            raise ValueError("too large")
        return environ["wsgi.input"].read(length) if length > 0 else b""

    def _form(self, environ) -> dict[str, list[str]]:
        return parse_qs(self._body(environ).decode("utf-8", "replace"), keep_blank_values=True)

    @staticmethod
    def _first(form, name) -> str:
        return (form.get(name) or [""])[0]

    def _headers(self, content_type: str, nonce: str = "") -> list[tuple[str, str]]:
        csp = ("default-src 'none'; base-uri 'none'; frame-ancestors 'none'; "
               f"form-action {self.own_origin} {self.service_origin}")
        if nonce:
            csp += f"; style-src 'nonce-{nonce}'; script-src 'nonce-{nonce}'"
        return [("Content-Type", content_type), ("Cache-Control", "no-store"), ("X-Frame-Options", "DENY"),
                ("Content-Security-Policy", csp),
                # The PIN form posts to the agent itself: a same-origin POST must carry its Origin.
                ("Referrer-Policy", "same-origin"),
                ("X-Content-Type-Options", "nosniff")]

    def _text(self, start_response, status: str, text: str):
        start_response(status, self._headers("text/plain; charset=utf-8"))
        return [text.encode()]

    def _page(self, start_response, status: str, template: str, context: dict, language: str):
        nonce = secrets.token_urlsafe(16)
        with translation.override(_language(language)):
            body = render_to_string(template, {**context, "nonce": nonce, "service": self.service_origin,
                                               "lang": _html_lang(language)})
        start_response(status, self._headers("text/html; charset=utf-8", nonce))
        return [body.encode()]

    def _json(self, start_response, status: str, value: dict):
        start_response(status, self._headers("application/json"))
        return [json.dumps(value).encode()]

    def _came_from(self, environ) -> str:
        """The origin a browser says the request came from (Origin, else Referer)."""
        origin = environ.get("HTTP_ORIGIN")
        if origin:
            return protocol.origin_of(origin) if origin != "null" else "null"
        return protocol.origin_of(environ.get("HTTP_REFERER", ""))

    def _refuse_page(self, start_response, language: str, message: str):
        return self._page(start_response, "403 Forbidden", "card/agent/refused.html", {"message": message}, language)

    # --- browser flow ---------------------------------------------------------------------

    def home(self, environ, start_response):
        return self._page(start_response, "200 OK", "card/agent/home.html", {}, settings.LANGUAGE_CODE)

    def sign_form(self, environ, start_response):
        try:
            form = self._form(environ)
        except ValueError:
            return self._text(start_response, "413 Content Too Large", "too large")
        language = self._first(form, protocol.F_LANGUAGE)
        translation.activate(_language(language))  # the page's words; __call__ restores the default
        return_url = self._first(form, protocol.F_RETURN_URL)
        if self._came_from(environ) != self.service_origin or protocol.origin_of(return_url) != self.service_origin:
            return self._refuse_page(start_response, language, _(
                "This request did not come from %(service)s, the only website this card agent serves. "
                "Nothing was signed.") % {"service": self.service_origin})
        challenge_id, challenge = self._first(form, protocol.F_CHALLENGE_ID), self._first(form, protocol.F_CHALLENGE)
        if not (0 < len(challenge_id) <= 64 and 0 < len(challenge) <= 128):
            return self._refuse_page(start_response, language, _("The request is incomplete. Nothing was signed."))
        pending_id = secrets.token_urlsafe(24)
        now = clock.now()
        with self._lock:
            self._pending = {k: p for k, p in self._pending.items() if p.expires_at > now}
            self._pending[pending_id] = Pending(challenge_id, challenge, return_url, language,
                                                now + dt.timedelta(seconds=policy.get("card_challenge_seconds")))
        return self._pin_page(start_response, "200 OK", pending_id, self._pending[pending_id], "")

    def _cards(self):
        try:
            return [c for c in self.lister() if self.token_label in (None, c.label)]
        except tokens.CardError:
            return []

    def _pin_page(self, start_response, status, pending_id, pending: Pending, error: str):
        return self._page(start_response, status, "card/agent/pin.html", {
            "request_id": pending_id, "error": error, "cards": self._cards(), "action": PIN_PATH,
            "start_again": self.service_origin + "/card/",
        }, pending.language)

    def pin(self, environ, start_response):
        try:
            form = self._form(environ)
        except ValueError:
            return self._text(start_response, "413 Content Too Large", "too large")
        pending_id = self._first(form, "request")
        with self._lock:
            pending = self._pending.get(pending_id)
        language = pending.language if pending else ""
        translation.activate(_language(language))  # the page's words; __call__ restores the default
        if self._came_from(environ) != self.own_origin:
            return self._refuse_page(start_response, language, _("The card PIN can only be typed on the card agent's "
                                                                 "own page. Nothing was signed."))
        if pending is None or pending.expires_at <= clock.now():
            return self._refuse_page(start_response, language, _(
                "This request has expired. Go back to %(service)s and start again.") % {"service": self.service_origin})
        pin = self._first(form, "pin")
        card = self._first(form, "card") or self.token_label
        payload = protocol.signed_payload(challenge_id=pending.challenge_id, challenge=pending.challenge,
                                          origin=self.service_origin)
        if not (pin.isascii() and pin.isdigit()):
            return self._pin_page(start_response, "400 Bad Request", pending_id, pending, card_error_text("pin_format"))
        try:
            signed = self.signer(payload, pin=pin, token_label=card or None)
        except tokens.CardError as exc:
            return self._pin_page(start_response, "400 Bad Request", pending_id, pending, card_error_text(exc.reason))
        with self._lock:
            if self._pending.pop(pending_id, None) is None:
                return self._refuse_page(start_response, language, _("This request was already answered."))
        fields = [(protocol.F_CHALLENGE_ID, pending.challenge_id), (protocol.F_ORIGIN, self.service_origin),
                  (protocol.F_CERTIFICATE, protocol.b64encode(signed.certificate)),
                  (protocol.F_SIGNATURE, protocol.b64encode(signed.signature))]
        fields += [(protocol.F_CHAIN, protocol.b64encode(c)) for c in signed.chain]
        return self._page(start_response, "200 OK", "card/agent/signed.html",
                          {"action": pending.return_url, "fields": fields}, language)

    # --- programs -------------------------------------------------------------------------

    def status(self, environ, start_response):
        return self._json(start_response, "200 OK", {
            "service_origin": self.service_origin, "protocol": protocol.PAYLOAD_TYPE,
            "cards": [{"token_label": c.label, "holder": c.holder} for c in self._cards()],
        })

    def sign_json(self, environ, start_response):
        origin = environ.get("HTTP_ORIGIN")
        if origin is not None and protocol.origin_of(origin) != self.service_origin:
            return self._json(start_response, "403 Forbidden", {"error": "wrong_origin"})
        if not environ.get("CONTENT_TYPE", "").split(";")[0].strip() == "application/json":
            return self._json(start_response, "415 Unsupported Media Type", {"error": "bad_request"})
        try:
            data = json.loads(self._body(environ) or b"null")
        except (ValueError, UnicodeDecodeError):
            data = None
        if not isinstance(data, dict) or not all(isinstance(data.get(k), str) for k in
                                                  ("challenge_id", "challenge", "origin", "pin")):
            return self._json(start_response, "400 Bad Request", {"error": "bad_request"})
        if protocol.origin_of(data["origin"]) != self.service_origin:
            return self._json(start_response, "403 Forbidden", {"error": "wrong_origin"})
        payload = protocol.signed_payload(challenge_id=data["challenge_id"], challenge=data["challenge"],
                                          origin=self.service_origin)
        card = data.get("card") if isinstance(data.get("card"), str) else self.token_label
        try:
            signed = self.signer(payload, pin=data["pin"], token_label=card or None)
        except tokens.CardError as exc:
            status = {"wrong_pin": "401 Unauthorized", "pin_locked": "423 Locked", "no_card": "404 Not Found",
                      "several_cards": "409 Conflict", "pin_format": "400 Bad Request"}.get(
                exc.reason, "500 Internal Server Error")
            return self._json(start_response, status, {"error": exc.reason})
        return self._json(start_response, "200 OK", {
            "challenge_id": data["challenge_id"], "origin": self.service_origin,
            "certificate": protocol.b64encode(signed.certificate), "signature": protocol.b64encode(signed.signature),
            "chain": [protocol.b64encode(c) for c in signed.chain],
        })


def _language(code: str) -> str:
    codes = {c for c, _name in settings.LANGUAGES}
    code = (code or "").lower()
    return code if code in codes else settings.LANGUAGE_CODE


def _html_lang(code: str) -> str:
    code = _language(code)
    return "pt-PT" if code == "pt-pt" else html.escape(code)


def make_server(agent: CardAgent, *, port: int | None = None):
    """A waitress server for ``agent`` on 127.0.0.1 (and only there); ``port=0`` picks a free one."""
    from waitress.server import create_server

    server = create_server(agent, host=LOOPBACK, port=agent.port if port is None else port, threads=2,
                           ident="chave-card-agent")
    agent.listening_on(server.effective_port)
    return server
