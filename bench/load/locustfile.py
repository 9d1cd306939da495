"""Locust scenarios against a running Chave (issue 17): ``make load`` runs them (bench/load/run.py).

- :class:`CitizenSmsLogin`: a citizen signs in through the pages: identifier + PIN → SMS chosen →
  the code read from the phone (the development sink's table) → the signed-in page.
- :class:`SigningBatch`: an integrator has a citizen sign a batch of 100 hashes through the Cloud
  Signature Consortium API v2: service token (``client_credentials``) → ``credentials/list`` →
  ``credentials/sendOTP`` → the code read from the citizen's phone → ``credentials/authorize`` with
  the signing PIN, the code and the hashes → ``signatures/signHash`` → 100 signatures.
- :class:`PortalOidcLogin`: a portal logs a citizen in with OpenID Connect: authorization request
  (PKCE S256, state, nonce) → Chave's login pages as above → consent the first time → the code at
  the portal's redirect URI → the token request authenticated with ``private_key_jwt`` → the ID token
  validated (signature against Chave's JWKS, fetched once as portals cache it; iss, aud, nonce, exp).

Each complete login is reported as one request of its own (type ``LOGIN``) beside the pages it
is made of, so that its p50/p95/p99 come out of Locust's statistics. Every login comes from a
loopback address of its own (127.x.y.z): nginx tells Chave that address, so per-address throttles
count each citizen apart, as on the Internet.

Set by the runner (environment): ``CHAVE_LOAD_DATABASE_URL`` (where the phone reads its codes),
``CHAVE_LOAD_CITIZENS`` (citizens 0…N-1 of ``chave/testing/population.py``), ``CHAVE_LOAD_PIN``,
for portals ``CHAVE_LOAD_PORTAL`` (a JSON file: client_id, private JWK, redirect URI, issuer), and
for signing ``CHAVE_LOAD_SIGNERS`` (citizens 0…S-1 have signing active, PIN ``CHAVE_LOAD_SIGNING_PIN``)
and ``CHAVE_LOAD_INTEGRATOR`` (a JSON file: client_id, secret). Without them the scenario stays idle.
"""

from __future__ import annotations

import base64
import hashlib
import itertools
import json
import os
import random
import secrets
import sys
import time
from pathlib import Path
from urllib.parse import parse_qs, urlencode, urlsplit

from locust import HttpUser, between, events, task

sys.path.insert(0, str(Path(__file__).resolve().parent.parent.parent))

from chave.testing import population  # noqa: E402
from chave.testing.httpcitizen import TOKEN, Phone, _SourceAdapter, source_address  # noqa: E402

CITIZENS = int(os.environ.get("CHAVE_LOAD_CITIZENS", "1000"))
PIN = os.environ.get("CHAVE_LOAD_PIN", "4719")
_addresses = itertools.count(int(os.environ.get("CHAVE_LOAD_ADDRESS_OFFSET", "100000")))


class LoginFailed(Exception):
    pass


class ChaveUser(HttpUser):
    abstract = True
    wait_time = between(0.5, 1.5)

    def on_start(self):
        self.phone = Phone(os.environ["CHAVE_LOAD_DATABASE_URL"])
        self.rng = random.Random()

    def on_stop(self):
        self.phone.close()

    def fresh_browser(self) -> None:
        """A new browser from a new address: no cookies, no session."""
        self.client.cookies.clear()
        self.client.mount("http://", _SourceAdapter(source_address(next(_addresses))))
        self.page = ""

    def get(self, path: str, name: str | None = None, **kwargs):
        with self.client.get(path, name=name, catch_response=True, **kwargs) as r:
            self._keep(r)
            return r

    def post(self, path: str, fields: dict, name: str | None = None, **kwargs):
        token = TOKEN.search(self.page)
        data = {**({"csrfmiddlewaretoken": token.group(1)} if token else {}), **fields}
        with self.client.post(path, data=data, name=name, catch_response=True, **kwargs) as r:
            self._keep(r)
            return r

    def _keep(self, r) -> None:
        if r.status_code == 200:
            self.page = r.text
        if r.status_code in (200, 302, 303):
            r.success()
        else:
            r.failure(f"HTTP {r.status_code}")

    def pin_and_code(self, number: str) -> None:
        """From Chave's login page to the code accepted (the last answer is not followed)."""
        seen = self.phone.last_id(number)
        r = self.post("/login/", {"identifier": number, "pin": PIN})
        if r.status_code != 200:
            raise LoginFailed(f"PIN: HTTP {r.status_code}")
        if r.url.endswith("/login/channel/"):
            r = self.post("/login/channel/", {"channel": "sms"})
        if not r.url.endswith("/login/code/"):
            raise LoginFailed(f"no code page after the PIN ({urlsplit(r.url).path})")
        code = self.phone.wait_code(number, seen)
        self.code_response = self.post("/login/code/", {"code": code}, allow_redirects=False)
        if self.code_response.status_code != 302:
            raise LoginFailed(f"code: HTTP {self.code_response.status_code}")

    def timed(self, name: str, login) -> None:
        start = time.perf_counter()
        exception = None
        try:
            login()
        except Exception as exc:  # noqa: BLE001 - a failed login is counted as one, whatever failed
            exception = exc
        self.environment.events.request.fire(
            request_type="LOGIN", name=name, response_time=(time.perf_counter() - start) * 1000,
            response_length=0, exception=exception, context={})


