"""Logout as portals and citizens see it: RP-initiated logout and back-channel logout.

Two portals' back-channel endpoints are a small HTTP server on 127.0.0.1 (:class:`Receiver`);
the logout tokens reach it from the real worker (``run_worker``, django-tasks' ``db_worker``).
What a portal checks is checked here the way a portal would: the token's signature against the
published JWKS, its header and claims against the ID token the portal received.

About deferred retries: as in ``chave/delivery/tests/test_delivery.py``, the worker picks a task
only once its ``run_after`` has passed on the wall clock; after checking the backoff,
:func:`make_retries_due` moves the deferred tasks to the present instead of waiting.
"""

from __future__ import annotations

import datetime as dt
import io
import json
import re
import threading
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import parse_qs, urlencode

import pytest
from django.conf import settings
from django.test import Client
from django.utils import timezone
from django_tasks_db.models import DBTaskResult
from joserfc import jwt
from joserfc.jwk import KeySet, RSAKey

from chave import clock as service_clock
from chave import policy
from chave.audit.models import AuditEvent
from chave.federation.models import SsoSession
from chave.oidc import keys
from chave.oidc.logout import end_lapsed_sso_sessions
from chave.oidc.models import BackchannelLogout

from .portal import query_of, register_portal
from .signin import ask, redeem, refresh, tokens, userinfo, visit

pytestmark = pytest.mark.django_db(transaction=True)

ISSUER = "http://127.0.0.1:8000"
EVENT = "http://schemas.openid.net/event/backchannel-logout"
A_AFTER = "https://portal.example.gov.pt/signed-out"
B_AFTER = "https://saude.example.gov.pt/adeus"
A_PATH, B_PATH = "/a/backchannel-logout", "/b/backchannel-logout"


# --- The portals' back-channel endpoints ---------------------------------------------------------


@dataclass
class Received:
    path: str
    content_type: str
    form: dict

    @property
    def logout_token(self) -> str:
        return self.form["logout_token"]


class Receiver:
    """Back-channel logout endpoints on one local server: keeps every POST, answers 200 unless
    told otherwise (:meth:`answer`: the next statuses for a path, then ``default``)."""

    def __init__(self):
        self.requests: list[Received] = []
        self.script: dict[str, list[int]] = {}
        self.default: dict[str, int] = {}
        self.lock = threading.Lock()
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self):
                body = self.rfile.read(int(self.headers.get("Content-Length") or 0)).decode()
                with receiver.lock:
                    receiver.requests.append(Received(self.path, self.headers.get("Content-Type", ""),
                                                      {k: v[0] for k, v in parse_qs(body).items()}))
                    queued = receiver.script.get(self.path) or []
                    status = queued.pop(0) if queued else receiver.default.get(self.path, 200)
                self.send_response(status)
                self.send_header("Cache-Control", "no-store")
                self.send_header("Content-Length", "0")
                self.end_headers()

            def log_message(self, *args):
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)

    def url(self, path: str) -> str:
        return f"http://127.0.0.1:{self.server.server_port}{path}"

    def answer(self, path: str, *statuses: int, default: int = 200):
        self.script[path], self.default[path] = list(statuses), default

    def received(self, path: str) -> list[Received]:
        with self.lock:
            return [r for r in self.requests if r.path == path]


@pytest.fixture
def receiver():
    server = Receiver()
    server.thread.start()
    yield server
    server.server.shutdown()
    server.server.server_close()


@pytest.fixture
def portals(receiver, make_citizen):
    """Portal A (RS256) and portal B (ES256, another sector: another pairwise ``sub``), both with
    a post-logout redirect URI and a back-channel logout endpoint; and the citizen."""
    make_citizen()
    a = register_portal(name="Portal A", post_logout_redirect_uris=[A_AFTER],
                        backchannel_logout_uri=receiver.url(A_PATH))
    b = register_portal(name="Portal B", post_logout_redirect_uris=[B_AFTER],
                        backchannel_logout_uri=receiver.url(B_PATH), redirect_uri="https://saude.example.gov.pt/cb",
                        id_token_alg="ES256")
    return a, b


