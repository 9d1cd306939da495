"""``chave seed_demo``, ``chave demo_portal`` and ``chave serve``: what a newcomer's ``make run`` does.

The serve tests run the real thing: migrate, seed the demo, ``chave serve --with-worker`` as a
process with DEBUG off, then a sign-in over HTTP with the code the worker delivered to the
development outbox, then SIGTERM, after which the worker must be gone too; and the same with
``--with-demo-portal``, signing in to the demo portal through Chave's pages.
"""

from __future__ import annotations

import datetime as dt
import http.cookiejar
import io
import json
import os
import re
import signal
import socket
import subprocess
import time
import urllib.error
import urllib.parse
import urllib.request
from pathlib import Path

import pytest
from django.core.management import call_command
from django.core.management.base import CommandError
from django.test import override_settings
from django.utils import translation

from chave.federation import services as federation
from chave.federation.models import RelyingParty
from chave.identity import services
from chave.identity.models import Citizen, Key, KeyStatus
from chave.identity.tests.test_cli import CHAVE, chave_environment, run_chave
from chave.login.forms import CodeForm, CredentialsForm
from chave.public.management.commands import seed_demo

BOUND = 60  # seconds: the most any wait on a real process may take before the test fails


def seed(**kwargs) -> str:
    out = io.StringIO()
    with translation.override("en"):
        call_command("seed_demo", stdout=out, stderr=io.StringIO(), **kwargs)
    return out.getvalue()


def demo_key() -> Key:
    """The demo citizen's live key."""
    return Key.objects.select_related("citizen").get(
        citizen__doc_number=seed_demo.DEMO_NIC, status__in=["pending", "active", "locked", "blocked"]
    )


# --- seed_demo ---------------------------------------------------------------------------


@pytest.mark.django_db
def test_seed_demo_refuses_outside_development():
    with translation.override("en"), pytest.raises(CommandError, match=r"only in development \(CHAVE_ENV=dev\)"):
        call_command("seed_demo", stdout=io.StringIO())
    assert not Citizen.objects.exists()


@pytest.mark.django_db
@override_settings(CHAVE_ENV="dev")
def test_seed_demo_creates_the_demo_citizen_once_and_prints_how_to_sign_in():
    first = seed()
    assert "Created the demo citizen." in first
    for shown in ("Maria Exemplo Sousa", "+351912345678", "912 345 678", "maria@example.pt", "PIN:           4719",
                  "http://127.0.0.1:8000/login/", "http://127.0.0.1:8000/dev/outbox/",
                  "chave outbox --to +351912345678 --last --json"):
        assert shown in first
    decision = services.check_login_pin(demo_key(), seed_demo.DEMO_PIN, ip="198.51.100.20")
    assert decision.ok and not decision.must_change_pin

    second = seed()
    assert "The demo citizen already exists." in second
    credentials = first.index("Demo citizen:")
    assert second[second.index("Demo citizen:"):] == first[credentials:]  # the same credentials
    assert Citizen.objects.count() == 1


@pytest.mark.django_db
@override_settings(CHAVE_ENV="dev")
@pytest.mark.parametrize(("wrong_pins", "status"), [(3, KeyStatus.LOCKED), (6, KeyStatus.BLOCKED)])
def test_seed_demo_again_unlocks_a_locked_or_blocked_demo_key(clock, wrong_pins, status):
    seed()
    for _ in range(wrong_pins):
        clock.travel(dt.timedelta(hours=2))  # past each lock, so every try counts
        services.check_login_pin(demo_key(), "5820", ip="198.51.100.21")
    assert demo_key().status == status

    out = seed()
    assert "It was locked after wrong PINs: it is unlocked again." in out
    key = demo_key()
    assert key.status == KeyStatus.ACTIVE and key.pin_failures == 0
    assert services.check_login_pin(key, seed_demo.DEMO_PIN, ip="198.51.100.22").ok