class CitizenSmsLogin(ChaveUser):
    weight = 3

    @task
    def sms_login(self):
        def login():
            self.fresh_browser()
            number = population.phone(self.rng.randrange(CITIZENS))
            self.get("/login/")
            self.pin_and_code(number)
            r = self.get(self.code_response.headers["Location"], name="/login/done/")
            if not r.url.endswith("/login/done/"):
                raise LoginFailed("not signed in")

        self.timed("complete SMS login", login)


class PortalOidcLogin(ChaveUser):
    weight = 1

    def on_start(self):
        super().on_start()
        from joserfc.jwk import KeySet, RSAKey

        portal = json.loads(Path(os.environ["CHAVE_LOAD_PORTAL"]).read_text())
        self.client_id, self.redirect_uri, self.issuer = portal["client_id"], portal["redirect_uri"], portal["issuer"]
        self.key = RSAKey.import_key(portal["jwk"])
        self.provider_keys = KeySet.import_key_set(self.client.get("/oidc/jwks", name="/oidc/jwks").json())

    @task
    def oidc_login(self):
        self.timed("complete OIDC login", self._login)

    def _login(self):
        from joserfc import jwt

        self.fresh_browser()
        number = population.phone(self.rng.randrange(CITIZENS))
        state, nonce, verifier = secrets.token_urlsafe(16), secrets.token_urlsafe(16), secrets.token_urlsafe(48)
        challenge = base64.urlsafe_b64encode(hashlib.sha256(verifier.encode()).digest()).rstrip(b"=").decode()
        query = urlencode({"response_type": "code", "client_id": self.client_id, "redirect_uri": self.redirect_uri,
                           "scope": "openid profile pt:identity", "state": state, "nonce": nonce,
                           "code_challenge": challenge, "code_challenge_method": "S256"})
        r = self.get(f"/oidc/authorize?{query}", name="/oidc/authorize")
        if not r.url.endswith("/login/"):
            raise LoginFailed(f"authorize did not lead to the login page ({urlsplit(r.url).path})")
        self.pin_and_code(number)
        location = self.code_response.headers["Location"]
        for _ in range(4):  # back to authorize, the consent page the first time, then the portal
            if location.startswith(self.redirect_uri):
                break
            if location.endswith("/oidc/consent"):
                self.get(location, name="/oidc/consent")
                r = self.post(location, {"decision": "allow", "attribute": ["NomeProprio", "NIC"]},
                              name="/oidc/consent", allow_redirects=False)
            else:
                r = self.get(location, name="/oidc/authorize", allow_redirects=False)
            if r.status_code != 302:
                raise LoginFailed(f"{urlsplit(location).path}: HTTP {r.status_code}")
            location = r.headers["Location"]
        answer = {k: v[0] for k, v in parse_qs(urlsplit(location).query).items()}
        if answer.get("state") != state or "code" not in answer:
            raise LoginFailed(f"the portal got no code: {answer.get('error')}")
        now = int(time.time())
        assertion = jwt.encode({"alg": "RS256", "kid": self.key.kid},
                               {"iss": self.client_id, "sub": self.client_id, "aud": self.issuer + "/oidc/token",
                                "iat": now, "exp": now + 60, "jti": secrets.token_urlsafe(16)}, self.key)
        with self.client.post("/oidc/token", name="/oidc/token", catch_response=True, data={
                "grant_type": "authorization_code", "code": answer["code"], "redirect_uri": self.redirect_uri,
                "code_verifier": verifier, "client_assertion": assertion,
                "client_assertion_type": "urn:ietf:params:oauth:client-assertion-type:jwt-bearer"}) as r:
            if r.status_code != 200:
                r.failure(f"HTTP {r.status_code}")
                raise LoginFailed(f"token: HTTP {r.status_code}")
        claims = jwt.decode(r.json()["id_token"], self.provider_keys, algorithms=["RS256"]).claims
        jwt.JWTClaimsRegistry(now=int(time.time()), leeway=60, iss={"essential": True, "value": self.issuer},
                              aud={"essential": True, "value": self.client_id}, exp={"essential": True},
                              nonce={"essential": True, "value": nonce}).validate(claims)


