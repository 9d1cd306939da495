"""Real gateways on 127.0.0.1 for the delivery tests.

- ``kannel``: Debian's Kannel: ``bearerbox`` (with a ``fake`` SMSC), ``smsbox`` (the HTTP
  ``sendsms`` interface our provider speaks) and ``fakesmsc`` (the phone network's side: it
  connects to the fake SMSC and logs every SMS it receives). The boxes run once per session;
  each test gets its own fakesmsc and can take it away to make the gateway refuse (503).
- ``smtp_server``: an aiosmtpd server that keeps what it receives.
- ``x_api``: a small HTTP server speaking the X API v2 endpoint for direct messages.

Every server binds a free port on 127.0.0.1. Waiting for a subprocess or a delivery is always a
bounded wait on a condition (never a fixed sleep).
"""

from __future__ import annotations

import contextlib
import email
import email.policy
import json
import os
import re
import signal
import subprocess
import threading
import time
import urllib.request
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from urllib.parse import unquote_to_bytes

import pytest

from chave.testing.faults import die_with_pytest, free_port, port_open
from chave.testing.faults import wait_for as shared_wait_for

BEARERBOX = "/usr/sbin/bearerbox"
SMSBOX = "/usr/sbin/smsbox"
FAKESMSC = "/usr/lib/kannel/test/fakesmsc"
BOUND = 15.0  # seconds: the longest any wait on a local server may take


def wait_for(condition, *, timeout: float = BOUND, what: str = "condition"):
    """Poll ``condition`` until it returns something truthy, for at most ``timeout`` seconds."""
    return shared_wait_for(condition, timeout=timeout, what=what)


def stop_process(process: subprocess.Popen, *, sig=signal.SIGTERM) -> None:
    if process.poll() is None:
        process.send_signal(sig)
        try:
            process.wait(timeout=5)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait(timeout=5)


# --- Kannel ---------------------------------------------------------------------------------


@dataclass
class Sms:
    sender: str
    to: str
    text: str
    parts: int = 1


_GOT = re.compile(r"Got message \d+: <(.*)>$")


def _url_bytes(text: str) -> bytes:
    # Kannel's url-encoding writes a space as "+".
    return unquote_to_bytes(text.replace("+", "%20"))


def parse_fakesmsc_log(log: str) -> list[Sms]:
    """The SMS fakesmsc logged, with concatenated parts (UDH 8- or 16-bit reference) joined.

    fakesmsc logs each received line as ``Got message N: <sender receiver type ...>``:
    ``text <plain>``; ``ucs-2 <url-encoded UTF-16-BE>`` (what coding=2 gives); ``data <url-encoded
    bytes>``; ``udh <url-encoded UDH> data <url-encoded bytes>`` for the parts of a long message
    (their payload is UTF-16-BE too here, since our provider always asks for coding=2).
    """
    singles: list[Sms] = []
    partial: dict[tuple, dict[int, bytes]] = {}
    totals: dict[tuple, int] = {}
    order: list[tuple] = []
    for line in log.splitlines():
        match = _GOT.search(line)
        if not match:
            continue
        sender, to, kind, *rest = match.group(1).split(" ")
        if kind == "text":
            singles.append(Sms(sender, to, " ".join(rest)))
        elif kind == "ucs-2":
            singles.append(Sms(sender, to, _url_bytes(rest[0]).decode("utf-16-be")))
        elif kind == "data":
            singles.append(Sms(sender, to, _url_bytes(rest[0]).decode("latin-1")))
        elif kind == "udh":
            udh, payload = _url_bytes(rest[0]), _url_bytes(rest[2])
            if udh[1] == 0x00:  # concatenation, 8-bit reference: 05 00 03 ref total seq
                ref, total, seq = udh[3], udh[4], udh[5]
            elif udh[1] == 0x08:  # concatenation, 16-bit reference: 06 08 04 ref ref total seq
                ref, total, seq = (udh[3] << 8) | udh[4], udh[5], udh[6]
            else:
                raise AssertionError(f"unexpected UDH from Kannel: {udh!r}")
            key = (sender, to, ref)
            if key not in partial:
                order.append(key)
            partial.setdefault(key, {})[seq] = payload
            totals[key] = total
        else:
            raise AssertionError(f"unexpected fakesmsc line type {kind!r}: {line}")
    joined = []
    for key in order:
        parts = partial[key]
        if len(parts) == totals[key]:
            payload = b"".join(parts[i] for i in sorted(parts))
            joined.append(Sms(key[0], key[1], payload.decode("utf-16-be"), parts=len(parts)))
    return singles + joined