@pytest.mark.django_db
@override_settings(CHAVE_ENV="dev")
def test_seed_demo_again_restores_a_changed_demo_pin():
    seed()
    services.change_pin(demo_key(), "5820")
    out = seed()
    assert "Its PIN had been changed: it is the demo PIN again." in out
    assert services.check_login_pin(demo_key(), seed_demo.DEMO_PIN, ip="198.51.100.23").ok


@pytest.mark.django_db
@override_settings(CHAVE_ENV="dev")
def test_seed_demo_after_the_demo_key_was_cancelled_registers_a_new_one():
    seed()
    cancelled = demo_key()
    services.cancel_key(cancelled)
    out = seed()
    assert "The demo key was cancelled: a new demo key is registered." in out
    fresh = demo_key()
    assert fresh.pk != cancelled.pk and fresh.status == "active"
    assert Key.objects.filter(citizen=fresh.citizen).count() == 2


@pytest.mark.django_db
@override_settings(CHAVE_ENV="dev")
def test_seed_demo_gives_the_demo_clerk_a_citizen_card_of_their_own_once():
    from chave.card.devcards import _dev_card
    from chave.counter.models import Staff

    out = seed()
    clerk = seed_demo.DEMO_CLERK
    assert Staff.objects.get(user__username=clerk["username"]).nic == clerk["nic"]
    assert Staff.objects.exclude(nic="").count() == 1
    assert (f"balcao also signs in with their own Citizen Card at http://127.0.0.1:8000/counter/login/card: "
            f"card CC {clerk['nic']} ") in out

    def clerk_cards():
        return [c for c in json.loads(_dev_card("list", "--json")) if c["token_label"].startswith(f"CC {clerk['nic']} ")]

    assert len(clerk_cards()) == 1 and clerk_cards()[0]["holder"] == "Rita Balcão"
    Staff.objects.filter(user__username=clerk["username"]).update(nic="")
    seed()
    assert Staff.objects.get(user__username=clerk["username"]).nic == clerk["nic"]
    assert len(clerk_cards()) == 1


# --- seed_demo: the demo portal ------------------------------------------------------------------


@pytest.mark.django_db
@override_settings(CHAVE_ENV="dev")
def test_seed_demo_registers_and_approves_the_demo_portal_once_and_says_where_it_is():
    first = seed()
    party = RelyingParty.objects.get(name=seed_demo.DEMO_PORTAL_NAME)
    assert party.name == "Portal de Demonstração" and party.state == RelyingParty.State.APPROVED
    assert party.redirect_uris == ["http://127.0.0.1:8001/callback"]
    assert party.post_logout_redirect_uris == ["http://127.0.0.1:8001/signed-out"]
    assert party.backchannel_logout_uri == "http://127.0.0.1:8001/backchannel-logout"
    assert party.auth_method == "private_key_jwt" and party.jwks is None
    assert party.jwks_uri == "http://127.0.0.1:8001/jwks.json"  # the portal publishes its own key there
    assert party.mandatory_attributes == ["NomeCompleto"]
    assert {"NomeCompleto", "NomeProprio", "NomeApelido", "NIC", "CorreioElectronico"} <= set(party.allowed_attributes)
    assert party.min_level == 2
    assert "Registered the demo portal as a relying party, approved." in first
    assert f"Demo portal: Portal de Demonstração at http://127.0.0.1:8001/ (client_id {party.client_id}, approved)" \
        in first
    assert "chave serve --with-demo-portal" in first and "chave demo_portal" in first
    assert ("SAML demo portal: Portal SAML de Demonstração at http://127.0.0.1:8002/ (entity ID "
            "http://127.0.0.1:8002/saml/metadata, approved)") in first

    second = seed()
    assert RelyingParty.objects.filter(name=seed_demo.DEMO_PORTAL_NAME).count() == 1
    assert "Registered the demo portal" not in second
    assert f"client_id {party.client_id}, approved" in second