def sign_in_to_both(client, outbox, a, b):
    first = tokens(client, outbox, a)
    second = tokens(client, outbox, b)
    assert first["pages"] == ["login", "consent"] and second["pages"] == ["consent"]  # single sign-on
    return first, second


def logout_url(**params) -> str:
    return "/oidc/logout?" + urlencode({k: v for k, v in params.items() if v is not None})


def read_logout_token(client, received: Received) -> tuple[dict, dict]:
    """What a portal does with a logout token: verify it against the JWKS; (header, claims)."""
    assert received.content_type == "application/x-www-form-urlencoded"
    token = jwt.decode(received.logout_token, KeySet.import_key_set(client.get("/oidc/jwks").json()))
    return token.header, token.claims


def session_is_live(client, portal) -> bool:
    response = ask(client, portal, prompt="none")
    assert response.status_code == 302
    answer = query_of(response["Location"])
    return "code" in answer and answer.get("error") is None


def make_retries_due() -> int:
    return DBTaskResult.objects.filter(status="READY").update(run_after=timezone.now() - dt.timedelta(seconds=1))


def waiting_tasks() -> list[DBTaskResult]:
    return list(DBTaskResult.objects.filter(status="READY", task_path__endswith="send_logout_token"))


def attempts(outcome: str) -> int:
    return AuditEvent.objects.filter(event="oidc.backchannel_logout", outcome=outcome).count()


def csrf_token_of(page: str) -> str:
    return re.search(r'name="csrfmiddlewaretoken" value="([^"]+)"', page).group(1)


# --- RP-initiated logout with back-channel logout to the other portal ----------------------------------


def test_a_portal_logs_out_and_the_other_portal_is_told(client, outbox, portals, receiver, run_worker):
    a, b = portals
    at_a, at_b = sign_in_to_both(client, outbox, a, b)
    assert at_a["claims"]["sid"] == at_b["claims"]["sid"]  # one SSO session, named in both ID tokens
    assert userinfo(client, at_a["access_token"]).status_code == 200
    renewed = refresh(client, b, at_b["refresh_token"])
    assert renewed.status_code == 200, renewed.content
    b_refresh_token = renewed.json()["refresh_token"]
    unredeemed = visit(client, outbox, a).code  # a code issued just before the logout

    response = client.get(logout_url(id_token_hint=at_a["id_token"], post_logout_redirect_uri=A_AFTER,
                                     state="after-logout-7"))

    assert response.status_code == 302
    assert response["Location"] == A_AFTER + "?state=after-logout-7"
    run_worker()
    [sent] = receiver.received(B_PATH)
    assert receiver.received(A_PATH) == []  # A asked for the logout: it is not told again
    header, claims = read_logout_token(client, sent)
    assert header["typ"] == "logout+jwt" and header["alg"] == "ES256"
    assert claims["iss"] == ISSUER
    assert claims["aud"] == b.client_id
    assert claims["sub"] == at_b["claims"]["sub"] != at_a["claims"]["sub"]
    assert claims["sid"] == at_b["claims"]["sid"]
    assert claims["events"] == {EVENT: {}}
    assert "nonce" not in claims and claims["jti"]
    assert claims["exp"] - claims["iat"] == policy.get("oidc_logout_token_seconds")
    assert claims["iat"] <= int(service_clock.now().timestamp()) < claims["exp"]

    # The session is gone, and everything it issued with it.
    assert ask(client, b, prompt="none")["Location"].startswith(b.redirect_uri)
    assert query_of(ask(client, b, prompt="none")["Location"])["error"] == "login_required"
    refused = refresh(client, b, b_refresh_token)
    assert refused.status_code == 400 and refused.json()["error"] == "invalid_grant"
    assert userinfo(client, at_a["access_token"]).status_code == 401
    assert userinfo(client, at_b["access_token"]).status_code == 401
    late = redeem(client, a, unredeemed)
    assert late.status_code == 400 and late.json()["error"] == "invalid_grant"

    # The portal asking again (the browser already signed out) is sent back, and no one is told twice.
    again = client.get(logout_url(id_token_hint=at_a["id_token"], post_logout_redirect_uri=A_AFTER, state="2"))
    assert again.status_code == 302 and again["Location"] == A_AFTER + "?state=2"
    run_worker()
    assert len(receiver.received(B_PATH)) == 1 and receiver.received(A_PATH) == []

    # Audited, without the token anywhere: not in the audit, not in the task results.
    assert attempts("delivered") == 1
    logout = AuditEvent.objects.get(event="oidc.logout")
    assert logout.detail["initiator"] == a.client_id and logout.detail["notified"] == [b.client_id]
    stored = json.dumps(list(AuditEvent.objects.values("detail"))) + json.dumps(
        list(DBTaskResult.objects.values("args_kwargs", "return_value")), default=str)
    assert sent.logout_token not in stored
    assert sent.logout_token.split(".")[2] not in stored


