"""A citizen's browser over real HTTP, and their phone: the development sink's table in PostgreSQL.

:class:`Browser` keeps cookies, sends the CSRF token of the last form and, given ``source``, comes
from its own loopback address (127.x.y.z), as each citizen comes from their own: Chave counts
per-address throttles by the address nginx saw. :class:`Phone` reads the codes the delivery worker
handed to the sink (``delivery_devoutboxmessage``), waiting for them as a citizen waits for an SMS.
:func:`sms_login` is a complete two-factor login through the pages.

Used by ``bench/scale.py``, ``bench/population.py``, ``bench/load`` and the scale-out test.
"""

from __future__ import annotations

import re
import time
from dataclasses import dataclass

import requests
from requests.adapters import HTTPAdapter

PHONE_APPLICATION = "chave-bench-phone"
CODE = re.compile(r"#(\d{6})\s*$")
TOKEN = re.compile(r'name="csrfmiddlewaretoken" value="([^"]+)"')


class _SourceAdapter(HTTPAdapter):
    def __init__(self, source: str, **kwargs):
        self.source = source
        super().__init__(**kwargs)

    def init_poolmanager(self, *args, **kwargs):
        kwargs["source_address"] = (self.source, 0)
        super().init_poolmanager(*args, **kwargs)


def source_address(n: int) -> str:
    """The ``n``-th client address of the loopback range, never 127.0.0.1 itself."""
    n += 2
    return f"127.{(n >> 16) & 255}.{(n >> 8) & 255}.{n & 255}"


class Browser:
    def __init__(self, base: str, *, source: str | None = None, timeout: float = 60):
        self.base, self.timeout = base, timeout
        self.session = requests.Session()
        if source:
            adapter = _SourceAdapter(source)
            self.session.mount("http://", adapter)
        self.page = ""

    def get(self, path: str) -> requests.Response:
        return self._keep(self.session.get(self.base + path, timeout=self.timeout))

    def post(self, path: str, fields: dict) -> requests.Response:
        token = TOKEN.search(self.page)
        data = {**({"csrfmiddlewaretoken": token.group(1)} if token else {}), **fields}
        return self._keep(self.session.post(self.base + path, data=data, timeout=self.timeout))

    def _keep(self, response: requests.Response) -> requests.Response:
        if response.status_code == 200:
            self.page = response.text
        return response

    def close(self) -> None:
        self.session.close()


class Phone:
    """Codes from the development sink, read from the database the workers write to."""

    def __init__(self, database_url: str):
        import psycopg

        # Named, so that a benchmark can leave the phone's polling out of the database's CPU per login.
        self.connection = psycopg.connect(database_url, autocommit=True, application_name=PHONE_APPLICATION)

    def last_id(self, to: str) -> int:
        row = self.connection.execute("SELECT coalesce(max(id), 0) FROM delivery_devoutboxmessage WHERE \"to\" = %s",
                                      [to]).fetchone()
        return row[0]

    def messages(self, to: str, after: int) -> list[str]:
        rows = self.connection.execute(
            "SELECT body FROM delivery_devoutboxmessage WHERE \"to\" = %s AND id > %s ORDER BY id", [to, after])
        return [body for (body,) in rows]

    def wait_code(self, to: str, after: int, *, timeout: float = 30) -> str:
        deadline = time.monotonic() + timeout
        while True:
            for body in self.messages(to, after):
                match = CODE.search(body)
                if match:
                    return match.group(1)
            if time.monotonic() > deadline:
                raise TimeoutError(f"no code reached {to} in {timeout} s")
            time.sleep(0.05)  # a phone, not a busy loop: the benchmark's polling would take the cores it measures

    def close(self) -> None:
        self.connection.close()


@dataclass
class Login:
    ok: bool
    seconds: float
    code_wait: float  # from asking for the code to reading it on the phone
    step: str = ""  # where a failed login stopped
    status: int = 0


def sms_login(browser: Browser, phone: Phone, number: str, pin: str) -> Login:
    """Identifier + PIN, SMS chosen (when the citizen also has an e-mail address), the code typed:
    every page a browser would load, redirects followed, until the signed-in page."""
    start = time.perf_counter()

    def failed(step: str, response: requests.Response) -> Login:
        return Login(False, time.perf_counter() - start, 0.0, step, response.status_code)

    r = browser.get("/login/")
    if r.status_code != 200:
        return failed("login page", r)
    seen = phone.last_id(number)
    r = browser.post("/login/", {"identifier": number, "pin": pin})
    if r.status_code != 200:
        return failed("pin", r)
    if r.url.endswith("/login/channel/"):
        r = browser.post("/login/channel/", {"channel": "sms"})
        if r.status_code != 200:
            return failed("channel", r)
    if not r.url.endswith("/login/code/"):
        return failed("pin", r)
    asked = time.perf_counter()
    code = phone.wait_code(number, seen)
    code_wait = time.perf_counter() - asked
    r = browser.post("/login/code/", {"code": code})
    if r.status_code != 200 or not r.url.endswith("/login/done/"):
        return failed("code", r)
    return Login(True, time.perf_counter() - start, code_wait, status=r.status_code)
