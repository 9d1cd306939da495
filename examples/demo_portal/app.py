"""The Demo Portal as a WSGI application: a separate portal that logs citizens in with Chave.

Pages (Portuguese or English: ``?lang=pt|en``, else the remembered choice, else the browser's
``Accept-Language``):

- ``GET /``: "Entrar com a Chave" / "Log in with Chave"; once signed in, the claims Chave sent,
  the level (``acr``), methods (``amr``) and time (``auth_time``) of the login, and "Log out".
- ``POST /login``: starts a login: ``state``, ``nonce`` and a PKCE verifier kept in this browser's
  session, then off to Chave's authorization endpoint.
- ``GET /callback``: the redirect URI: checks ``state``, redeems the code (``private_key_jwt``),
  validates the ID token, calls userinfo, and signs the browser in (a new session id).
- ``POST /logout``: forgets the portal's session, then RP-initiated logout at Chave
  (``id_token_hint``, ``post_logout_redirect_uri``) which comes back to ``GET /signed-out``.
- ``POST /backchannel-logout``: Chave's logout token; the sessions of that Chave session (``sid``)
  are forgotten.
- ``GET /jwks.json``: the public half of the portal's key (its registered JWKS URI).

Sessions live in memory (a demo; a restart signs everybody out). Nothing here imports Django: the
portal knows Chave only by its issuer URL and what discovery says.
"""

from __future__ import annotations

import html
import http.cookies
import json
import secrets
import threading
import time
import urllib.parse
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path

from . import oidc
from .text import CLAIM_PREFIX, HTML_LANG, LANGUAGES, NAMES, UI_LOCALES, choose_language, claim_label, say

DEFAULT_SCOPE = "openid profile pt:identity email phone pt:validity"
SESSION_COOKIE = "demo_portal_session"
LANGUAGE_COOKIE = "demo_portal_lang"
# A login must come back within this long; a browser may have a few logins going (several tabs).
LOGIN_SECONDS = 10 * 60
MAX_PENDING_LOGINS = 5
SESSION_IDLE_SECONDS = 8 * 3600
MAX_FORM_BYTES = 64 * 1024
STYLE = (Path(__file__).parent / "style.css").read_bytes()
# Chave reports each attribute asked for as available, not available or withheld.
STATUS_CLAIM = CLAIM_PREFIX + "AttributeStatus"


def endpoints(base_url: str) -> dict[str, str]:
    """The portal's addresses that its registration at Chave names."""
    base = base_url.rstrip("/")
    return {
        "redirect_uri": base + "/callback",
        "post_logout_redirect_uri": base + "/signed-out",
        "backchannel_logout_uri": base + "/backchannel-logout",
        "jwks_uri": base + "/jwks.json",
    }


@dataclass(frozen=True)
class Config:
    issuer: str  # Chave's issuer URL
    client_id: str  # what Chave registered the portal as
    base_url: str  # where this portal is reached, e.g. http://127.0.0.1:8001
    data_dir: Path  # where the portal keeps its private key
    scope: str = DEFAULT_SCOPE
    timeout: float = 10


# --- sessions ---------------------------------------------------------------------------------


@dataclass
class Session:
    csrf: str = field(default_factory=lambda: secrets.token_urlsafe(24))
    pending: dict[str, oidc.LoginRequest] = field(default_factory=dict)
    user: dict | None = None  # claims, id_token_claims, id_token (for the logout hint), sid
    seen: float = field(default_factory=time.time)


