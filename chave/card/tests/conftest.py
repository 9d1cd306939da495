"""Fixtures of the Citizen Card tests: a real test PKI, real SoftHSM cards, a real card agent.

Once per session, in a temporary ``CHAVE_CARD_DEV_DIR``: the test PKI, and cards made by
``chave dev-card``'s service (keys generated on SoftHSM tokens): a good one, a second good one,
an expired one, a revoked one, one from a foreign CA (another test PKI that Chave does not trust)
and one whose revocation URLs answer nothing. Their certificates point at Chave's own CRL and
OCSP URLs on ``live_server``, so every verification asks Chave's OCSP responder for real.

Cards are touched only in processes of their own (the cards are made by a child process, and
``chave card-agent`` runs as a child process), as on a citizen's computer: PKCS#11 is loaded once
per process with one SoftHSM configuration, and the test process's belongs to the signing HSM.

Per test, :func:`card_citizen` writes what the civil registry knows of a card's holder (the
database is emptied between tests), and :class:`CardBrowser` drives a Django test client
through the card page, the real agent (HTTP, PKCS#11 signing) and back.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import html
import json
import os
import re
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from dataclasses import dataclass
from urllib.parse import urlencode, urlsplit

import pytest
from django.test import Client, override_settings

from chave import clock
from chave.identity.models import DocType
from chave.identity.registry import DocumentRef, IdentityRecord, LocalRecords

CARD_PIN = "2468"
BOUND = 60  # seconds: the most a wait on a real process may take
NICS = {"good": "11122233", "other": "22233344", "expired": "33344455", "revoked": "44455566",
        "foreign": "55566677", "unreachable": "66677788"}
NAMES = {"good": "Ana Maria Costa", "other": "Bruno Filipe Reis", "expired": "Carla Sofia Pinto",
         "revoked": "Duarte Jorge Lima", "foreign": "Eva Rita Nunes", "unreachable": "Filipe Manuel Sá"}


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@dataclass(frozen=True)
class TestCard:
    kind: str
    nic: str
    full_name: str
    token_label: str
    pin: str
    certificate_serial: str


@pytest.fixture(scope="session")
def card_dir(tmp_path_factory):
    directory = tmp_path_factory.mktemp("card-dev")
    with override_settings(CHAVE_CARD_DEV_DIR=directory):
        yield directory


def child_env(card_dir, **extra) -> dict:
    env = {k: v for k, v in os.environ.items() if k != "SOFTHSM2_CONF"}
    env.update({"CHAVE_CARD_DEV_DIR": str(card_dir), "PYTHONUNBUFFERED": "1", **extra})
    return env


_MAKE_CARDS = """
import json, sys, django
django.setup()
from chave import clock
from chave.card import devcards
from chave.card.pki import DevPki
spec = json.loads(sys.argv[1])
DevPki().init(now=clock.now())
foreign = DevPki(spec["foreign_dir"])
foreign.init(now=clock.now())
made = {}
for kind, c in spec["cards"].items():
    card = devcards.issue_card(nic=c["nic"], full_name=c["name"], pin=c["pin"], expired=kind == "expired",
                               revoked=kind == "revoked", base_url=c["base_url"],
                               pki=foreign if kind == "foreign" else None, record=False)
    made[kind] = {"token_label": card.token_label, "certificate_serial": card.certificate_serial}
print(json.dumps(made))
"""


@pytest.fixture(scope="session")
def cards(card_dir, live_server, tmp_path_factory) -> dict[str, TestCard]:
    """The session's test cards (see the module docstring), made by dev-card's service."""
    dead = f"http://127.0.0.1:{free_port()}"
    spec = {"foreign_dir": str(tmp_path_factory.mktemp("foreign-pki")), "cards": {
        kind: {"nic": nic, "name": NAMES[kind], "pin": CARD_PIN,
               "base_url": dead if kind == "unreachable" else live_server.url}
        for kind, nic in NICS.items()}}
    done = subprocess.run([sys.executable, "-c", _MAKE_CARDS, json.dumps(spec)], env=child_env(card_dir),
                          capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr
    made = json.loads(done.stdout.strip().splitlines()[-1])
    return {kind: TestCard(kind, NICS[kind], NAMES[kind], made[kind]["token_label"], CARD_PIN,
                           made[kind]["certificate_serial"]) for kind in NICS}


@pytest.fixture
def service(settings, live_server, cards):
    """Chave's public origin is the live server (it also answers OCSP and serves the CRL)."""
    settings.CHAVE_PUBLIC_URL = live_server.url
    return live_server.url


@dataclass
class AgentProcess:
    """``chave card-agent`` running as its own process."""

    port: int
    service_origin: str
    process: subprocess.Popen

    @property
    def own_origin(self) -> str:
        return f"http://127.0.0.1:{self.port}"


@contextlib.contextmanager
def running_agent(card_dir, service_url: str, *extra: str):
    """Start ``chave card-agent`` for ``service_url`` on a free port; stop it on exit."""
    port = free_port()
    process = subprocess.Popen(
        [sys.executable, "-m", "chave.cli", "card-agent", "--port", str(port), "--service", service_url, *extra],
        env=child_env(card_dir), stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
    )
    try:
        seen = ""
        deadline = time.monotonic() + BOUND
        ready = f"http://127.0.0.1:{port}"  # its own address, in whichever language it speaks
        while ready not in seen and time.monotonic() < deadline:
            line = process.stdout.readline()
            if not line and process.poll() is not None:
                raise AssertionError(f"the card agent did not start: {seen}{process.stderr.read()}")
            seen += line
        assert ready in seen, f"the card agent did not start in {BOUND} s: {seen}"
        yield AgentProcess(port, service_url, process)
    finally:
        process.terminate()
        process.wait(timeout=BOUND)