KANNEL_CONF = """\
group = core
admin-port = {admin}
admin-interface = 127.0.0.1
admin-password = {admin_password}
smsbox-port = {smsbox}
smsbox-interface = 127.0.0.1
box-allow-ip = "127.0.0.1"
admin-allow-ip = "127.0.0.1"
# No queue in bearerbox: while no SMSC is connected, sendsms answers 503 "Temporal failure"
# (instead of 202 "3: Queued for later delivery"), which is how the tests make the gateway fail.
sms-outgoing-queue-limit = 0
log-file = "{dir}/bearerbox.log"
log-level = 0
access-log = "{dir}/access.log"

group = smsc
smsc = fake
smsc-id = fake
port = {smsc}
our-host = 127.0.0.1
connect-allow-ip = "127.0.0.1"

group = smsbox
bearerbox-host = 127.0.0.1
sendsms-port = {sendsms}
sendsms-interface = 127.0.0.1
log-file = "{dir}/{smsbox_log}"
log-level = 0
{smsbox_extra}

group = sendsms-user
username = {username}
password = {password}
max-messages = 10
concatenation = true
"""


class KannelGateway:
    """bearerbox + smsbox for the session; fakesmsc (the SMSC's far end) per test."""

    username = "chave"
    password = "sendsms-secret"
    admin_password = "admin-secret"

    def __init__(self, directory: Path):
        self.dir = directory
        self.ports = {name: free_port() for name in ("admin", "smsbox", "smsc", "sendsms")}
        self.conf = directory / "kannel.conf"
        self.conf.write_text(self._conf_text())
        self.boxes: list[subprocess.Popen] = []
        self.smsc: subprocess.Popen | None = None
        self.smsc_log: Path | None = None
        self._smsc_runs = 0

    def _conf_text(self, *, smsbox_log="smsbox.log", smsbox_extra="", **ports) -> str:
        return KANNEL_CONF.format(dir=self.dir, admin_password=self.admin_password, username=self.username,
                                  password=self.password, smsbox_log=smsbox_log, smsbox_extra=smsbox_extra,
                                  **{**self.ports, **ports})

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.ports['sendsms']}/cgi-bin/sendsms"

    @contextlib.contextmanager
    def extra_smsbox(self, *options: str):
        """A second smsbox on the same bearerbox, with more ``smsbox`` group options; yields its URL."""
        port = free_port()
        conf = self.dir / f"smsbox-{port}.conf"
        conf.write_text(self._conf_text(smsbox_log=f"smsbox-{port}.log", smsbox_extra="\n".join(options),
                                        sendsms=port))
        process = self._spawn([SMSBOX, str(conf)], f"smsbox-{port}")
        try:
            self._wait_for_smsbox(self.dir / f"smsbox-{port}.log", port)
            yield f"http://127.0.0.1:{port}/cgi-bin/sendsms"
        finally:
            stop_process(process)

    def _spawn(self, argv, name):
        out = open(self.dir / f"{name}.out", "ab")
        return subprocess.Popen(argv, stdin=subprocess.DEVNULL, stdout=out, stderr=subprocess.STDOUT, cwd=self.dir,
                                preexec_fn=die_with_pytest)

    def start(self) -> None:
        self.boxes.append(self._spawn([BEARERBOX, str(self.conf)], "bearerbox"))
        wait_for(lambda: port_open(self.ports["smsbox"]) and port_open(self.ports["smsc"]),
                 what=f"bearerbox to listen (see {self.dir}/bearerbox.out)")
        self.boxes.append(self._spawn([SMSBOX, str(self.conf)], "smsbox"))
        self._wait_for_smsbox(self.dir / "smsbox.log", self.ports["sendsms"])

    def _wait_for_smsbox(self, log: Path, port: int) -> None:
        # smsbox listens before it has reached bearerbox: wait for both.
        def up():
            return port_open(port) and log.exists() and "Connected to bearerbox" in log.read_text(errors="replace")

        wait_for(up, what=f"smsbox on port {port} to be up and connected to bearerbox (see {log})")

    def stop(self) -> None:
        self.stop_smsc()
        for process in reversed(self.boxes):
            stop_process(process)
        self.boxes.clear()

    def smsc_state(self) -> str:
        """What bearerbox's status page says of the SMSC link: ``online``, ``re-connecting``, ...

        Its log is not the condition to wait for: bearerbox logs "Fakesmsc client connected"
        (and "EOF from fakesmsc client") before it changes the link's state, and until then a
        sendsms still gets the old answer."""
        url = f"http://127.0.0.1:{self.ports['admin']}/status.txt?password={self.admin_password}"
        with urllib.request.urlopen(url, timeout=BOUND) as response:
            status = response.read().decode(errors="replace")
        match = re.search(r"^\s+fake\[fake\]\s+\S+ \(([a-z-]+)", status, re.MULTILINE)
        return match.group(1) if match else ""

    def start_smsc(self) -> None:
        """Connect a fresh fakesmsc; returns once bearerbox has it online."""
        assert self.smsc is None
        self._smsc_runs += 1
        self.smsc_log = self.dir / f"fakesmsc-{self._smsc_runs}.log"
        log = open(self.smsc_log, "wb")
        # -m 0: send no mobile-originated message, only wait for and log what bearerbox sends
        # ("Got message N: <…>" lines, on stderr). A message argument keeps fakesmsc out of its
        # interactive (stdin) mode.
        self.smsc = subprocess.Popen(
            [FAKESMSC, "-H", "127.0.0.1", "-r", str(self.ports["smsc"]), "-m", "0", "0 0 text unused"],
            stdin=subprocess.DEVNULL, stdout=log, stderr=subprocess.STDOUT, cwd=self.dir, preexec_fn=die_with_pytest,
        )
        wait_for(lambda: self.smsc_state() == "online", what="bearerbox to have fakesmsc online")

    def stop_smsc(self) -> None:
        """Take the SMSC away; returns once bearerbox has noticed (sendsms then answers 503)."""
        if self.smsc is None:
            return
        stop_process(self.smsc, sig=signal.SIGINT)
        self.smsc = None
        wait_for(lambda: self.smsc_state() == "re-connecting", what="bearerbox to notice fakesmsc left")

    def received(self) -> list[Sms]:
        """Every SMS the current fakesmsc run has received."""
        if self.smsc_log is None or not self.smsc_log.exists():
            return []
        return parse_fakesmsc_log(self.smsc_log.read_text(errors="replace"))

    def wait_for_sms(self, to: str, count: int = 1) -> list[Sms]:
        """At least ``count`` complete SMS to ``to`` (all of them, once there are that many)."""

        def arrived():
            found = [sms for sms in self.received() if sms.to == to]
            return found if len(found) >= count else None

        return wait_for(arrived, what=f"{count} SMS to {to} at fakesmsc")