class Sessions:
    """The portal's sessions, in memory, shared by the server's threads."""

    def __init__(self):
        self._lock = threading.Lock()
        self._by_id: dict[str, Session] = {}

    def get(self, session_id: str | None) -> Session | None:
        with self._lock:
            session = self._by_id.get(session_id or "")
            if session is not None:
                if time.time() - session.seen > SESSION_IDLE_SECONDS:
                    del self._by_id[session_id]
                    return None
                session.seen = time.time()
            return session

    def new(self, session: Session | None = None) -> tuple[str, Session]:
        session_id = secrets.token_urlsafe(32)
        with self._lock:
            now = time.time()
            for old in [k for k, s in self._by_id.items() if now - s.seen > SESSION_IDLE_SECONDS]:
                del self._by_id[old]
            self._by_id[session_id] = session or Session()
        return session_id, self._by_id[session_id]

    def drop(self, session_id: str | None) -> None:
        with self._lock:
            self._by_id.pop(session_id or "", None)

    def sign_out(self, *, sid: str | None, sub: str | None) -> int:
        """Forget the signed-in user of every session of Chave session ``sid`` (or, without a
        ``sid``, of subject ``sub``); returns how many sessions that was."""
        return self.sign_out_where(lambda user: bool((sid and user.get("sid") == sid)
                                                     or (not sid and sub and user["id_token_claims"]["sub"] == sub)))

    def sign_out_where(self, signed_out) -> int:
        """Forget the signed-in user of every session whose user ``signed_out(user)`` names;
        returns how many sessions that was."""
        ended = 0
        with self._lock:
            for session in self._by_id.values():
                if session.user is not None and signed_out(session.user):
                    session.user = None
                    ended += 1
        return ended


# --- requests and responses ---------------------------------------------------------------------


class Request:
    def __init__(self, environ: dict):
        self.environ = environ
        self.method = environ.get("REQUEST_METHOD", "GET").upper()
        self.path = environ.get("PATH_INFO", "/") or "/"
        self.query = {k: v[0] for k, v in urllib.parse.parse_qs(environ.get("QUERY_STRING", "")).items()}
        cookies = http.cookies.SimpleCookie()
        try:
            cookies.load(environ.get("HTTP_COOKIE", ""))
        except http.cookies.CookieError:
            pass
        self.cookies = {name: morsel.value for name, morsel in cookies.items()}
        self._form: dict[str, str] | None = None

    def form(self) -> dict[str, str]:
        if self._form is None:
            try:
                length = int(self.environ.get("CONTENT_LENGTH") or 0)
            except ValueError:
                length = 0
            if length > MAX_FORM_BYTES:
                raise ValueError("form too large")
            raw = self.environ["wsgi.input"].read(length) if length > 0 else b""
            self._form = {k: v[0] for k, v in urllib.parse.parse_qs(raw.decode("utf-8", "replace")).items()}
        return self._form


@dataclass
class Response:
    status: str = "200 OK"
    body: bytes = b""
    content_type: str = "text/html; charset=utf-8"
    headers: list[tuple[str, str]] = field(default_factory=list)

    def cookie(self, name: str, value: str, *, max_age: int | None = None, secure: bool = False) -> None:
        parts = [f"{name}={value}", "Path=/", "HttpOnly", "SameSite=Lax"]
        if max_age is not None:
            parts.append(f"Max-Age={max_age}")
        if secure:
            parts.append("Secure")
        self.headers.append(("Set-Cookie", "; ".join(parts)))


def redirect(location: str) -> Response:
    return Response("303 See Other", b"", "text/plain; charset=utf-8", [("Location", location)])


# --- the application ----------------------------------------------------------------------------