SIGNERS = int(os.environ.get("CHAVE_LOAD_SIGNERS", "0"))
SIGNING_PIN = os.environ.get("CHAVE_LOAD_SIGNING_PIN", "5820")
SHA256 = "2.16.840.1.101.3.4.2.1"
_signers = itertools.count()


class SigningBatch(ChaveUser):
    """Each batch by the next signing citizen in turn: a citizen gets at most ``code_send_per_key``
    codes an hour, so a long run needs as many signers as batches per hour / that limit."""

    weight = 1

    def on_start(self):
        super().on_start()
        self.integrator = json.loads(Path(os.environ["CHAVE_LOAD_INTEGRATOR"]).read_text()) if SIGNERS else None
        self.token = None

    def api(self, name: str, body: dict, expect: int = 200):
        with self.client.post(f"/csc/v2/{name}", json=body, name=f"/csc/v2/{name}", catch_response=True,
                              headers={"Authorization": f"Bearer {self.token}"}) as r:
            if r.status_code != expect:
                r.failure(f"HTTP {r.status_code}")
                raise LoginFailed(f"{name}: HTTP {r.status_code} {r.text[:200]}")
            return r.json() if r.content else None

    @task
    def sign_batch(self):
        if not SIGNERS:
            return
        self.timed("signing batch of 100 hashes", self._batch)

    def _batch(self):
        if self.token is None or time.time() > self.token_expires:
            r = self.client.post("/oidc/token", name="/oidc/token (client_credentials)",
                                 data={"grant_type": "client_credentials", "scope": "csc"},
                                 auth=(self.integrator["client_id"], self.integrator["secret"]))
            if r.status_code != 200:
                raise LoginFailed(f"service token: HTTP {r.status_code}")
            self.token, self.token_expires = r.json()["access_token"], time.time() + r.json()["expires_in"] - 30
        number = population.phone(next(_signers) % SIGNERS)
        credential = self.api("credentials/list", {"userID": number})["credentialIDs"][0]
        seen = self.phone.last_id(number)
        self.api("credentials/sendOTP", {"credentialID": credential}, expect=204)
        code = self.phone.wait_code(number, seen)
        hashes = [base64.b64encode(hashlib.sha256(secrets.token_bytes(32)).digest()).decode() for _ in range(100)]
        sad = self.api("credentials/authorize", {"credentialID": credential, "numSignatures": len(hashes),
                                                 "PIN": SIGNING_PIN, "OTP": code, "hashes": hashes,
                                                 "hashAlgorithmOID": SHA256})["SAD"]
        algo = self.api("credentials/info", {"credentialID": credential})["key"]["algo"][0]
        signatures = self.api("signatures/signHash", {"credentialID": credential, "SAD": sad, "signAlgo": algo,
                                                      "hashes": hashes, "hashAlgorithmOID": SHA256})["signatures"]
        if len(signatures) != len(hashes):
            raise LoginFailed(f"{len(signatures)} signatures for {len(hashes)} hashes")


@events.init_command_line_parser.add_listener
def _(parser):
    parser.add_argument("--chave-note", default="", help="free text kept with the results")