def test_a_logout_request_sent_by_post_continues_as_a_get(client, db):
    params = {"id_token_hint": "x.y.z", "post_logout_redirect_uri": A_AFTER, "state": "s p&c"}

    response = client.post("/oidc/logout", params)

    # A cross-site POST does not carry the SameSite=Lax session cookie; a top-level GET does.
    assert response.status_code == 303
    assert response["Location"].startswith("/oidc/logout?")
    assert query_of(response["Location"]) == params


@pytest.mark.parametrize("asked", ["https://evil.example/signed-out", B_AFTER, A_AFTER + "?then=home", A_AFTER + "/"])
def test_an_unregistered_return_address_signs_out_without_sending_the_browser_there(
        client, outbox, portals, receiver, run_worker, asked):
    a, b = portals
    at_a, _at_b = sign_in_to_both(client, outbox, a, b)

    response = client.get(logout_url(id_token_hint=at_a["id_token"], post_logout_redirect_uri=asked, state="s",
                                     ui_locales="en"))

    assert response.status_code == 200 and not response.has_header("Location")
    page = response.content.decode()
    assert "You have signed out" in page and 'id="not-returned"' in page
    assert asked not in page
    assert not session_is_live(client, b)
    run_worker()
    assert len(receiver.received(B_PATH)) == 1


def test_an_expired_id_token_still_serves_as_the_hint(client, outbox, portals, receiver, run_worker, clock):
    a, b = portals
    at_a, at_b = sign_in_to_both(client, outbox, a, b)
    clock.travel(dt.timedelta(seconds=policy.get("oidc_id_token_seconds") + 60))

    response = client.get(logout_url(id_token_hint=at_a["id_token"], post_logout_redirect_uri=A_AFTER))

    assert response.status_code == 302 and response["Location"] == A_AFTER
    run_worker()
    [sent] = receiver.received(B_PATH)
    assert read_logout_token(client, sent)[1]["sid"] == at_b["claims"]["sid"]


# --- Requests that cannot be trusted: the citizen is asked ------------------------------------------------


def claims_of(id_token: str) -> dict:
    return jwt.decode(id_token, KeySet.import_key_set(keys.jwks())).claims


def forged_hint(id_token: str) -> str:
    """The ID token's claims, signed by another key under the kid of our active key."""
    claims = claims_of(id_token)
    impostor = RSAKey.generate_key(2048, private=True)
    return jwt.encode({"alg": "RS256", "kid": keys.active_key("RS256").kid, "typ": "JWT"}, claims, impostor)