@pytest.mark.django_db
@override_settings(CHAVE_ENV="dev")
def test_seed_demo_approves_a_suspended_demo_portal_again():
    seed()
    federation.decide(RelyingParty.objects.get(name=seed_demo.DEMO_PORTAL_NAME), "suspend", by="test", reason="misbehaving")
    out = seed()
    assert "The demo portal was suspended: it is approved again." in out
    assert RelyingParty.objects.get(name=seed_demo.DEMO_PORTAL_NAME).state == RelyingParty.State.APPROVED


@pytest.mark.django_db
@override_settings(CHAVE_ENV="dev")
def test_seed_demo_registers_the_demo_portal_per_address():
    seed()
    seed(demo_portal_url="http://127.0.0.1:8011/")
    callbacks = sorted(uri for party in RelyingParty.objects.all() for uri in party.redirect_uris)
    assert callbacks == ["http://127.0.0.1:8001/callback", "http://127.0.0.1:8011/callback"]
    assert seed_demo.demo_portal("http://127.0.0.1:8011").redirect_uris == ["http://127.0.0.1:8011/callback"]


@pytest.mark.django_db
@override_settings(CHAVE_ENV="dev")
@pytest.mark.parametrize(("url", "refusal"), [
    ("http://portal.example.org", r"The demo portal could not be registered: Use an https:// address"),
    ("http://127.0.0.1:8001/portal", r"--demo-portal-url is where the demo portal runs, without a path"),
])
def test_seed_demo_refuses_a_demo_portal_address_it_cannot_use(url, refusal):
    with translation.override("en"), pytest.raises(CommandError, match=refusal):
        call_command("seed_demo", "--demo-portal-url", url, stdout=io.StringIO())
    assert not RelyingParty.objects.exists()


# --- demo_portal: refusals in-process ------------------------------------------------------------


@pytest.mark.django_db
def test_demo_portal_says_to_run_seed_demo_when_it_is_not_registered():
    with translation.override("en"), pytest.raises(
            CommandError, match=r"The demo portal is not registered for http://127.0.0.1:8002: run `chave seed_demo "
                                r"--demo-portal-url http://127.0.0.1:8002` first."):
        call_command("demo_portal", "--port", "8002", stdout=io.StringIO())


@pytest.mark.django_db
@override_settings(CHAVE_ENV="dev")
def test_demo_portal_refuses_a_suspended_registration():
    seed()
    federation.decide(RelyingParty.objects.get(name=seed_demo.DEMO_PORTAL_NAME), "suspend", by="test")
    with translation.override("en"), pytest.raises(CommandError, match=r"registration is suspended: run `chave "
                                                                      r"seed_demo` again"):
        call_command("demo_portal", stdout=io.StringIO())


@pytest.mark.django_db
@pytest.mark.parametrize("port", ["0", "70000"])
def test_demo_portal_refuses_a_port_out_of_range(port):
    with translation.override("en"), pytest.raises(CommandError, match="--port must be a number from 1 to 65535"):
        call_command("demo_portal", "--port", port, stdout=io.StringIO())


@pytest.mark.django_db
@override_settings(CHAVE_ENV="production")
def test_demo_portal_refuses_to_run_in_production():
    with translation.override("en"), pytest.raises(CommandError, match="for development only"):
        call_command("demo_portal", stdout=io.StringIO())


# --- serve: refusals in-process ----------------------------------------------------------------


@pytest.mark.django_db
@pytest.mark.parametrize("port", ["70000", "-1"])
def test_serve_refuses_a_port_out_of_range(port):
    with translation.override("en"), pytest.raises(CommandError, match="--port must be a number from 0 to 65535"):
        call_command("serve", "--port", port, stdout=io.StringIO())


@pytest.mark.django_db
@pytest.mark.parametrize("processes", ["1", "2"])
def test_serve_on_a_busy_port_is_a_clear_error(processes):
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        with translation.override("en"), pytest.raises(CommandError, match=f"Cannot listen on 127.0.0.1:{port}"):
            call_command("serve", "--port", str(port), "--processes", processes, stdout=io.StringIO())