@pytest.fixture(scope="session")
def kannel_gateway(tmp_path_factory):
    missing = [path for path in (BEARERBOX, SMSBOX, FAKESMSC) if not os.access(path, os.X_OK)]
    if missing:
        pytest.fail(f"Kannel is not installed ({', '.join(missing)}): apt-get install kannel kannel-extras, "
                    "or run `make test`, which does")
    gateway = KannelGateway(tmp_path_factory.mktemp("kannel"))
    try:
        gateway.start()
        yield gateway
    finally:
        gateway.stop()


@pytest.fixture
def kannel(kannel_gateway, settings):
    """Kannel with an SMSC connected, and the SMS provider pointed at it."""
    settings.CHAVE_SMS_PROVIDER = "kannel"
    settings.CHAVE_KANNEL_URL = kannel_gateway.url
    settings.CHAVE_KANNEL_USERNAME = kannel_gateway.username
    settings.CHAVE_KANNEL_PASSWORD = kannel_gateway.password
    kannel_gateway.start_smsc()
    try:
        yield kannel_gateway
    finally:
        kannel_gateway.stop_smsc()


# --- SMTP -----------------------------------------------------------------------------------


@dataclass
class ReceivedMail:
    mail_from: str
    rcpt_tos: list[str]
    message: email.message.EmailMessage

    @property
    def body(self) -> str:
        return self.message.get_content()


@dataclass
class SmtpHandler:
    """Keeps what arrives; refuses recipients the test names (permanently or for now)."""

    received: list[ReceivedMail] = field(default_factory=list)
    refuse: dict[str, str] = field(default_factory=dict)  # address -> SMTP reply

    async def handle_RCPT(self, server, session, envelope, address, rcpt_options):
        if address.lower() in self.refuse:
            return self.refuse[address.lower()]
        envelope.rcpt_tos.append(address)
        return "250 OK"

    async def handle_DATA(self, server, session, envelope):
        # SMTP carries CRLF line ends; the message the recipient reads has plain ones.
        raw = (envelope.original_content or envelope.content).replace(b"\r\n", b"\n")
        message = email.message_from_bytes(raw, policy=email.policy.default)
        self.received.append(ReceivedMail(envelope.mail_from, list(envelope.rcpt_tos), message))
        return "250 Message accepted for delivery"