def test_a_forged_hint_changes_nothing_until_the_citizen_confirms(client, outbox, portals, receiver, run_worker):
    a, b = portals
    at_a, at_b = sign_in_to_both(client, outbox, a, b)
    browser = Client(enforce_csrf_checks=True)
    browser.cookies = client.cookies

    response = browser.get(logout_url(id_token_hint=forged_hint(at_a["id_token"]), post_logout_redirect_uri=A_AFTER,
                                      state="s", ui_locales="en"))

    assert response.status_code == 200
    page = response.content.decode()
    assert "Sign out of Chave and all portals?" in page
    assert 'action="/oidc/logout/confirm"' in page and "Portal A" in page and "Portal B" in page
    run_worker()
    assert receiver.requests == []
    assert userinfo(client, at_a["access_token"]).status_code == 200
    assert session_is_live(client, b)

    # Another site cannot confirm for the citizen (CSRF).
    forged_confirm = Client(enforce_csrf_checks=True)
    forged_confirm.cookies = client.cookies
    assert forged_confirm.post("/oidc/logout/confirm", {"decision": "sign_out"}).status_code == 403
    assert userinfo(client, at_a["access_token"]).status_code == 200

    confirmed = browser.post("/oidc/logout/confirm",
                             {"decision": "sign_out", "csrfmiddlewaretoken": csrf_token_of(page)})

    assert confirmed.status_code == 200 and not confirmed.has_header("Location")  # never back on a forged word
    assert "You have signed out" in confirmed.content.decode()
    run_worker()
    # Nobody proved to be the one asking: every portal of the session is told.
    [to_a], [to_b] = receiver.received(A_PATH), receiver.received(B_PATH)
    assert read_logout_token(client, to_a)[1]["sub"] == at_a["claims"]["sub"]
    assert read_logout_token(client, to_b)[1]["sub"] == at_b["claims"]["sub"]
    assert userinfo(client, at_a["access_token"]).status_code == 401
    assert not session_is_live(client, b)


def _other_clients_hint(portals, at_a, at_b):
    return {"id_token_hint": at_a["id_token"], "client_id": portals[1].client_id}


def _no_hint(portals, at_a, at_b):
    return {"client_id": portals[1].client_id}  # B did not register A's return address


def _garbage_hint(portals, at_a, at_b):
    return {"id_token_hint": "not-a-token", "client_id": portals[0].client_id}


def _another_issuers_hint(portals, at_a, at_b):
    # Our signature, but issued under another issuer (a deployment sharing the keys, say).
    claims = claims_of(at_a["id_token"])
    row = keys.active_key("RS256")
    hint = jwt.encode({"alg": "RS256", "kid": row.kid}, {**claims, "iss": "https://elsewhere.example"},
                      keys.private_key(row))
    return {"id_token_hint": hint}


def _repeated_hint(portals, at_a, at_b):
    return {"id_token_hint": [at_a["id_token"], at_a["id_token"]]}


@pytest.mark.parametrize("untrusted", [_other_clients_hint, _no_hint, _garbage_hint,
                                       _another_issuers_hint, _repeated_hint])
def test_an_untrusted_request_asks_the_citizen_and_does_not_send_them_back(
        client, outbox, portals, receiver, run_worker, untrusted):
    a, b = portals
    at_a, at_b = sign_in_to_both(client, outbox, a, b)
    params = {**untrusted(portals, at_a, at_b), "post_logout_redirect_uri": A_AFTER, "ui_locales": "en pt-PT"}

    response = client.get("/oidc/logout?" + urlencode(params, doseq=True))

    assert response.status_code == 200 and "Sign out of Chave and all portals?" in response.content.decode()
    assert session_is_live(client, b)
    stay = client.post("/oidc/logout/confirm", {"decision": "stay"})
    assert stay.status_code == 302 and not stay["Location"].startswith(A_AFTER)
    run_worker()
    assert receiver.requests == []
    assert userinfo(client, at_a["access_token"]).status_code == 200


def test_a_hint_of_another_session_is_confirmed_and_then_sent_back(client, outbox, portals, receiver, run_worker):
    a, b = portals
    at_a, _ = sign_in_to_both(client, outbox, a, b)
    other_browser = Client()
    at_a_elsewhere = tokens(other_browser, outbox, a)
    assert at_a_elsewhere["claims"]["sid"] != at_a["claims"]["sid"]

    # The hint is valid but names the other browser's session: this browser's citizen is asked.
    response = client.get(logout_url(id_token_hint=at_a_elsewhere["id_token"], post_logout_redirect_uri=A_AFTER,
                                     state="s"))
    assert response.status_code == 200 and 'action="/oidc/logout/confirm"' in response.content.decode()
    confirmed = client.post("/oidc/logout/confirm", {"decision": "sign_out"})

    assert confirmed.status_code == 302 and confirmed["Location"] == A_AFTER + "?state=s"  # the portal was proven
    assert not session_is_live(client, b)
    assert session_is_live(other_browser, a)  # the other browser's session is its own
    run_worker()
    assert [read_logout_token(client, r)[1]["sid"] for r in receiver.received(B_PATH)] == [at_a["claims"]["sid"]]