@pytest.mark.django_db
def test_serve_refuses_no_processes():
    with translation.override("en"), pytest.raises(CommandError, match="--processes must be at least 1"):
        call_command("serve", "--processes", "0", stdout=io.StringIO())


def test_serve_uses_a_process_per_core_in_production_only(settings):
    from chave.public.management.commands.serve import default_processes

    settings.CHAVE_SERVE_PROCESSES = 0
    settings.IS_PRODUCTION = False
    assert default_processes() == 1
    settings.IS_PRODUCTION = True
    assert default_processes() == len(os.sched_getaffinity(0))
    settings.CHAVE_SERVE_PROCESSES = 3
    assert default_processes() == 3


# --- serve: the real thing ------------------------------------------------------------------


def _children(pid: int) -> list[int]:
    found = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                stat = (entry / "stat").read_text()
            except OSError:
                continue
            if int(stat.rsplit(")", 1)[1].split()[1]) == pid:
                found.append(int(entry.name))
    return found


def _alive(pid: int) -> bool:
    """True while ``pid`` runs (a zombie waiting to be reaped by init does not count)."""
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except OSError:
        return False
    return state != "Z"


def _wait_for(what: str, check, proc: subprocess.Popen, log: Path):
    deadline = time.monotonic() + BOUND
    while time.monotonic() < deadline:
        found = check()
        if found:
            return found
        if proc.poll() is not None:
            raise AssertionError(f"chave serve exited ({proc.returncode}) while waiting for {what}:\n{log.read_text()}")
        time.sleep(0.2)
    raise AssertionError(f"gave up waiting for {what}:\n{log.read_text()}")


class Browser:
    """Just enough of a browser: cookies, redirects, forms with their CSRF token. Paths are on
    ``base``; absolute URLs go where they say (``url`` is where the last answer came from)."""

    def __init__(self, base: str):
        self.base = base
        self.url = ""
        self.opener = urllib.request.build_opener(urllib.request.HTTPCookieProcessor(http.cookiejar.CookieJar()))
        self.opener.addheaders = [("Accept-Language", "en")]

    def _address(self, path: str) -> str:
        return path if path.startswith("http") else self.base + path

    def get(self, path: str):
        return self._open(urllib.request.Request(self._address(path)))

    def post(self, path: str, page: str | None, fields: dict):
        """A form's POST: with the page's CSRF token when it has one (Chave's pages)."""
        token = re.search(r'name="csrfmiddlewaretoken" value="([^"]+)"', page or "")
        data = urllib.parse.urlencode({**({"csrfmiddlewaretoken": token.group(1)} if token else {}), **fields},
                                      doseq=True).encode()
        return self._open(urllib.request.Request(self._address(path), data=data))

    def _open(self, request):
        try:
            with self.opener.open(request, timeout=30) as response:
                self.url = response.url
                return response.status, urllib.parse.urlsplit(response.url).path, response.headers, \
                    response.read().decode()
        except urllib.error.HTTPError as exc:
            raise AssertionError(f"{request.full_url} answered {exc.code}:\n{exc.read().decode()[:3000]}")


def _label(form, field: str) -> str:
    with translation.override("en"):
        return f'<label for="id_{field}">{form.base_fields[field].label}</label>'


