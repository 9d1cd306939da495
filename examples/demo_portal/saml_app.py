"""The SAML Demo Portal as a WSGI application: a portal built the way autenticacao.gov's portals
are, signing citizens in with Chave over SAML 2.0 (:mod:`.saml`, on pysaml2).

Pages (Portuguese or English, as the OpenID Connect demo portal's, whose frame it shares):

- ``GET /``: the level to ask for (``fa:FAAALevel`` 2, 3 or 4) and "Entrar com a Chave"; once
  signed in, the attributes Chave sent with each one's ``fa:AttributeStatus``, the level
  (``AuthnContextClassRef``), ``AuthnInstant``, the pairwise ``NameID``, and "Log out".
- ``POST /login``: a signed ``AuthnRequest`` (HTTP-Redirect) with ``fa:RequestedAttributes``
  (``isRequired="True"`` for the name and NIC) and ``fa:FAAALevel``.
- ``POST /saml/acs``: Chave's signed ``Response``. It arrives by a cross-site POST, which carries
  no ``SameSite=Lax`` cookie in production, so the ACS only checks it (pysaml2: signatures,
  audience, recipient, ``InResponseTo`` one of this portal's outstanding requests, times) and
  hands the browser a one-use ticket; ``GET /saml/finish`` (a top-level GET: the cookie comes)
  signs in only the browser session that started that request (no login CSRF), under a new id.
- ``POST /logout``: the portal's session ends, then a signed ``LogoutRequest`` to Chave
  (SP-initiated single logout); ``GET /saml/slo`` checks Chave's ``LogoutResponse``. Chave's own
  ``LogoutRequest`` (the citizen signed out elsewhere) comes to ``GET /saml/slo`` too, in a frame
  of Chave's signed-out page: the sessions of that ``NameID`` end and a signed
  ``LogoutResponse`` goes back.
- ``GET /saml/metadata``: the portal's metadata (what Chave registers).
"""

from __future__ import annotations

import html
import secrets
import threading
import time
import urllib.parse
from dataclasses import dataclass, field
from pathlib import Path

from . import saml
from .app import LOGIN_SECONDS, PortalApp, Request, Response, Session, Sessions, redirect
from .oidc import ProviderUnreachable
from .text import claim_label, say

SESSION_COOKIE = "demo_saml_portal_session"  # cookies are per host, not per port: not the other portal's
LEVELS = (2, 3, 4)
DEFAULT_LEVEL = 3
# What the portal asks for (fa:RequestedAttributes): True is isRequired="True".
REQUESTED = {"NomeCompleto": True, "NIC": True, "DataNascimento": False, "CorreioElectronico": False,
             "NumeroTelemovel": False}
STATUS_WORDS = {"Available": "available", "NotAvailable": "not_available", "Withheld": "withheld"}
MAX_OUTSTANDING = 1000  # requests and tickets kept at once (oldest forgotten first)


def endpoints(base_url: str) -> dict[str, str]:
    return saml.endpoints(base_url)


def level_of(uri: str) -> int:
    """The level an AuthnContextClassRef names (Chave's ``urn:chave:loa:N``), 0 for another."""
    prefix = "urn:chave:loa:"
    number = uri[len(prefix):] if uri.startswith(prefix) else ""
    return int(number) if number in ("2", "3", "4") else 0


@dataclass(frozen=True)
class SamlConfig:
    issuer: str  # Chave's public URL (its metadata is at issuer + "/saml/metadata")
    base_url: str  # where this portal is reached, e.g. http://127.0.0.1:8002
    data_dir: Path  # where the portal keeps its key and certificate
    timeout: float = 10


@dataclass
class Outstanding:
    """A request this portal sent and has not seen answered: which browser session sent it."""

    session_id: str
    level: int = 0  # the level asked for (fa:FAAALevel)
    started: float = field(default_factory=time.time)
    login: saml.Login | None = None  # once the ACS accepted the answer