@pytest.mark.parametrize(("ui_locales", "lang"), [("en", "en"), ("fr-FR en-GB pt", "en"), ("pt-PT en", "pt-PT"),
                                                 (None, "pt-PT")])
def test_nobody_signed_in_and_no_hint_shows_a_page_in_the_language_asked(client, portals, ui_locales, lang):
    a, _b = portals

    response = client.get(logout_url(client_id=a.client_id, post_logout_redirect_uri=B_AFTER, state="s",
                                     ui_locales=ui_locales))

    assert response.status_code == 200 and not response.has_header("Location")  # no hint: not sent back
    page = response.content.decode()
    assert f'<html lang="{lang}">' in page and 'id="not-returned"' in page


# --- Chave's own sign-out ----------------------------------------------------------------------------------


def test_signing_out_of_chave_tells_every_portal(client, outbox, portals, receiver, run_worker):
    a, b = portals
    at_a, at_b = sign_in_to_both(client, outbox, a, b)

    response = client.post("/login/logout/")

    assert response.status_code == 302
    run_worker()
    [to_a], [to_b] = receiver.received(A_PATH), receiver.received(B_PATH)
    assert read_logout_token(client, to_a)[1]["aud"] == a.client_id
    assert read_logout_token(client, to_a)[0]["alg"] == "RS256"
    assert read_logout_token(client, to_b)[1]["sid"] == at_b["claims"]["sid"]
    assert SsoSession.objects.get(sid=at_a["claims"]["sid"]).ended_at is not None
    assert userinfo(client, at_b["access_token"]).status_code == 401
    assert refresh(client, a, at_a["refresh_token"]).status_code == 400
    assert not session_is_live(client, a)


def test_signing_out_of_chave_loads_the_front_channel_logout_of_its_portals(client, outbox, portals, receiver,
                                                                          run_worker):
    """The personal area's "Sign out" reaches the session's portals both ways: a logout token to
    each back-channel URI, and a page whose hidden frames load each front-channel URI with
    ``iss`` and ``sid`` (Front-Channel Logout §2, §3), the policy admitting those frames only."""
    a, b = portals
    c = register_portal(name="Portal C", redirect_uri="https://c.example.gov.pt/cb",
                        frontchannel_logout_uri="https://c.example.gov.pt/frontchannel-logout?from=chave")
    sign_in_to_both(client, outbox, a, b)
    at_c = tokens(client, outbox, c)

    response = client.post("/login/logout/")

    html = response.content.decode()
    assert response.status_code == 200 and 'id="home"' in html
    frames = re.findall(r'<iframe class="frontchannel" src="([^"]+)"', html)
    assert frames == ["https://c.example.gov.pt/frontchannel-logout?from=chave&amp;" + urlencode(
        {"iss": ISSUER, "sid": at_c["claims"]["sid"]}).replace("&", "&amp;")]
    assert response["Content-Security-Policy"].endswith("; frame-src https://c.example.gov.pt")
    run_worker()
    assert len(receiver.received(A_PATH)) == 1 and len(receiver.received(B_PATH)) == 1  # and back-channel
    assert not session_is_live(client, c)
    # Signed out already: nothing more to load, the usual way home.
    again = client.post("/login/logout/")
    assert again.status_code == 302 and "frame-src" not in again.get("Content-Security-Policy", "")


def test_a_session_left_to_lapse_ends_and_every_portal_is_told_once(client, outbox, portals, receiver, run_worker,
                                                                     clock):
    a, b = portals
    at_a, at_b = sign_in_to_both(client, outbox, a, b)
    clock.travel(dt.timedelta(seconds=settings.SESSION_COOKIE_AGE - 60))
    assert end_lapsed_sso_sessions() == 0  # the browser session may still be alive
    clock.travel(dt.timedelta(seconds=120))

    assert end_lapsed_sso_sessions() == 1
    assert end_lapsed_sso_sessions() == 0  # once

    run_worker()
    [to_a], [to_b] = receiver.received(A_PATH), receiver.received(B_PATH)
    assert read_logout_token(client, to_a)[1]["sid"] == at_a["claims"]["sid"]
    assert read_logout_token(client, to_b)[1]["aud"] == b.client_id
    assert refresh(client, a, at_a["refresh_token"]).status_code == 400