@pytest.mark.parametrize("processes", [1, 2])
def test_serve_with_worker_signs_a_citizen_in_over_http_and_stops_the_worker(tmp_path, processes):
    """One process is waitress; --processes 2 is a gunicorn master with two worker processes, among
    which the login's requests are spread (its session and code live in the database)."""
    with chave_environment(tmp_path) as env:
        for args in (["migrate", "--noinput", "-v0"], ["seed_demo"]):
            done = run_chave(env, *args)
            assert done.returncode == 0, done.stderr
        assert "PIN:           4719" in done.stdout

        log = tmp_path / "serve.log"
        # DEBUG off: static files must be served by serve itself, not by a DEBUG-only helper.
        with log.open("w") as out:
            proc = subprocess.Popen([str(CHAVE), "serve", "--port", "0", "--with-worker",
                                     "--processes", str(processes)], stdout=out,
                                    stderr=subprocess.STDOUT, env={**env, "CHAVE_DEBUG": "0",
                                                                   "CHAVE_TRUSTED_PROXIES": "1"},
                                    start_new_session=True)
        workers: list[int] = []
        web: list[int] = []
        try:
            base = _wait_for("the URL", lambda: (m := re.search(r"(http://127\.0\.0\.1:\d+)/", log.read_text()))
                             and m.group(1), proc, log)
            workers = [pid for pid in _children(proc.pid)
                       if b"chave.cli\x00worker" in Path(f"/proc/{pid}/cmdline").read_bytes()]
            assert len(workers) == 1, f"expected one worker child: {workers}"
            if processes > 1:
                masters = [pid for pid in _children(proc.pid) if b"gunicorn" in Path(f"/proc/{pid}/cmdline").read_bytes()]
                assert len(masters) == 1, f"expected one gunicorn master: {masters}"
                web = _wait_for("the web processes", lambda: len(_children(masters[0])) == processes
                                and _children(masters[0]), proc, log)
                web += masters
                assert re.search(rf" {processes} \(gunicorn, ", log.read_text())  # the banner, in either language
            banner = log.read_text()
            assert f"{base}/login/" in banner and f"{base}/dev/outbox/" in banner
            assert "chave outbox --to" in banner

            browser = Browser(base)
            browser.opener.addheaders.append(("X-Forwarded-For", "203.0.113.77"))  # as the proxy in front says
            status, _path, _headers, home = browser.get("/")
            assert status == 200 and 'href="/login/"' in home
            status, _path, _headers, login = browser.get("/login/")
            assert status == 200
            assert _label(CredentialsForm, "identifier") in login and _label(CredentialsForm, "pin") in login
            stylesheet = re.search(r'<link rel="stylesheet" href="([^"]+)"', login).group(1)
            status, _path, headers, css = browser.get(stylesheet)
            assert status == 200 and headers["Content-Type"].startswith("text/css") and "{" in css

            status, path, _headers, page = browser.post("/login/", login, {
                "identifier": seed_demo.DEMO_PHONE_TYPED, "pin": seed_demo.DEMO_PIN})
            if path == "/login/channel/":  # the demo has a mobile number and an e-mail address
                status, path, _headers, page = browser.post("/login/channel/", page, {"channel": "sms"})
            assert (status, path) == (200, "/login/code/")
            assert "+351••••••678" in page and _label(CodeForm, "code") in page

            def delivered_code():
                result = run_chave(env, "outbox", "--to", seed_demo.DEMO_PHONE, "--last", "--json", timeout=BOUND)
                if result.returncode != 0:
                    return None
                match = re.search(r"#(\d{6})\s*$", json.loads(result.stdout)["body"])
                return match and match.group(1)

            code = _wait_for("the worker to deliver the code", delivered_code, proc, log)
            status, path, _headers, done_page = browser.post("/login/code/", page, {"code": code})
            assert (status, path) == (200, "/login/done/")
            assert seed_demo.DEMO_FULL_NAME in done_page
            # The citizen's address, not the proxy's, in the audit (and so in the per-address throttles).
            seen = run_chave(env, "shell", "-c", "from chave.audit.models import AuditEvent;"
                             "print(AuditEvent.objects.filter(event='login').latest('pk').ip)", timeout=BOUND)
            assert seen.stdout.strip().splitlines()[-1] == "203.0.113.77"
        finally:
            if proc.poll() is None:
                proc.send_signal(signal.SIGTERM)
            try:
                proc.wait(timeout=BOUND)
            except subprocess.TimeoutExpired:
                os.killpg(proc.pid, signal.SIGKILL)
                proc.wait()
            leftovers = [pid for pid in workers + web if _alive(pid)]
            for pid in leftovers:
                os.kill(pid, signal.SIGKILL)

        assert proc.returncode == 0, log.read_text()
        assert leftovers == [], "the worker or a web process outlived chave serve"
        assert "Traceback" not in log.read_text()