@pytest.fixture(scope="session")
def agent_server(card_dir, live_server, cards):
    """The real card agent, as its own process, for the session."""
    with running_agent(card_dir, live_server.url) as running:
        yield running


@pytest.fixture
def agent(agent_server, settings):
    settings.CHAVE_CARD_AGENT_PORT = agent_server.port
    return agent_server


def card_citizen(card: TestCard, *, birth_date=dt.date(1985, 6, 1), document_expiry=None):
    """What the civil registry knows of the card's holder."""
    given, family = card.full_name.split(" ", 1)
    LocalRecords().store(IdentityRecord(
        doc=DocumentRef(DocType.CITIZEN_CARD, "PT", card.nic), full_name=card.full_name, given_name=given,
        family_name=family, birth_date=birth_date,
        document_expiry=document_expiry or clock.today() + dt.timedelta(days=3000),
    ))


def hidden_fields(page: str, form_id: str | None = None) -> list[tuple[str, str]]:
    """The hidden inputs of the page (of the form with ``form_id``, when given)."""
    if form_id:
        match = re.search(rf'<form[^>]*id="{form_id}".*?</form>', page, re.S)
        assert match, f"no form #{form_id} in the page"
        page = match.group(0)
    return [(html.unescape(n), html.unescape(v))
            for n, v in re.findall(r'<input type="hidden" name="([^"]+)" value="([^"]*)"', page)]


def form_action(page: str, form_id: str) -> str:
    match = re.search(rf'<form[^>]*action="([^"]+)"[^>]*id="{form_id}"|<form[^>]*id="{form_id}"[^>]*action="([^"]+)"',
                      page)
    assert match, f"no form #{form_id}"
    return html.unescape(match.group(1) or match.group(2))


def http(url: str, *, data=None, headers=None, method=None):
    """(status, body text) of a real HTTP request (errors included)."""
    body = urlencode(data, doseq=True).encode() if isinstance(data, (dict, list)) else data
    request = urllib.request.Request(url, data=body, method=method or ("POST" if body is not None else "GET"),
                                     headers=headers or {})
    if isinstance(data, (dict, list)):
        request.add_header("Content-Type", "application/x-www-form-urlencoded")
    try:
        with urllib.request.urlopen(request, timeout=30) as response:
            return response.status, response.read().decode()
    except urllib.error.HTTPError as exc:
        return exc.code, exc.read().decode()


class CardBrowser:
    """A citizen's browser: Chave through the Django test client, the agent over real HTTP."""

    def __init__(self, client: Client, agent, service: str):
        self.client, self.agent, self.service = client, agent, service

    def card_page(self, next_url: str = "", *, path: str = "/card/") -> list[tuple[str, str]]:
        """The hidden fields of the card page's agent form (the citizen's, or ``path``'s)."""
        response = self.client.get(path + (f"?next={next_url}" if next_url else ""))
        assert response.status_code == 200, response
        page = response.content.decode()
        from django.conf import settings

        assert form_action(page, "card-agent-form") == f"http://127.0.0.1:{settings.CHAVE_CARD_AGENT_PORT}/sign"
        return hidden_fields(page, "card-agent-form")

    def at_agent(self, fields, *, pin: str = CARD_PIN, card: str = "", origin: str | None = None):
        """Post Chave's form to the agent (from ``origin``), then the PIN on the agent's page.
        Returns (status, page) of the agent's last answer."""
        status, page = http(f"{self.agent.own_origin}/sign", data=fields,
                            headers={"Origin": origin or self.service})
        if status != 200:
            return status, page
        request_id = dict(hidden_fields(page))["request"]
        form = {"request": request_id, "pin": pin}
        if card:
            form["card"] = card
        return http(f"{self.agent.own_origin}/pin", data=form, headers={"Origin": self.agent.own_origin})

    def answer(self, fields):
        """Post the agent's answer to Chave's return URL (as the agent's page does)."""
        return self.client.post("/card/return", dict_multi(fields))

    def sign_in(self, card: TestCard, *, next_url: str = "", path: str = "/card/"):
        """The whole card sign-in from the card page at ``path``; returns Chave's response after
        the finishing GET."""
        status, page = self.at_agent(self.card_page(next_url, path=path), card=card.token_label)
        assert status == 200, page
        response = self.answer(hidden_fields(page, "agent-return"))
        assert response.status_code == 303, response.content.decode()[:500]
        return self.client.get(response["Location"])


def dict_multi(fields):
    from django.utils.datastructures import MultiValueDict

    data = MultiValueDict()
    for name, value in fields:
        data.appendlist(name, value)
    return data


@pytest.fixture
def browser_for(agent, service):
    """A citizen's browser (in English unless a client is given)."""

    def make(client: Client | None = None) -> CardBrowser:
        if client is None:
            from django.conf import settings

            client = Client()
            client.cookies[settings.LANGUAGE_COOKIE_NAME] = "en"
        return CardBrowser(client, agent, service)

    return make


def json_sign(agent, fields: dict, *, origin: str | None = None):
    headers = {"Content-Type": "application/json"}
    if origin:
        headers["Origin"] = origin
    status, body = http(f"{agent.own_origin}/v1/sign", data=json.dumps(fields).encode(), headers=headers)
    return status, json.loads(body)


def origin_host(url: str) -> str:
    return urlsplit(url).netloc