def test_a_session_that_keeps_serving_portals_does_not_lapse(client, outbox, portals, clock):
    a, b = portals
    sign_in_to_both(client, outbox, a, b)
    clock.travel(dt.timedelta(seconds=settings.SESSION_COOKIE_AGE - 60))
    assert session_is_live(client, a)  # serving a portal writes the browser session again
    clock.travel(dt.timedelta(seconds=120))
    assert end_lapsed_sso_sessions() == 0


# --- Back-channel delivery: retried, bounded, once -----------------------------------------------------------


def test_a_portal_down_for_a_moment_gets_its_logout_token_once(client, outbox, portals, receiver, run_worker, clock,
                                                                settings):
    # A first wait longer than this test can take on a loaded machine: the worker runs tasks by the
    # wall clock, and the test's clock is frozen at its start.
    settings.CHAVE_POLICY = {**settings.CHAVE_POLICY, "oidc_backchannel_backoff_seconds": [600, 1800]}
    a, b = portals
    at_a, at_b = sign_in_to_both(client, outbox, a, b)
    receiver.answer(B_PATH, 503)
    client.get(logout_url(id_token_hint=at_a["id_token"]))
    failed_at = clock.now()

    run_worker()

    [row] = BackchannelLogout.objects.all()
    assert (row.status, row.attempts, row.last_status) == ("queued", 1, 503)
    assert row.next_attempt_at == failed_at + dt.timedelta(seconds=policy.get("oidc_backchannel_backoff_seconds")[0])
    [retry] = waiting_tasks()
    assert retry.run_after == row.next_attempt_at > timezone.now()  # the worker waits for it
    run_worker()  # too early
    assert len(receiver.received(B_PATH)) == 1

    assert make_retries_due() == 1
    run_worker()
    run_worker()

    first, second = receiver.received(B_PATH)
    assert read_logout_token(client, second)[1]["sid"] == at_b["claims"]["sid"]
    assert read_logout_token(client, first)[1]["jti"] != read_logout_token(client, second)[1]["jti"]
    row.refresh_from_db()
    assert (row.status, row.attempts, row.last_status) == ("delivered", 2, 200)
    assert waiting_tasks() == []
    assert (attempts("retry"), attempts("delivered")) == (1, 1)


def test_refusals_are_final_and_failures_are_retried_a_bounded_number_of_times(
        client, outbox, portals, receiver, run_worker, settings):
    settings.CHAVE_POLICY = {**settings.CHAVE_POLICY, "oidc_backchannel_max_attempts": 3}
    a, b = portals
    sign_in_to_both(client, outbox, a, b)
    receiver.answer(A_PATH, default=403)  # a refusal: not retried
    # 400, "the logout failed" (Back-Channel Logout §2.8): most often a portal that has not fetched
    # Chave's new signing key yet, so it is retried like a 5xx.
    receiver.answer(B_PATH, default=400)

    client.post("/login/logout/")
    for _round in range(5):
        run_worker()
        make_retries_due()

    assert len(receiver.received(A_PATH)) == 1
    assert len(receiver.received(B_PATH)) == 3
    assert {r.relying_party.client_id: (r.status, r.attempts, r.last_status)
            for r in BackchannelLogout.objects.select_related("relying_party")} == {
        a.client_id: ("failed", 1, 403), b.client_id: ("failed", 3, 400)}
    assert waiting_tasks() == []
    assert (attempts("retry"), attempts("failed")) == (2, 2)


def test_an_unreachable_portal_is_retried(client, outbox, portals, receiver, run_worker):
    a, b = portals
    sign_in_to_both(client, outbox, a, b)
    receiver.server.shutdown()
    receiver.server.server_close()  # nobody listens there now

    client.post("/login/logout/")
    run_worker()

    rows = list(BackchannelLogout.objects.all())
    assert [(r.status, r.attempts, r.last_status) for r in rows] == [("queued", 1, None)] * 2
    assert all("unreachable" in r.last_error for r in rows)
    assert len(waiting_tasks()) == 2
    assert receiver.requests == []


