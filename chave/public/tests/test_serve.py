"""``chave seed_demo`` and ``chave serve``: what a newcomer's ``make run`` does.

The serve test runs the real thing: migrate, seed the demo, ``chave serve --with-worker`` as a
process with DEBUG off, then a sign-in over HTTP with the code the worker delivered to the
development outbox, then SIGTERM, after which the worker must be gone too.
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
    assert second.split("\n", 1)[1] == first.split("\n", 1)[1]  # the same credentials
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


# --- serve: refusals in-process ----------------------------------------------------------------


@pytest.mark.django_db
@pytest.mark.parametrize("port", ["70000", "-1"])
def test_serve_refuses_a_port_out_of_range(port):
    with translation.override("en"), pytest.raises(CommandError, match="--port must be a number from 0 to 65535"):
        call_command("serve", "--port", port, stdout=io.StringIO())


@pytest.mark.django_db
def test_serve_on_a_busy_port_is_a_clear_error():
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        with translation.override("en"), pytest.raises(CommandError, match=f"Cannot listen on 127.0.0.1:{port}"):
            call_command("serve", "--port", str(port), stdout=io.StringIO())


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
    """Just enough of a browser: cookies, redirects, forms with their CSRF token."""

    def __init__(self, base: str):
        self.base = base
        self.opener = urllib.request.build_opener(urllib.request.HTTPCookieProcessor(http.cookiejar.CookieJar()))
        self.opener.addheaders = [("Accept-Language", "en")]

    def get(self, path: str):
        return self._open(urllib.request.Request(self.base + path))

    def post(self, path: str, page: str, fields: dict):
        token = re.search(r'name="csrfmiddlewaretoken" value="([^"]+)"', page).group(1)
        data = urllib.parse.urlencode({"csrfmiddlewaretoken": token, **fields}).encode()
        return self._open(urllib.request.Request(self.base + path, data=data))

    def _open(self, request):
        try:
            with self.opener.open(request, timeout=30) as response:
                return response.status, urllib.parse.urlsplit(response.url).path, response.headers, \
                    response.read().decode()
        except urllib.error.HTTPError as exc:
            raise AssertionError(f"{request.full_url} answered {exc.code}:\n{exc.read().decode()[:3000]}")


def _label(form, field: str) -> str:
    with translation.override("en"):
        return f'<label for="id_{field}">{form.base_fields[field].label}</label>'


def test_serve_with_worker_signs_a_citizen_in_over_http_and_stops_the_worker(tmp_path):
    with chave_environment(tmp_path) as env:
        for args in (["migrate", "--noinput", "-v0"], ["seed_demo"]):
            done = run_chave(env, *args)
            assert done.returncode == 0, done.stderr
        assert "PIN:           4719" in done.stdout

        log = tmp_path / "serve.log"
        # DEBUG off: static files must be served by serve itself, not by a DEBUG-only helper.
        with log.open("w") as out:
            proc = subprocess.Popen([str(CHAVE), "serve", "--port", "0", "--with-worker"], stdout=out,
                                    stderr=subprocess.STDOUT, env={**env, "CHAVE_DEBUG": "0"},
                                    start_new_session=True)
        workers: list[int] = []
        try:
            base = _wait_for("the URL", lambda: (m := re.search(r"(http://127\.0\.0\.1:\d+)/", log.read_text()))
                             and m.group(1), proc, log)
            workers = [pid for pid in _children(proc.pid)
                       if b"worker" in Path(f"/proc/{pid}/cmdline").read_bytes()]
            assert len(workers) == 1, f"expected one worker child: {workers}"
            banner = log.read_text()
            assert f"{base}/login/" in banner and f"{base}/dev/outbox/" in banner
            assert "chave outbox --to" in banner

            browser = Browser(base)
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
        finally:
            if proc.poll() is None:
                proc.send_signal(signal.SIGTERM)
            try:
                proc.wait(timeout=BOUND)
            except subprocess.TimeoutExpired:
                os.killpg(proc.pid, signal.SIGKILL)
                proc.wait()
            leftovers = [pid for pid in workers if _alive(pid)]
            for pid in leftovers:
                os.kill(pid, signal.SIGKILL)

        assert proc.returncode == 0, log.read_text()
        assert leftovers == [], "the worker outlived chave serve"
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