class Outstandings:
    """Requests (by ID) and tickets (by value), in memory, shared by the server's threads."""

    def __init__(self):
        self._lock = threading.Lock()
        self._by_key: dict[str, Outstanding] = {}

    def put(self, key: str, item: Outstanding) -> None:
        with self._lock:
            self._expire()
            if len(self._by_key) >= MAX_OUTSTANDING:
                del self._by_key[min(self._by_key, key=lambda k: self._by_key[k].started)]
            self._by_key[key] = item

    def pop(self, key: str, *, session_id: str | None = None) -> Outstanding | None:
        """The item, taken out; with ``session_id``, only when it belongs to that browser session
        (another browser's attempt leaves it for its own)."""
        with self._lock:
            self._expire()
            item = self._by_key.get(key)
            if item is None or (session_id is not None
                                and not secrets.compare_digest(item.session_id, session_id)):
                return None
            return self._by_key.pop(key)

    def keys(self) -> list[str]:
        with self._lock:
            self._expire()
            return list(self._by_key)

    def _expire(self) -> None:
        now = time.time()
        for key in [k for k, item in self._by_key.items() if now - item.started > LOGIN_SECONDS]:
            del self._by_key[key]


class DemoSamlPortal(PortalApp):
    """The WSGI application. ``DemoSamlPortal(SamlConfig(...))`` makes (or reads) the portal's key."""

    NAME = "saml_portal"

    def __init__(self, config: SamlConfig):
        self.config = config
        self.key = saml.SpKey.load_or_create(config.data_dir)
        self.sp = saml.ServiceProvider(config.issuer, config.base_url, self.key, timeout=config.timeout)
        self.sessions = Sessions()
        self.requests, self.tickets, self.logouts = Outstandings(), Outstandings(), Outstandings()
        self.secure_cookies = config.base_url.startswith("https://")
        self.chave_origin = "{0.scheme}://{0.netloc}".format(urllib.parse.urlsplit(config.issuer))
        self.routes = {
            "/": {"GET": self.home},
            "/login": {"POST": self.login},
            "/saml/acs": {"POST": self.acs},
            "/saml/finish": {"GET": self.finish},
            "/logout": {"POST": self.logout},
            "/saml/slo": {"GET": self.slo},
            "/saml/metadata": {"GET": self.metadata},
            "/style.css": {"GET": self.style},
        }

    def frame_ancestors(self, request: Request) -> str:
        # Chave's signed-out page loads the logout service in a frame (front-channel logout).
        return self.chave_origin if request.path == "/saml/slo" else "'none'"

    def _session(self, request: Request) -> tuple[str | None, Session | None]:
        session_id = request.cookies.get(SESSION_COOKIE)
        return session_id, self.sessions.get(session_id)

    # --- pages ------------------------------------------------------------------------------------

    def home(self, request: Request) -> Response:
        _session_id, session = self._session(request)
        if session is not None and session.user is not None:
            return self.signed_in_page(request, session)
        lang = request.lang
        choices = "".join(
            f'<div><input type="radio" name="level" id="level-{level}" value="{level}"'
            f'{" checked" if level == DEFAULT_LEVEL else ""}>'
            f' <label for="level-{level}">{say(lang, f"saml_level_{level}")}</label></div>'
            for level in LEVELS)
        asked = "".join(
            f"<li>{html.escape(claim_label(lang, name))} "
            f'<span class="hint">({say(lang, "saml_required" if required else "saml_optional")})</span></li>'
            for name, required in REQUESTED.items())
        content = (f"<p>{say(lang, 'saml_intro')}</p>"
                   f'<form method="post" action="/login">'
                   f'<fieldset><legend>{say(lang, "saml_level_legend")}</legend>{choices}</fieldset>'
                   f'<p>{say(lang, "saml_asks")}</p><ul id="asked">{asked}</ul>'
                   f'<button type="submit" class="primary" aria-describedby="login-hint">{say(lang, "login")}</button>'
                   f"</form>"
                   f'<p id="login-hint" class="hint">{say(lang, "saml_login_hint")}</p>')
        return self.page(request, say(lang, "saml_portal"), content)

    def signed_in_page(self, request: Request, session: Session) -> Response:
        lang = request.lang
        login: saml.Login = session.user["login"]
        esc = html.escape
        values = {uri: value for uri, status, value in login.attributes if status == "Available"}
        name = values.get(saml.ATTRIBUTE_PREFIX + "NomeCompleto")
        hello = (say(lang, "hello", name=f'<strong id="who">{esc(name)}</strong>') if name
                 else say(lang, "hello_anonymous"))
        level = str(level_of(login.level_uri) or "") or None
        facts = [
            ("level", say(lang, "saml_level"),
             f"{say(lang, 'level_value', level=esc(level))} ({esc(login.level_uri)})" if level else esc(login.level_uri)),
            ("auth-time", say(lang, "saml_auth_instant"), esc(login.auth_instant.replace("T", " ").replace("Z", " UTC"))),
            ("subject", say(lang, "saml_name_id"), f"<code>{esc(login.name_id)}</code>"),
        ]
        if login.session_index:
            facts.append(("sid", say(lang, "saml_session_index"), f"<code>{esc(login.session_index)}</code>"))

        def rows(items) -> str:
            return "".join(f'<div id="{ident}"><dt>{label}</dt><dd>{value}</dd></div>' for ident, label, value in items)

        attribute_rows = []
        for uri, status, value in login.attributes:
            word = STATUS_WORDS.get(status)
            shown = esc(value) if value is not None else "—"
            state = say(lang, word) if word else esc(status)
            attribute_rows.append((None, esc(claim_label(lang, uri)),
                                   f'{shown} <span class="hint" data-status="{esc(status)}">({state})</span>'))
        attributes = "".join(f"<div><dt>{label}</dt><dd>{value}</dd></div>" for _i, label, value in attribute_rows)
        content = f"""<p>{hello}</p>
<h2>{say(lang, 'how')}</h2>
<dl class="facts" id="login-facts">{rows(facts)}</dl>
<h2>{say(lang, 'saml_attributes')}</h2>
<p class="hint">{say(lang, 'saml_attributes_hint')}</p>
<dl class="facts" id="claims">{attributes}</dl>
<form method="post" action="/logout">
<input type="hidden" name="csrf" value="{esc(session.csrf)}">
<button type="submit" aria-describedby="logout-hint">{say(lang, 'logout')}</button>
</form>
<p id="logout-hint" class="hint">{say(lang, 'saml_logout_hint')}</p>"""
        return self.page(request, say(lang, "saml_signed_in"), content)

    def problem(self, request: Request, title: str, text: str, status: str) -> Response:
        content = f'<p>{text}</p><p><a href="/">{say(request.lang, "back")}</a></p>'
        return self.page(request, title, content, status=status)

    def unreachable(self, request: Request) -> Response:
        lang = request.lang
        return self.problem(request, say(lang, "unreachable_title"),
                            say(lang, "unreachable", issuer=html.escape(self.config.issuer)), "502 Bad Gateway")

    # --- the login ----------------------------------------------------------------------------------

    def login(self, request: Request) -> Response:
        try:
            level = int(request.form().get("level", DEFAULT_LEVEL))
        except ValueError:
            level = 0
        if level not in LEVELS:
            return self.problem(request, say(request.lang, "not_started_title"), say(request.lang, "expired_form"),
                                "400 Bad Request")
        session_id, session = self._session(request)
        fresh = session is None
        if fresh:
            session_id, session = self.sessions.new()
        try:
            request_id, location = self.sp.login_url(attributes=REQUESTED, level=level, relay_state="")
        except ProviderUnreachable:
            return self.unreachable(request)
        self.requests.put(request_id, Outstanding(session_id, level))
        response = redirect(location)
        if fresh:
            response.cookie(SESSION_COOKIE, session_id, secure=self.secure_cookies)
        return response

    def acs(self, request: Request) -> Response:
        lang = request.lang
        saml_response = request.form().get("SAMLResponse", "")
        if not saml_response:
            return self.problem(request, say(lang, "not_started_title"), say(lang, "not_started"), "400 Bad Request")
        try:
            request_id, login = self.sp.read_response(saml_response, self.requests.keys())
        except ProviderUnreachable:
            return self.unreachable(request)
        except saml.InvalidMessage as exc:
            if exc.reason == "RequestDenied":
                return self.problem(request, say(lang, "denied_title"), say(lang, "saml_denied"), "200 OK")
            if exc.reason in ("AuthnFailed", "NoPassive", "Error"):  # Chave said no, for a reason of its own
                return self.problem(request, say(lang, "failed_title"),
                                    say(lang, "failed", detail=html.escape(exc.reason)), "400 Bad Request")
            return self.problem(request, say(lang, "failed_title"),
                                say(lang, "invalid", detail=html.escape(exc.reason)), "400 Bad Request")
        outstanding = self.requests.pop(request_id)
        if outstanding is None:  # answered twice, or forgotten meanwhile
            return self.problem(request, say(lang, "not_started_title"), say(lang, "not_started"), "400 Bad Request")
        if level_of(login.level_uri) < outstanding.level:  # a careful portal checks it got what it asked for
            return self.problem(request, say(lang, "failed_title"),
                                say(lang, "invalid", detail="AuthnContextClassRef"), "400 Bad Request")
        ticket = secrets.token_urlsafe(32)
        outstanding.login = login
        self.tickets.put(ticket, outstanding)
        return redirect("/saml/finish?" + urllib.parse.urlencode({"ticket": ticket}))

    def finish(self, request: Request) -> Response:
        lang = request.lang
        session_id, session = self._session(request)
        ticket = self.tickets.pop(request.query.get("ticket", ""), session_id=session_id) if session else None
        if ticket is None:
            return self.problem(request, say(lang, "not_started_title"), say(lang, "not_started"), "400 Bad Request")
        # Signed in: a new session id (no fixation).
        self.sessions.drop(session_id)
        new_id, _session = self.sessions.new(Session(user={"login": ticket.login, "name_id": ticket.login.name_id}))
        response = redirect("/")
        response.cookie(SESSION_COOKIE, new_id, secure=self.secure_cookies)
        return response

    # --- logout -------------------------------------------------------------------------------------

    def logout(self, request: Request) -> Response:
        session_id, session = self._session(request)
        if session is None or not secrets.compare_digest(request.form().get("csrf", ""), session.csrf):
            return self.problem(request, say(request.lang, "not_started_title"), say(request.lang, "expired_form"),
                                "400 Bad Request")
        user = session.user
        self.sessions.drop(session_id)
        response = redirect("/saml/slo")
        if user is not None:
            login: saml.Login = user["login"]
            try:
                request_id, location = self.sp.logout_url(name_id=login.name_id, session_index=login.session_index,
                                                          relay_state="")
                self.logouts.put(request_id, Outstanding(""))
                response = redirect(location)
            except ProviderUnreachable:
                pass
        response.cookie(SESSION_COOKIE, "", max_age=0, secure=self.secure_cookies)
        return response

    def slo(self, request: Request) -> Response:
        lang = request.lang
        query = request.query
        try:
            if query.get("SAMLRequest"):
                name_id, location = self.sp.read_logout_request(query)
                self.sessions.sign_out_where(lambda user: secrets.compare_digest(user["name_id"], name_id))
                return redirect(location)
            if query.get("SAMLResponse"):
                if self.logouts.pop(self.sp.read_logout_response(query)) is None:
                    raise saml.InvalidMessage("InResponseTo")
        except ProviderUnreachable:
            return self.unreachable(request)
        except saml.InvalidMessage as exc:
            return self.problem(request, say(lang, "failed_title"),
                                say(lang, "invalid", detail=html.escape(exc.reason)), "400 Bad Request")
        return self.page(request, say(lang, "signed_out"),
                         f'<p id="signed-out">{say(lang, "saml_signed_out_text")}</p>'
                         f'<p><a href="/">{say(lang, "back")}</a></p>')

    # --- metadata -------------------------------------------------------------------------------------

    def metadata(self, request: Request) -> Response:
        return Response("200 OK", self.sp.metadata().encode(), "application/samlmetadata+xml",
                        [("Cache-Control", "public, max-age=300")])