def test_a_portal_answering_400_gets_the_token_again_once_it_has_the_new_key(
        client, outbox, portals, receiver, run_worker):
    a, b = portals
    sign_in_to_both(client, outbox, a, b)
    receiver.answer(B_PATH, 400, 500)  # it cannot verify yet, then it is busy, then it takes it
    client.post("/login/logout/")
    for _round in range(4):
        run_worker()
        make_retries_due()
    row = BackchannelLogout.objects.get(relying_party__client_id=b.client_id)
    assert (row.status, row.attempts, row.last_status) == ("delivered", 3, 200)


# --- RP-initiated logout without id_token_hint ----------------------------------------------------------


def test_a_client_id_and_its_registered_return_address_are_honoured_after_confirmation(
        client, outbox, portals, receiver, run_worker):
    a, b = portals
    at_a, at_b = sign_in_to_both(client, outbox, a, b)
    page = client.get(logout_url(client_id=a.client_id, post_logout_redirect_uri=A_AFTER, state="xyz",
                                 ui_locales="en"))
    html = page.content.decode()
    assert page.status_code == 200 and "Portal A asks you to sign out." in html
    assert session_is_live(client, b)  # nothing happens before the citizen says so
    confirmed = client.post("/oidc/logout/confirm", {"decision": "sign_out"})
    assert confirmed.status_code == 302 and confirmed["Location"] == A_AFTER + "?state=xyz"
    assert not session_is_live(client, b)
    run_worker()
    assert len(receiver.received(A_PATH)) == 1 and len(receiver.received(B_PATH)) == 1  # both told


def test_a_client_id_with_an_address_it_did_not_register_is_not_sent_back(client, outbox, portals):
    a, b = portals
    sign_in_to_both(client, outbox, a, b)
    client.get(logout_url(client_id=a.client_id, post_logout_redirect_uri=B_AFTER, state="xyz"))
    confirmed = client.post("/oidc/logout/confirm", {"decision": "sign_out"})
    assert confirmed.status_code == 200 and 'id="not-returned"' in confirmed.content.decode()


# --- Front-channel logout ---------------------------------------------------------------------------------


def test_portals_with_a_front_channel_logout_uri_are_loaded_in_frames_of_the_signed_out_page(
        client, outbox, portals, receiver, run_worker):
    a, b = portals
    c = register_portal(name="Portal C", redirect_uri="https://c.example.gov.pt/cb",
                        frontchannel_logout_uri="https://c.example.gov.pt/frontchannel-logout?from=chave")
    at_a, _ = sign_in_to_both(client, outbox, a, b)
    at_c = tokens(client, outbox, c)
    response = client.get(logout_url(id_token_hint=at_a["id_token"], post_logout_redirect_uri=A_AFTER, state="s"))
    html = response.content.decode()
    assert response.status_code == 200  # the page first: its frame tells portal C
    frames = re.findall(r'<iframe class="frontchannel" src="([^"]+)"', html)
    assert frames == ["https://c.example.gov.pt/frontchannel-logout?from=chave&amp;" + urlencode(
        {"iss": ISSUER, "sid": at_c["claims"]["sid"]}).replace("&", "&amp;")]
    assert "frame-src https://c.example.gov.pt" in response["Content-Security-Policy"]
    assert re.search(rf'<a href="{re.escape(A_AFTER)}\?state=s" id="continue">[^<]*Portal A<', html)
    assert not session_is_live(client, a)


@pytest.mark.parametrize("lang", ["pt-pt", "en"])
def test_the_logout_pages_are_accessible(client, outbox, portals, lang):
    from chave.testing.accessibility import assert_accessible

    a, b = portals
    sign_in_to_both(client, outbox, a, b)
    client.cookies[settings.LANGUAGE_COOKIE_NAME] = lang
    confirm = assert_accessible(client.get(logout_url(client_id=a.client_id, post_logout_redirect_uri=A_AFTER)),
                                lang, "logout confirmation")
    assert confirm is not None
    client.get(logout_url(client_id=a.client_id, post_logout_redirect_uri=B_AFTER))  # not A's: no way back
    assert_accessible(client.post("/oidc/logout/confirm", {"decision": "sign_out"}), lang, "signed out")