@pytest.fixture
def smtp_server(settings):
    """An aiosmtpd server on a free port, with the e-mail provider pointed at it."""
    from aiosmtpd.controller import Controller

    handler = SmtpHandler()
    controller = Controller(handler, hostname="127.0.0.1", port=free_port())
    controller.start()
    settings.CHAVE_EMAIL_PROVIDER = "smtp"
    settings.EMAIL_HOST, settings.EMAIL_PORT = "127.0.0.1", controller.port
    settings.EMAIL_USE_TLS, settings.EMAIL_HOST_USER, settings.EMAIL_HOST_PASSWORD = False, "", ""
    try:
        yield handler
    finally:
        controller.stop()


# --- X API v2 -------------------------------------------------------------------------------


@dataclass
class DirectMessage:
    participant_id: str
    text: str
    authorization: str


class XApiServer:
    """``POST /2/dm_conversations/with/<participant_id>/messages``, as X answers it.

    A valid bearer token and ``{"text": …}`` give 201 with ``dm_conversation_id`` and
    ``dm_event_id``; a wrong token 401. ``fail_with`` makes the next answers an error status
    instead (429, 503…; a 4xx quotes the end of the text back); ``hold`` keeps each request open
    until released (for races).
    """

    token = "x-test-bearer-token"
    _path = re.compile(r"^/2/dm_conversations/with/(\d{1,20})/messages$")

    def __init__(self):
        self.delivered: list[DirectMessage] = []
        self.requests = 0
        self.fail_with: list[int] = []  # statuses for the next requests, consumed in order
        self.hold: threading.Event | None = None
        self.lock = threading.Lock()
        server = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args):  # keep the test output quiet
                pass

            def _answer(self, status: int, payload: dict, headers: dict | None = None):
                data = json.dumps(payload).encode()
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                for name, value in (headers or {}).items():
                    self.send_header(name, value)
                self.end_headers()
                self.wfile.write(data)

            def do_POST(self):
                length = int(self.headers.get("Content-Length") or 0)
                raw = self.rfile.read(length)
                with server.lock:
                    server.requests += 1
                    failure = server.fail_with.pop(0) if server.fail_with else None
                if server.hold is not None:
                    server.hold.wait(BOUND)
                match = server._path.match(self.path)
                if not match:
                    return self._answer(404, {"title": "Not Found Error", "status": 404})
                if self.headers.get("Authorization") != f"Bearer {server.token}":
                    return self._answer(401, {"title": "Unauthorized", "type": "about:blank", "status": 401,
                                              "detail": "Unauthorized"})
                if failure == 429:
                    return self._answer(429, {"title": "Too Many Requests", "status": 429},
                                        {"x-rate-limit-reset": str(int(time.time()) + 60)})
                if failure is not None and failure >= 500:
                    return self._answer(failure, {"title": "Service Unavailable", "status": failure})
                try:
                    payload = json.loads(raw)
                    text = payload["text"]
                except (ValueError, KeyError, TypeError):
                    return self._answer(400, {"title": "Invalid Request", "status": 400})
                if failure is not None:  # a refusal that quotes what it refused, as some APIs do
                    return self._answer(failure, {"detail": f"cannot deliver {text[:100]!r}", "status": failure})
                with server.lock:
                    server.delivered.append(DirectMessage(match.group(1), text, self.headers["Authorization"]))
                    event = str(1800000000000000000 + len(server.delivered))
                return self._answer(201, {"data": {"dm_conversation_id": f"{match.group(1)}-42",
                                                   "dm_event_id": event}})

        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.httpd.daemon_threads = True
        self.url = f"http://127.0.0.1:{self.httpd.server_address[1]}"
        self.thread = threading.Thread(target=self.httpd.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)

    def start(self):
        self.thread.start()

    def stop(self):
        if self.hold is not None:
            self.hold.set()
        self.httpd.shutdown()
        self.httpd.server_close()


@pytest.fixture
def x_api(settings):
    """The local X API, with the X channel's provider pointed at it."""
    server = XApiServer()
    server.start()
    settings.CHAVE_X_PROVIDER = "xapi"
    settings.CHAVE_X_API_URL = server.url
    settings.CHAVE_X_BEARER_TOKEN = server.token
    settings.CHAVE_HTTP_TIMEOUT = BOUND
    try:
        yield server
    finally:
        server.stop()


@pytest.fixture
def closed_port() -> int:
    """A port on 127.0.0.1 where nothing listens: connections are refused."""
    port = free_port()
    assert not port_open(port)
    return port