class PortalApp:
    """What both demo portals' WSGI applications do: routing, languages, headers, the page frame.
    A subclass sets ``self.config`` (``issuer``, ``base_url``), ``self.sessions``, ``self.routes``
    and ``NAME`` (the word of its name in ``text.WORDS``)."""

    NAME = "portal"
    secure_cookies = False

    def frame_ancestors(self, request: Request) -> str:
        """Who may show a page in a frame (CSP ``frame-ancestors``): nobody."""
        return "'none'"

    def __call__(self, environ, start_response):
        request = Request(environ)
        request.lang = choose_language(request.query.get("lang"), request.cookies.get(LANGUAGE_COOKIE),
                                       environ.get("HTTP_ACCEPT_LANGUAGE", ""))
        handlers = self.routes.get(request.path)
        if handlers is None:
            response = self.page(request, say(request.lang, "not_found_title"),
                                 f"<p>{say(request.lang, 'not_found')}</p>", status="404 Not Found")
        elif request.method not in handlers:
            response = self.page(request, say(request.lang, "not_found_title"),
                                 f"<p>{say(request.lang, 'bad_method')}</p>", status="405 Method Not Allowed")
            response.headers.append(("Allow", ", ".join(handlers)))
        else:
            try:
                response = handlers[request.method](request)
            except ValueError:  # a form too large
                response = self.page(request, say(request.lang, "not_found_title"),
                                     f"<p>{say(request.lang, 'bad_method')}</p>", status="413 Content Too Large")
        if request.query.get("lang") in LANGUAGES:
            response.cookie(LANGUAGE_COOKIE, request.lang, max_age=365 * 24 * 3600, secure=self.secure_cookies)
        ancestors = self.frame_ancestors(request)
        headers = [("Content-Type", response.content_type), ("Content-Length", str(len(response.body))),
                   ("X-Content-Type-Options", "nosniff"), ("Referrer-Policy", "no-referrer"), *response.headers]
        if ancestors == "'none'":
            headers.append(("X-Frame-Options", "DENY"))
        if not any(name == "Cache-Control" for name, _value in headers):
            headers.append(("Cache-Control", "no-store"))
        if response.content_type.startswith("text/html"):
            # Forms post here, and the redirects that follow them go to Chave.
            origin = "{0.scheme}://{0.netloc}".format(urllib.parse.urlsplit(self.config.issuer))
            headers.append(("Content-Security-Policy", "default-src 'none'; style-src 'self'; img-src 'self'; "
                            f"form-action 'self' {origin}; frame-ancestors {ancestors}; base-uri 'none'"))
        start_response(response.status, headers)
        return [response.body]

    # --- pages ------------------------------------------------------------------------------------

    def page(self, request: Request, title: str, content: str, *, status: str = "200 OK") -> Response:
        lang = request.lang
        switch = "".join(
            f'<li><a href="{html.escape(request.path)}?lang={code}" lang="{HTML_LANG[code]}" '
            f'hreflang="{HTML_LANG[code]}">{NAMES[code]}</a></li>'
            for code in LANGUAGES if code != lang
        )
        portal = say(lang, self.NAME)
        document = f"""<!doctype html>
<html lang="{HTML_LANG[lang]}">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>{html.escape(title)} · {html.escape(portal)}</title>
<link rel="stylesheet" href="/style.css">
</head>
<body>
<header>
<p class="brand"><a href="/">{html.escape(portal)}</a></p>
<nav aria-label="{say(lang, 'language')}"><ul>{switch}</ul></nav>
</header>
<main id="main">
<h1>{html.escape(title)}</h1>
{content}
</main>
<footer><p>{say(lang, 'demo_only')}</p></footer>
</body>
</html>
"""
        return Response(status, document.encode())

    def _session(self, request: Request) -> tuple[str | None, Session | None]:
        session_id = request.cookies.get(SESSION_COOKIE)
        return session_id, self.sessions.get(session_id)

    def style(self, request: Request) -> Response:
        return Response("200 OK", STYLE, "text/css; charset=utf-8", [("Cache-Control", "public, max-age=3600")])