def test_serve_stops_with_an_error_when_the_worker_cannot_run(tmp_path):
    # Never migrated: the worker refuses to start, and serve must not go on without it.
    with chave_environment(tmp_path) as env:
        result = run_chave(env, "serve", "--port", "0", "--with-worker", timeout=BOUND)
    assert result.returncode == 1
    assert "chave migrate" in result.stderr  # the worker's own reason
    with translation.override("pt-pt"):
        from django.utils.translation import gettext

        stopped = gettext("The delivery worker stopped on its own (exit code %(code)s), so the service "
                          "stopped too.") % {"code": 1}
    assert stopped in result.stderr
    assert "Traceback" not in result.stdout + result.stderr


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


class _NoRedirect(urllib.request.HTTPRedirectHandler):
    def redirect_request(self, *args, **kwargs):
        return None


def _started_with(pid: int, word: bytes) -> list[int]:
    return [child for child in _children(pid) if word in Path(f"/proc/{child}/cmdline").read_bytes()]


def test_serve_with_the_demo_portal_logs_a_citizen_in_to_it_and_stops_it(tmp_path):
    port, portal_port, agent_port, saml_port = _free_port(), _free_port(), _free_port(), _free_port()
    base, portal = f"http://127.0.0.1:{port}", f"http://127.0.0.1:{portal_port}"
    saml_portal = f"http://127.0.0.1:{saml_port}"
    with chave_environment(tmp_path) as env:
        env["CHAVE_PUBLIC_URL"] = base  # as `make run` sets it
        env["CHAVE_CARD_AGENT_PORT"] = str(agent_port)
        for args in (["migrate", "--noinput", "-v0"],
                     ["seed_demo", "--demo-portal-url", portal, "--demo-saml-portal-url", saml_portal]):
            done = run_chave(env, *args)
            assert done.returncode == 0, done.stderr
        assert f"{portal}/" in done.stdout  # seed_demo says where the demo portal is

        log = tmp_path / "serve.log"
        with log.open("w") as out:
            proc = subprocess.Popen([str(CHAVE), "serve", "--port", str(port), "--with-worker", "--with-demo-portal",
                                     "--demo-portal-port", str(portal_port), "--with-card-agent",
                                     "--with-demo-saml-portal", "--demo-saml-portal-port", str(saml_port)],
                                    stdout=out, stderr=subprocess.STDOUT, env={**env, "CHAVE_DEBUG": "0"},
                                    start_new_session=True)
        children: list[int] = []
        try:
            def portal_answers():
                try:
                    with urllib.request.urlopen(portal + "/", timeout=BOUND) as response:
                        return response.status == 200
                except OSError:
                    return False

            def agent_answers():
                try:
                    with urllib.request.urlopen(f"http://127.0.0.1:{agent_port}/v1/status", timeout=BOUND) as response:
                        return response.status == 200
                except OSError:
                    return False

            def saml_portal_sends_to_chave():
                # Its login button: a signed AuthnRequest to Chave's SSO service (its metadata read).
                request = urllib.request.Request(saml_portal + "/login", data=b"level=3", method="POST")
                try:
                    urllib.request.build_opener(_NoRedirect).open(request, timeout=BOUND).close()
                except urllib.error.HTTPError as answer:  # the 303, not followed
                    return answer.headers.get("Location", "").startswith(f"{base}/saml/sso?SAMLRequest=")
                except OSError:
                    pass
                return False

            _wait_for("the demo portal", portal_answers, proc, log)
            _wait_for("the SAML demo portal", saml_portal_sends_to_chave, proc, log)
            _wait_for("the card agent", agent_answers, proc, log)
            assert log.read_text().count(f"{portal}/") >= 2  # in serve's banner and in the portal's own line
            assert f"http://127.0.0.1:{agent_port}/" in log.read_text()
            assert f"{saml_portal}/" in log.read_text()
            children = (_started_with(proc.pid, b"worker") + _started_with(proc.pid, b"demo_portal")
                        + _started_with(proc.pid, b"card-agent") + _started_with(proc.pid, b"demo_saml_portal"))
            assert len(children) == 4, f"expected the worker, the demo portals and the card agent: {children}"

            browser = Browser(portal)
            status, _path, _headers, home = browser.get("/")
            assert status == 200 and "Log in with Chave" in home
            status, path, _headers, page = browser.post("/login", None, {})
            assert (status, browser.url) == (200, f"{base}/login/")
            assert "Portal de Demonstração" in page  # Chave names the portal the citizen is signing in to
            status, path, _headers, page = browser.post(f"{base}/login/", page, {
                "identifier": seed_demo.DEMO_PHONE_TYPED, "pin": seed_demo.DEMO_PIN})
            if path == "/login/channel/":
                status, path, _headers, page = browser.post(f"{base}/login/channel/", page, {"channel": "sms"})
            assert (status, path) == (200, "/login/code/")

            def delivered_code():
                result = run_chave(env, "outbox", "--to", seed_demo.DEMO_PHONE, "--last", "--json", timeout=BOUND)
                if result.returncode != 0:
                    return None
                match = re.search(r"#(\d{6})\s*$", json.loads(result.stdout)["body"])
                return match and match.group(1)

            code = _wait_for("the worker to deliver the code", delivered_code, proc, log)
            status, path, _headers, page = browser.post(f"{base}/login/code/", page, {"code": code})
            assert (status, path) == (200, "/oidc/consent")
            offered = re.findall(r'name="attribute" value="([^"]+)"', page)
            status, _path, _headers, page = browser.post(f"{base}/oidc/consent", page,
                                                         {"decision": "allow", "attribute": offered})
            assert (status, browser.url) == (200, f"{portal}/")
            assert "<h1>Signed in to the Demo Portal</h1>" in page
            assert seed_demo.DEMO_FULL_NAME in page and seed_demo.DEMO_NIC in page
        finally:
            if proc.poll() is None:
                proc.send_signal(signal.SIGTERM)
            try:
                proc.wait(timeout=BOUND)
            except subprocess.TimeoutExpired:
                os.killpg(proc.pid, signal.SIGKILL)
                proc.wait()
            leftovers = [pid for pid in children if _alive(pid)]
            for pid in leftovers:
                os.kill(pid, signal.SIGKILL)

        assert proc.returncode == 0, log.read_text()
        assert leftovers == [], "the worker or the demo portal outlived chave serve"
        assert "Traceback" not in log.read_text()
        said = log.read_text()
        # How to stop is said once, by the service, not again by each child it runs.
        assert said.count("Ctrl-C") == 1 and "Ctrl+C stops" not in said and "Ctrl+C para terminar" not in said


def test_serve_stops_with_an_error_when_the_demo_portal_cannot_run(tmp_path):
    # Migrated but never seeded: the demo portal is not registered and refuses to start.
    portal_port = _free_port()
    with chave_environment(tmp_path) as env:
        done = run_chave(env, "migrate", "--noinput", "-v0")
        assert done.returncode == 0, done.stderr
        result = run_chave(env, "serve", "--port", "0", "--with-demo-portal", "--demo-portal-port", str(portal_port),
                           timeout=BOUND)
    assert result.returncode == 1
    assert f"chave seed_demo --demo-portal-url http://127.0.0.1:{portal_port}" in result.stderr  # the portal's reason
    with translation.override("pt-pt"):
        from django.utils.translation import gettext

        stopped = gettext("The demo portal stopped on its own (exit code %(code)s), so the service "
                          "stopped too.") % {"code": 1}
    assert stopped in result.stderr
    assert "Traceback" not in result.stdout + result.stderr