# --- A worker killed mid-delivery ------------------------------------------------------------------------


def test_logouts_left_by_a_killed_worker_are_sent_by_the_recovery_sweep(client, outbox, portals, receiver,
                                                                       run_worker, clock):
    """``chave recover_stalled``: a worker killed while posting portal A's logout token leaves its row
    ``sending``, and one killed just after taking portal B's task leaves B's row ``queued`` with no
    task to run it. Once the claims are older than any POST may take, the sweep sends both again; each
    portal then gets a logout token it can verify (a second token for A would end nothing more)."""
    from django.core.management import call_command

    a, b = portals
    at_a, at_b = sign_in_to_both(client, outbox, a, b)
    assert client.post("/login/logout/").status_code == 302
    for task in waiting_tasks():
        task.claim("a-worker-that-was-killed")  # as db_worker claims each, just before it died
    to_a = BackchannelLogout.objects.get(relying_party__client_id=a.client_id)
    BackchannelLogout.objects.filter(pk=to_a.pk).update(status="sending", attempts=1, sending_since=clock.now())
    run_worker()
    assert receiver.received(A_PATH) == [] and receiver.received(B_PATH) == []  # nobody will run those tasks

    def sweep() -> dict:
        out = io.StringIO()
        call_command("recover_stalled", "--json", stdout=out)
        return json.loads(out.getvalue())

    assert sweep() == {"messages_interrupted": 0, "messages_requeued": 0, "logouts_resent": 0, "logouts_failed": 0}
    clock.travel(dt.timedelta(seconds=policy.get("delivery_sending_timeout_seconds") + 1))
    assert sweep() == {"messages_interrupted": 0, "messages_requeued": 0, "logouts_resent": 2, "logouts_failed": 0}
    assert sweep()["logouts_resent"] == 0  # one new task each, not one per sweep
    run_worker()

    [got_a], [got_b] = receiver.received(A_PATH), receiver.received(B_PATH)
    assert read_logout_token(client, got_a)[1]["sid"] == at_a["claims"]["sid"]
    assert read_logout_token(client, got_b)[1]["sid"] == at_b["claims"]["sid"]
    assert set(BackchannelLogout.objects.values_list("status", "attempts")) == {("delivered", 2), ("delivered", 1)}
    assert attempts("retry") == 1  # A's interrupted attempt, in the audit


def test_a_stalled_logout_on_its_last_attempt_fails_instead_of_going_on(client, outbox, portals, receiver, clock):
    a, b = portals
    sign_in_to_both(client, outbox, a, b)
    client.post("/login/logout/")
    last = policy.get("oidc_backchannel_max_attempts")
    BackchannelLogout.objects.filter(relying_party__client_id=a.client_id).update(
        status="sending", attempts=last, sending_since=clock.now())
    clock.travel(dt.timedelta(seconds=policy.get("delivery_sending_timeout_seconds") + 1))
    from chave.ops.recovery import recover_stalled

    assert recover_stalled()["logouts_failed"] == 1
    row = BackchannelLogout.objects.get(relying_party__client_id=a.client_id)
    assert row.status == "failed" and row.finished_at is not None and "worker stopped" in row.last_error


@pytest.mark.parametrize("lang", ["pt-pt", "en"])
def test_the_page_of_chave_s_own_sign_out_with_frames_is_accessible(client, outbox, portals, lang):
    from chave.testing.accessibility import assert_accessible

    c = register_portal(name="Portal C", redirect_uri="https://c.example.gov.pt/cb",
                        frontchannel_logout_uri="https://c.example.gov.pt/frontchannel-logout")
    tokens(client, outbox, c)
    client.cookies[settings.LANGUAGE_COOKIE_NAME] = lang
    assert_accessible(client.post("/login/logout/"), lang, "signed out of Chave")