class DemoPortal(PortalApp):
    """The WSGI application. ``DemoPortal(Config(...))`` makes (or reads) the portal's key."""

    def __init__(self, config: Config):
        self.config = config
        self.urls = endpoints(config.base_url)
        self.key = oidc.PortalKey.load_or_create(config.data_dir)
        self.provider = oidc.Provider(config.issuer, timeout=config.timeout)
        self.sessions = Sessions()
        self.secure_cookies = config.base_url.startswith("https://")
        self.routes = {
            "/": {"GET": self.home},
            "/login": {"POST": self.login},
            "/callback": {"GET": self.callback},
            "/logout": {"POST": self.logout},
            "/signed-out": {"GET": self.signed_out},
            "/backchannel-logout": {"POST": self.backchannel_logout},
            "/jwks.json": {"GET": self.jwks},
            "/style.css": {"GET": self.style},
        }

    def home(self, request: Request) -> Response:
        _session_id, session = self._session(request)
        if session is not None and session.user is not None:
            return self.signed_in_page(request, session)
        lang = request.lang
        content = (f"<p>{say(lang, 'intro')}</p>"
                   f'<form method="post" action="/login">'
                   f'<button type="submit" class="primary" aria-describedby="login-hint">{say(lang, "login")}</button>'
                   f"</form>"
                   f'<p id="login-hint" class="hint">{say(lang, "login_hint")}</p>')
        return self.page(request, say(lang, "portal"), content)

    def signed_in_page(self, request: Request, session: Session) -> Response:
        lang = request.lang
        user = session.user
        id_claims, claims = user["id_token_claims"], user["claims"]
        esc = html.escape
        name = claims.get("name") or id_claims.get("name")
        hello = (say(lang, "hello", name=f'<strong id="who">{esc(str(name))}</strong>') if name
                 else say(lang, "hello_anonymous"))
        acr = str(id_claims.get("acr", ""))
        level = acr.rsplit(":", 1)[-1] if acr.startswith("urn:chave:loa:") else None
        auth_time = id_claims.get("auth_time")
        login_rows = [
            ("level", say(lang, "level"),
             f"{say(lang, 'level_value', level=esc(level))} ({esc(acr)})" if level else esc(acr)),
            ("methods", say(lang, "methods"), esc(", ".join(map(str, id_claims.get("amr", []))))),
            ("auth-time", say(lang, "auth_time"),
             esc(datetime.fromtimestamp(auth_time, timezone.utc).strftime("%Y-%m-%d %H:%M:%S UTC"))
             if isinstance(auth_time, (int, float)) else ""),
            ("subject", say(lang, "subject"), f"<code>{esc(str(id_claims.get('sub', '')))}</code>"),
        ]
        if id_claims.get("sid"):
            login_rows.append(("sid", say(lang, "session"), f"<code>{esc(str(id_claims['sid']))}</code>"))
        status = claims.get(STATUS_CLAIM) or {}
        shown = {k: v for k, v in claims.items()
                 if k not in ("sub", STATUS_CLAIM) and not k.endswith("_verified")}

        def value(v) -> str:
            if v is True:
                return say(lang, "yes")
            if v is False:
                return say(lang, "no")
            return esc(str(v))

        def rows(items) -> str:
            return "".join((f'<div id="{ident}">' if ident else "<div>") + f"<dt>{label}</dt><dd>{val}</dd></div>"
                           for ident, label, val in items)

        def status_of(state) -> str:
            return say(lang, state) if state in ("available", "withheld", "not_available") else str(state)

        claim_rows = [(None, esc(claim_label(lang, k)), value(v)) for k, v in shown.items()]
        status_items = "".join(f"<li>{esc(claim_label(lang, attribute))}: {esc(status_of(state))}</li>"
                               for attribute, state in status.items())
        content = f"""<p>{hello}</p>
<h2>{say(lang, 'how')}</h2>
<dl class="facts" id="login-facts">{rows(login_rows)}</dl>
<h2>{say(lang, 'claims')}</h2>
<p class="hint">{say(lang, 'claims_hint')}</p>
<dl class="facts" id="claims">{rows(claim_rows)}</dl>
{f'<h2>{say(lang, "status")}</h2><ul id="status">{status_items}</ul>' if status_items else ''}
<form method="post" action="/logout">
<input type="hidden" name="csrf" value="{esc(session.csrf)}">
<button type="submit" aria-describedby="logout-hint">{say(lang, 'logout')}</button>
</form>
<p id="logout-hint" class="hint">{say(lang, 'logout_hint')}</p>"""
        return self.page(request, say(lang, "signed_in"), content)

    def problem(self, request: Request, title: str, text: str, status: str) -> Response:
        lang = request.lang
        content = (f"<p>{text}</p>"
                   f'<form method="post" action="/login"><button type="submit">{say(lang, "try_again")}</button></form>'
                   f'<p><a href="/">{say(lang, "back")}</a></p>')
        return self.page(request, title, content, status=status)

    def unreachable(self, request: Request) -> Response:
        lang = request.lang
        return self.problem(request, say(lang, "unreachable_title"),
                            say(lang, "unreachable", issuer=html.escape(self.config.issuer)), "502 Bad Gateway")

    # --- the login ----------------------------------------------------------------------------------

    def login(self, request: Request) -> Response:
        session_id, session = self._session(request)
        fresh = session is None
        if fresh:
            session_id, session = self.sessions.new()
        login = oidc.LoginRequest.new()
        try:
            location = oidc.authorization_url(self.provider, client_id=self.config.client_id,
                                              redirect_uri=self.urls["redirect_uri"], scope=self.config.scope,
                                              login=login, ui_locales=UI_LOCALES[request.lang])
        except oidc.ProviderUnreachable:
            return self.unreachable(request)
        session.pending[login.state] = login
        for state in sorted(session.pending, key=lambda s: session.pending[s].started)[:-MAX_PENDING_LOGINS]:
            del session.pending[state]
        response = redirect(location)
        if fresh:
            response.cookie(SESSION_COOKIE, session_id, secure=self.secure_cookies)
        return response

    def callback(self, request: Request) -> Response:
        lang = request.lang
        session_id, session = self._session(request)
        state = request.query.get("state", "")
        login = session.pending.pop(state, None) if session is not None and state else None
        if login is None or time.time() - login.started > LOGIN_SECONDS:
            return self.problem(request, say(lang, "not_started_title"), say(lang, "not_started"), "400 Bad Request")
        # RFC 9207 mix-up defence: Chave names itself in every authorization response (its
        # discovery says authorization_response_iss_parameter_supported), so one without it is refused.
        if request.query.get("iss") != self.provider.issuer:
            return self.problem(request, say(lang, "failed_title"),
                                say(lang, "invalid", detail="iss"), "400 Bad Request")
        error = request.query.get("error")
        if error == "access_denied":
            return self.problem(request, say(lang, "denied_title"), say(lang, "denied"), "200 OK")
        if error or not request.query.get("code"):
            return self.problem(request, say(lang, "failed_title"),
                                say(lang, "failed", detail=html.escape(error or "no code")), "400 Bad Request")
        try:
            tokens = oidc.redeem(self.provider, self.key, client_id=self.config.client_id,
                                 redirect_uri=self.urls["redirect_uri"], code=request.query["code"], login=login)
            id_claims = oidc.validate_id_token(self.provider, tokens["id_token"], client_id=self.config.client_id,
                                               nonce=login.nonce, access_token=tokens["access_token"])
            claims = oidc.userinfo(self.provider, tokens["access_token"], subject=id_claims["sub"])
        except oidc.ProviderUnreachable:
            return self.unreachable(request)
        except oidc.LoginRefused as exc:
            return self.problem(request, say(lang, "failed_title"),
                                say(lang, "failed", detail=html.escape(exc.error)), "400 Bad Request")
        except oidc.InvalidToken as exc:
            return self.problem(request, say(lang, "failed_title"),
                                say(lang, "invalid", detail=html.escape(exc.reason)), "400 Bad Request")
        # Signed in: a new session id (no fixation), keeping the logins other tabs started.
        self.sessions.drop(session_id)
        signed_in = Session(pending=session.pending, user={
            "id_token": tokens["id_token"], "id_token_claims": id_claims, "claims": claims,
            "sid": id_claims.get("sid"),
        })
        new_id, _session = self.sessions.new(signed_in)
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
        response = redirect("/signed-out")
        if user is not None:
            try:
                location = oidc.end_session_url(
                    self.provider, id_token=user["id_token"], client_id=self.config.client_id,
                    post_logout_redirect_uri=self.urls["post_logout_redirect_uri"],
                    ui_locales=UI_LOCALES[request.lang])
            except oidc.ProviderUnreachable:
                location = None
            if location:
                response = redirect(location)
        response.cookie(SESSION_COOKIE, "", max_age=0, secure=self.secure_cookies)
        return response

    def signed_out(self, request: Request) -> Response:
        lang = request.lang
        return self.page(request, say(lang, "signed_out"),
                         f'<p>{say(lang, "signed_out_text")}</p><p><a href="/">{say(lang, "back")}</a></p>')

    def backchannel_logout(self, request: Request) -> Response:
        """Back-Channel Logout 1.0 §2.8: 200 when done, 400 for a token that fails a check."""
        token = request.form().get("logout_token", "")
        try:
            claims = oidc.validate_logout_token(self.provider, token, client_id=self.config.client_id)
        except oidc.InvalidToken as exc:
            return _json_response("400 Bad Request", {"error": "invalid_request", "error_description": exc.reason})
        except oidc.ProviderUnreachable:
            return _json_response("503 Service Unavailable", {"error": "temporarily_unavailable"})
        self.sessions.sign_out(sid=claims.get("sid"), sub=claims.get("sub"))
        return Response("200 OK", b"", "text/plain; charset=utf-8")

    # --- static ---------------------------------------------------------------------------------------

    def jwks(self, request: Request) -> Response:
        return Response("200 OK", json.dumps(self.key.public_jwks()).encode(), "application/json",
                        [("Cache-Control", "public, max-age=300")])


def _json_response(status: str, body: dict) -> Response:
    return Response(status, json.dumps(body).encode(), "application/json")
