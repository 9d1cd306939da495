#!/usr/bin/env python3
"""Login throughput against bare PIN hashing, measured in one run.

    .venv/bin/python bench/login.py [--logins N] [--hashes N]
    .venv/bin/python bench/login.py --http [--postgres URL] [--concurrency 1 2 4 8] [--processes N]

``--http`` measures complete logins over HTTP against a running ``chave serve --processes N
--with-worker`` at several concurrencies, against the bare PIN-hash rate of all cores, with the
code's time to the gateway and the service's memory (``bench/http_login.py`` says how). Without
it, what follows: one thread, in process.

A complete login is what a citizen does through the pages (Django's test client, less what only
tests need: ``bench/client.py``; so templates, sessions, CSRF-exempt client aside, the database
and the audit all count; forms posted urlencoded as browsers do): POST identifier + PIN
→ the code is issued and queued → the delivery worker's send step hands it to the development
sink → the code is read from the sink → POST code → signed-in page. The baseline is a bare
Argon2id verification of a PIN with the same parameters (``CHAVE_ARGON2``): ``--hashes`` of them
at the start (printed), and as many again for each kind beside its timed logins, which is what
that kind's ratio is against. The kinds' timed logins are interleaved in ``--rounds`` rounds (5):
each round runs a fifth of every kind's logins, each kind's share between a few bare checks of
its own, so that a machine whose speed drifts during the run (a shared VM's neighbours, CPU
frequency) moves every kind and the checks it is compared with alike, wherever the drift falls.
Before each round the process is settled as ``chave serve`` settles its serving processes once
they are loaded (``chave/ops/loaded.py``: what exists is frozen for the garbage collector). All
run on one thread, on a fresh embedded SQLite database in a temporary folder.

A complete OpenID Connect login (issue 3) is a portal's login of a citizen from a fresh browser
(no Chave session): the portal's authorization request (PKCE S256, state, nonce) → Chave's login
pages as above → back to the authorization endpoint → the code at the portal's redirect URI →
the token request authenticated with ``private_key_jwt`` (the portal signs a new assertion each
time) → the ID token validated by the portal (signature against Chave's JWKS, fetched once as a
portal caches it; iss, aud, exp, nonce). What is timed is a *returning* citizen's login: each
citizen answered the consent page at an earlier, untimed login, so the timed one skips it —
consent is asked once per portal (and again only for new attributes), a PIN and a code at every
login. First logins (with the consent page) are timed too and printed for comparison.

Complete logins with the Chave app (issue 12), each citizen's device paired beforehand (untimed)
and driven by the Python device client (``chave/testing/device.py``: ECDSA P-256 signatures on
every call, as a native app signs them): by *approval* (identifier + PIN → "Approve in the app" →
the device reads its inbox and taps the number, signed → the login page, as its meta refresh
does → signed in) and by *offline code* (identifier + PIN → "offline code" → the device makes
the RFC 6238 code → typed → signed in).

With DPoP (issue 14): the same returning citizen's login by a portal registered to use DPoP
(RFC 9449): its token request carries a DPoP proof (with the server's nonce, kept from the last
answer as clients do), and the login ends with a userinfo call under the DPoP scheme with a proof
of its own — so the proof checks at both ends are counted.

SAML 2.0 (issue 13): the same returning citizen's login by a portal written from the
autenticacao.gov manual on python3-saml (its AuthnRequest with FAAALevel 3 and RequestedAttributes,
signed with the toolkit's xmlsec bindings) posted to ``/saml/sso`` → Chave's login pages → the
signed Response, validated by python3-saml in strict mode (Chave's signatures against its metadata,
audience, recipient, InResponseTo, times). Goal >= 0.5.

Goals: logins per second / PIN verifications per second >= 0.6 (issue 2, and issue 12 for the app's
logins); the ratio of OIDC logins is reported (issue 3); OIDC logins with DPoP >= 0.5 (issue 14).
"""

from __future__ import annotations

import argparse
import datetime as dt
import functools
import os
import re
import statistics
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--logins", type=int, default=40)
    parser.add_argument("--hashes", type=int, default=40)
    parser.add_argument("--rounds", type=int, default=5,
                        help="rounds the kinds' timed logins are interleaved in (each kind's share of a round "
                             "between bare PIN checks of its own)")
    parser.add_argument("--oidc-logins", type=int, default=None,
                        help="OpenID Connect logins to time (default: as many as --logins)")
    parser.add_argument("--app-logins", type=int, default=None,
                        help="Chave app logins of each kind to time (default: as many as --logins)")
    parser.add_argument("--http", action="store_true", help="complete logins over HTTP against chave serve")
    parser.add_argument("--postgres", metavar="URL", help="--http on PostgreSQL: a server URL (a database is "
                        "created there for the run and dropped)")
    parser.add_argument("--concurrency", type=int, nargs="+", default=[1, 2, 4, 8])
    parser.add_argument("--logins-per-round", type=int, default=40)
    parser.add_argument("--processes", type=int, default=0, help="chave serve --processes (default: the cores)")
    parser.add_argument("--argon2-before-after", action="store_true",
                        help="print bare PIN verifications per core with the Argon2id cost before issue 17 "
                             "(t=3, 64 MiB) and now, and stop")
    args = parser.parse_args()
    if args.http:
        from bench import http_login

        args.citizens = args.logins_per_round * len(args.concurrency) + http_login.WARM_UP_PER_PROCESS * (
            args.processes or len(os.sched_getaffinity(0)))
        return http_login.run(args)
    if args.argon2_before_after:
        from bench import http_login

        cores = len(os.sched_getaffinity(0))
        for label, params in (("before issue 17 (t=3, 64 MiB)", (3, 65536, 1)),
                              ("now, OWASP's minimum (t=2, 19 MiB)", (2, 19456, 1))):
            rate = http_login.bare_hash_rate(params, cores)
            print(f"bare PIN verifications {label}: {rate / cores:.1f}/s per core ({rate:.1f}/s on {cores} cores)")
        return 0
    oidc_logins = args.logins if args.oidc_logins is None else args.oidc_logins
    app_logins = args.logins if args.app_logins is None else args.app_logins

    os.environ["CHAVE_DATA_DIR"] = tempfile.mkdtemp(prefix="chave-bench-")
    os.environ.setdefault("CHAVE_ENV", "dev")
    os.environ.setdefault("CHAVE_DEBUG", "0")  # as in production (and bench --http): no query log
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "chave.settings")
    import django

    django.setup()
    from django.conf import settings
    from django.core.management import call_command
    from bench.client import BenchClient as Client

    from chave import clock
    from chave.delivery.models import DevOutboxMessage, MessageStatus, OutboundMessage
    from chave.delivery.services import send_message
    from chave.identity import pins, services
    from chave.identity.models import ContactKind
    from chave.identity.registry import DocumentRef, IdentityRecord, LocalRecords
    from chave.ops.loaded import settle

    call_command("migrate", verbosity=0)
    pin = "4719"
    phones = []
    for i in range(max(args.logins, oidc_logins + 1)):
        nic = f"{20000000 + i:08d}"
        doc = DocumentRef("cc", "PT", nic)
        LocalRecords().store(IdentityRecord(doc=doc, full_name=f"Bench Citizen {i}", given_name="Bench",
                                            family_name="Citizen", birth_date=dt.date(1980, 1, 1),
                                            document_expiry=clock.today() + dt.timedelta(days=3650)))
        phone = f"+3519100{i:05d}"
        services.register_citizen(doc, [services.ContactInput(ContactKind.MOBILE, phone)], pin=pin,
                                  contacts_verified_by="bench")
        phones.append(phone)
    app_citizens = BenchApp.register(app_logins + 1, pin)
    # Activation notices are not part of a login.
    OutboundMessage.objects.all().delete()

    stored = pins.hash_pin(pin)
    pins.verify(stored, pin)  # warm-up
    t0 = time.perf_counter()
    for _ in range(args.hashes):
        ok, _ = pins.verify(stored, pin)
        assert ok
    hash_seconds = time.perf_counter() - t0
    # The kinds' timed logins run interleaved, in ``--rounds`` rounds: each round runs a share of
    # every kind's logins, each share between bare PIN checks of its own, and each kind's ratio is
    # against the checks beside its own shares. A machine whose speed drifts during the run (a
    # shared VM's neighbours, frequency scaling) then moves every kind and its checks alike,
    # wherever in the run the drift falls. (Not one check beside each login: the next login would
    # start with the caches the check flushed, which no server sees twice.)
    paired: dict[str, list[float]] = {}
    per_bracket = max(2, round(args.hashes / (2 * args.rounds)))

    def hashes(kind: str) -> None:
        for _ in range(per_bracket):
            t = time.perf_counter()
            ok, _ = pins.verify(stored, pin)
            paired.setdefault(kind, []).append(time.perf_counter() - t)
            assert ok

    def hash_rate(kind: str) -> float:
        return len(paired[kind]) / sum(paired[kind])

    def one_login(i: int, phone: str) -> float:
        client = Client(REMOTE_ADDR=f"10.{i // 250}.{i % 250}.1")
        start = time.perf_counter()
        r = client.post("/login/", {"identifier": phone, "pin": pin})
        assert r.status_code == 302 and r["Location"].endswith("/login/code/"), r.status_code
        for message in OutboundMessage.objects.filter(status=MessageStatus.QUEUED, destination=phone):
            send_message(str(message.pk))
        body = DevOutboxMessage.objects.filter(to=phone).latest("sent_at", "id").body
        code = re.search(r"#(\d{6})\s*$", body).group(1)
        r = client.post("/login/code/", {"code": code})
        assert r.status_code == 302 and r["Location"].endswith("/login/done/"), r.status_code
        return time.perf_counter() - start

    portal, dpop_portal, saml_portal = BenchPortal(), BenchPortal(dpop=True), BenchSaml()
    app = BenchApp(app_citizens, pin)
    # Untimed: a warm-up of each kind (templates, caches), and the consent every returning citizen
    # gave the DPoP and SAML portals at an earlier login (the first OIDC logins, timed, give it to
    # the OIDC portal before that portal's returning logins).
    one_login(0, phones[0])
    portal.login(phones[0], pin, ip="10.100.0.1", first=True)
    for i, phone in enumerate(phones[:oidc_logins + 1]):
        dpop_portal.login(phone, pin, ip=f"10.102.{i}.1", first=True)
        saml_portal.login(phone, pin, ip=f"10.104.{i}.1", first=True)
    app.warm_up()

    oidc_phones = list(enumerate(phones[1:oidc_logins + 1], start=1))
    logins = {  # in the order a round runs them: a citizen's first OIDC login before the returning one
        "sms": [functools.partial(one_login, i, phone) for i, phone in enumerate(phones[1:args.logins], start=1)],
        "first_oidc": [functools.partial(portal.login, phone, pin, ip=f"10.100.{i}.1", first=True)
                       for i, phone in oidc_phones],
        "oidc": [functools.partial(portal.login, phone, pin, ip=f"10.101.{i}.1", first=False)
                 for i, phone in oidc_phones],
        "dpop": [functools.partial(dpop_portal.login, phone, pin, ip=f"10.103.{i}.1", first=False)
                 for i, phone in oidc_phones],
        "saml": [functools.partial(saml_portal.login, phone, pin, ip=f"10.105.{i}.1", first=False)
                 for i, phone in oidc_phones],
        "approval": app.logins(app.approval_login),
        "offline": app.logins(app.offline_login),
    }
    timed: dict[str, list[float]] = {kind: [] for kind in logins}
    for r in range(args.rounds):
        settle()  # what a server process does once it is loaded (chave serve; ops/loaded.py)
        for kind, runs in logins.items():
            share = runs[r * len(runs) // args.rounds:(r + 1) * len(runs) // args.rounds]
            if share:
                hashes(kind)
                timed[kind].extend(run() for run in share)
                hashes(kind)
    durations, first_oidc, oidc, dpop, saml, approvals, offline = timed.values()
    login_seconds = sum(durations)

    hashes_per_s = args.hashes / hash_seconds
    logins_per_s = len(durations) / login_seconds
    p = settings.CHAVE_ARGON2
    print(f"Argon2id parameters: time_cost={p['time_cost']} memory={p['memory_cost']} KiB parallelism={p['parallelism']}")
    print(f"database: {settings.DATABASES['default']['ENGINE'].rsplit('.', 1)[-1]}, one thread")
    print(f"bare PIN verifications: {args.hashes} in {hash_seconds:.2f} s = {hashes_per_s:.1f}/s at the start; "
          f"each ratio is against the ones made beside its own logins, the kinds interleaved in {args.rounds} rounds "
          f"(rate in brackets)")
    print(f"complete logins:        {len(durations)} in {login_seconds:.2f} s = {logins_per_s:.1f}/s "
          f"(median {statistics.median(durations) * 1000:.0f} ms)")
    ratio = logins_per_s / hash_rate("sms")
    print(f"ratio logins/hashes:    {ratio:.2f} [{hash_rate('sms'):.1f}/s] (goal >= 0.6: {'met' if ratio >= 0.6 else 'NOT met'})")
    if oidc:
        oidc_per_s = len(oidc) / sum(oidc)
        first_per_s = len(first_oidc) / sum(first_oidc)
        print(f"complete OIDC logins:   {len(oidc)} in {sum(oidc):.2f} s = {oidc_per_s:.1f}/s "
              f"(median {statistics.median(oidc) * 1000:.0f} ms; returning citizen, consent remembered; "
              f"authorize → PIN → code → token with private_key_jwt → ID token validated)")
        print(f"ratio OIDC logins/hashes: {oidc_per_s / hash_rate('oidc'):.2f} [{hash_rate('oidc'):.1f}/s]")
        print(f"  first OIDC logins (with the consent page): {first_per_s:.1f}/s "
              f"(median {statistics.median(first_oidc) * 1000:.0f} ms), ratio {first_per_s / hash_rate('first_oidc'):.2f}")
        dpop_per_s = len(dpop) / sum(dpop)
        dpop_ratio = dpop_per_s / hash_rate("dpop")
        print(f"complete OIDC logins with DPoP: {len(dpop)} in {sum(dpop):.2f} s = {dpop_per_s:.1f}/s "
              f"(median {statistics.median(dpop) * 1000:.0f} ms; token request and userinfo with DPoP proofs and nonces)")
        print(f"ratio OIDC+DPoP logins/hashes: {dpop_ratio:.2f} [{hash_rate('dpop'):.1f}/s] (goal >= 0.5: {'met' if dpop_ratio >= 0.5 else 'NOT met'})")
    if saml:
        saml_per_s = len(saml) / sum(saml)
        saml_ratio = saml_per_s / hash_rate("saml")
        print(f"complete SAML logins:   {len(saml)} in {sum(saml):.2f} s = {saml_per_s:.1f}/s "
              f"(mean {1000 * sum(saml) / len(saml):.0f} ms)")
        print(f"ratio SAML logins/hashes: {saml_ratio:.2f} [{hash_rate('saml'):.1f}/s] (goal >= 0.5: {'met' if saml_ratio >= 0.5 else 'NOT met'})")
    for label, kind, timed in (("app approval logins", "approval", approvals),
                               ("app offline-code logins", "offline", offline)):
        if timed:
            rate = len(timed) / sum(timed)
            print(f"{label + ':':24}{len(timed)} in {sum(timed):.2f} s = {rate:.1f}/s "
                  f"(median {statistics.median(timed) * 1000:.0f} ms)")
            ratio = rate / hash_rate(kind)
            print(f"ratio {label}/hashes: {ratio:.2f} [{hash_rate(kind):.1f}/s] (goal >= 0.6: {'met' if ratio >= 0.6 else 'NOT met'})")
    return 0


class BenchApp:
    """Citizens with a device of the Chave app each (paired through the services and the app API,
    untimed), and their logins by approval and by offline code, timed."""

    def __init__(self, citizens, pin: str):
        self.citizens, self.pin = citizens, pin

    @staticmethod
    def register(count: int, pin: str) -> list:
        from bench.client import BenchClient as Client

        from chave import clock
        from chave.app import services as app
        from chave.delivery.models import DevOutboxMessage, MessageStatus, OutboundMessage
        from chave.delivery.services import send_message
        from chave.identity import services
        from chave.identity.models import ContactKind
        from chave.identity.registry import DocumentRef, IdentityRecord, LocalRecords
        from chave.testing.device import Device, DjangoTransport

        citizens = []
        for i in range(count):
            nic = f"{30000000 + i:08d}"
            doc = DocumentRef("cc", "PT", nic)
            LocalRecords().store(IdentityRecord(doc=doc, full_name=f"App Citizen {i}", given_name="App",
                                                family_name="Citizen", birth_date=dt.date(1980, 1, 1),
                                                document_expiry=clock.today() + dt.timedelta(days=3650)))
            phone = f"+3519200{i:05d}"
            key, _ = services.register_citizen(doc, [services.ContactInput(ContactKind.MOBILE, phone)], pin=pin,
                                               contacts_verified_by="bench")
            device = Device(DjangoTransport(Client(REMOTE_ADDR=f"10.200.{i // 250}.{i % 250}")))
            device.pair(app.start_pairing(key, assurance_level=3, ip=None).code, name=f"Bench {i}")
            for message in OutboundMessage.objects.filter(status=MessageStatus.QUEUED, destination=phone):
                send_message(str(message.pk))
            body = DevOutboxMessage.objects.filter(to=phone).latest("sent_at", "id").body
            device.confirm(re.search(r"#(\d{6})\s*$", body).group(1))
            citizens.append((phone, device))
        return citizens

    def warm_up(self) -> None:
        phone, device = self.citizens[0]
        self.approval_login(0, phone, device)
        self.offline_login(0, phone, device)

    def logins(self, login) -> list:
        """One timed ``login`` (a callable returning its seconds) per citizen but the first."""
        return [functools.partial(login, i, phone, device)
                for i, (phone, device) in enumerate(self.citizens[1:], start=1)]

    def _past_the_pin(self, i: int, phone: str, channel: str):
        from bench.client import BenchClient as Client

        browser = Client(REMOTE_ADDR=f"10.201.{i // 250}.{i % 250}")
        r = browser.post("/login/", {"identifier": phone, "pin": self.pin})
        assert r.status_code == 302 and r["Location"].endswith("/login/channel/"), r.status_code
        r = browser.post("/login/channel/", {"channel": channel})
        assert r.status_code == 302, r.status_code
        return browser

    def approval_login(self, i: int, phone: str, device) -> float:
        start = time.perf_counter()
        browser = self._past_the_pin(i, phone, "app_approve")
        page = browser.get("/login/approve/").content.decode()
        number = int(re.search(r'id="match-number"[^>]*>(\d+)<', page).group(1))
        waiting = device.inbox()["approvals"][0]
        assert number in waiting["numbers"]
        assert device.approve(waiting["id"], number)["result"] == "approved"
        r = browser.get("/login/approve/")  # the page's meta refresh
        assert r.status_code == 302 and r["Location"].endswith("/login/done/"), r.status_code
        return time.perf_counter() - start

    def offline_login(self, i: int, phone: str, device) -> float:
        start = time.perf_counter()
        browser = self._past_the_pin(i, phone, "app_offline")
        r = browser.post("/login/code/", {"code": device.offline_code()})
        assert r.status_code == 302 and r["Location"].endswith("/login/done/"), r.status_code
        return time.perf_counter() - start


class BenchPortal:
    """A relying party as a portal would drive Chave: registered with ``private_key_jwt`` (an
    RSA key of its own, its JWKS registered inline), Chave's JWKS read once and kept."""

    REDIRECT_URI = "https://bench-portal.example.gov.pt/callback"

    def __init__(self, *, dpop: bool = False):
        from joserfc.jwk import ECKey, KeySet, RSAKey

        from chave.federation import services as federation
        from chave.oidc import services
        from chave.oidc.server import issuer

        self.key = RSAKey.generate_key(2048, private=True)
        self.key.ensure_kid()
        registration = services.register_relying_party(
            name="Portal de Medição", entity_nif="600084779", contact_email="bench@portal.example.gov.pt",
            redirect_uris=[self.REDIRECT_URI], allowed_attributes=["NomeCompleto", "NomeProprio", "NIC"],
            mandatory_attributes=["NomeCompleto"], jwks={"keys": [self.key.as_dict(private=False)]},
            require_dpop=dpop, by="bench")
        self.dpop_key = ECKey.generate_key("P-256", private=True) if dpop else None
        self.dpop_nonce = None
        self.client_id = federation.decide(registration.relying_party, "approve", by="bench").client_id
        self.issuer = issuer()
        from bench.client import BenchClient as Client

        self.provider_keys = KeySet.import_key_set(Client().get("/oidc/jwks").json())

    def login(self, phone: str, pin: str, *, ip: str, first: bool) -> float:
        """One login from a fresh browser, timed from the authorization request to the validated ID
        token; ``first`` says the consent page is expected (and answered)."""
        import base64
        import hashlib
        import secrets
        from urllib.parse import parse_qs, urlencode, urlsplit

        from bench.client import BenchClient as Client
        from joserfc import jwt

        from chave.delivery.models import (
            DevOutboxMessage,
            MessageStatus,
            OutboundMessage,
        )
        from chave.delivery.services import send_message

        browser = Client(REMOTE_ADDR=ip)
        state, nonce, verifier = secrets.token_urlsafe(16), secrets.token_urlsafe(16), secrets.token_urlsafe(48)
        challenge = base64.urlsafe_b64encode(hashlib.sha256(verifier.encode()).digest()).rstrip(b"=").decode()
        start = time.perf_counter()
        r = browser.get("/oidc/authorize?" + urlencode({
            "response_type": "code", "client_id": self.client_id, "redirect_uri": self.REDIRECT_URI,
            "scope": "openid profile pt:identity", "state": state, "nonce": nonce,
            "code_challenge": challenge, "code_challenge_method": "S256"}))
        assert r.status_code == 302 and r["Location"].endswith("/login/"), r.status_code
        r = browser.post("/login/", {"identifier": phone, "pin": pin})
        assert r.status_code == 302 and r["Location"].endswith("/login/code/"), r.status_code
        for message in OutboundMessage.objects.filter(status=MessageStatus.QUEUED, destination=phone):
            send_message(str(message.pk))
        body = DevOutboxMessage.objects.filter(to=phone).latest("sent_at", "id").body
        r = browser.post("/login/code/", {"code": re.search(r"#(\d{6})\s*$", body).group(1)})
        assert r.status_code == 302 and r["Location"].startswith("/oidc/authorize?"), r.status_code
        r = browser.get(r["Location"])
        if first:
            assert r.status_code == 302 and r["Location"].endswith("/oidc/consent"), r.status_code
            r = browser.post("/oidc/consent", {"decision": "allow", "attribute": ["NomeProprio", "NIC"]})
            r = browser.get(r["Location"])
        assert r.status_code == 302 and r["Location"].startswith(self.REDIRECT_URI), (r.status_code, r.get("Location"))
        answer = {k: v[0] for k, v in parse_qs(urlsplit(r["Location"]).query).items()}
        assert answer["state"] == state
        now = int(time.time())
        assertion = jwt.encode({"alg": "RS256", "kid": self.key.kid},
                               {"iss": self.client_id, "sub": self.client_id, "aud": self.issuer + "/oidc/token",
                                "iat": now, "exp": now + 60, "jti": secrets.token_urlsafe(16)}, self.key)
        form = {"grant_type": "authorization_code", "code": answer["code"], "redirect_uri": self.REDIRECT_URI,
                "code_verifier": verifier, "client_assertion": assertion,
                "client_assertion_type": "urn:ietf:params:oauth:client-assertion-type:jwt-bearer"}
        if self.dpop_key is None:
            r = browser.post("/oidc/token", form)
        else:
            r = self.with_dpop(lambda proof: browser.post("/oidc/token", form, HTTP_DPOP=proof), "POST",
                               "/oidc/token")
        assert r.status_code == 200, r.content
        claims = jwt.decode(r.json()["id_token"], self.provider_keys, algorithms=["RS256"]).claims
        jwt.JWTClaimsRegistry(now=int(time.time()), leeway=60, iss={"essential": True, "value": self.issuer},
                              aud={"essential": True, "value": self.client_id}, exp={"essential": True},
                              nonce={"essential": True, "value": nonce}).validate(claims)
        if self.dpop_key is not None:
            access = r.json()["access_token"]
            info = self.with_dpop(lambda proof: browser.get("/oidc/userinfo", HTTP_AUTHORIZATION=f"DPoP {access}",
                                                            HTTP_DPOP=proof), "GET", "/oidc/userinfo", access)
            assert info.status_code == 200, info.content
        return time.perf_counter() - start

    def with_dpop(self, call, method: str, path: str, access_token: str | None = None):
        """``call(proof)``, again with the server's nonce when it asks for one (as clients do)."""
        import base64
        import hashlib
        import secrets

        from joserfc import jwt

        def proof():
            claims = {"jti": secrets.token_urlsafe(16), "htm": method, "htu": self.issuer + path,
                      "iat": int(time.time())}
            if self.dpop_nonce:
                claims["nonce"] = self.dpop_nonce
            if access_token:
                claims["ath"] = base64.urlsafe_b64encode(hashlib.sha256(access_token.encode()).digest()).rstrip(
                    b"=").decode()
            return jwt.encode({"typ": "dpop+jwt", "alg": "ES256", "jwk": self.dpop_key.as_dict(private=False)},
                              claims, self.dpop_key)

        response = call(proof())
        if "use_dpop_nonce" in response.content.decode():
            self.dpop_nonce = response["DPoP-Nonce"]
            response = call(proof())
        if response.has_header("DPoP-Nonce"):
            self.dpop_nonce = response["DPoP-Nonce"]
        return response


class BenchSaml:
    """A portal written from the autenticacao.gov manual on python3-saml (OneLogin's toolkit, xmlsec
    bindings: ``chave/saml/tests/sp.py``), registered from its metadata and approved."""

    def __init__(self):
        from pathlib import Path

        from bench.client import BenchClient as Client

        from chave.federation import services as federation
        from chave.saml import services
        from chave.saml.tests.sp import onelogin_settings

        self.settings, self.key, self.cert = onelogin_settings(Path(tempfile.mkdtemp(prefix="chave-bench-sp-")),
                                                               Client().get("/saml/metadata").content.decode())
        sp = services.register_service_provider(
            metadata=services.read_metadata(self.settings.get_sp_metadata()), name="Portal SAML de Medição",
            entity_nif="600084779", contact_email="bench@portal.example.gov.pt",
            allowed_attributes=["NIC", "NomeProprio"], by="bench")
        federation.decide(sp.relying_party, "approve", by="bench")

    def login(self, phone: str, pin: str, *, ip: str, first: bool) -> float:
        """One login from a fresh browser, timed from the signed AuthnRequest (the manual's, with
        FAAALevel 3 and RequestedAttributes) to the response python3-saml accepted (strict);
        ``first`` says the consent page is expected (and answered)."""
        import base64
        import uuid

        from bench.client import BenchClient as Client
        from onelogin.saml2.constants import OneLogin_Saml2_Constants as C
        from onelogin.saml2.response import OneLogin_Saml2_Response
        from onelogin.saml2.utils import OneLogin_Saml2_Utils

        from chave.delivery.models import DevOutboxMessage, MessageStatus, OutboundMessage
        from chave.delivery.services import send_message
        from chave.federation.attributes import PREFIX
        from chave.saml.tests.sp import HOST, form_fields, manual_request

        browser = Client(REMOTE_ADDR=ip)
        start = time.perf_counter()
        request_id = "_" + uuid.uuid4().hex
        signed = OneLogin_Saml2_Utils.add_sign(manual_request(request_id), self.key, self.cert,
                                               sign_algorithm=C.RSA_SHA256, digest_algorithm=C.SHA256)
        r = browser.post("/saml/sso", {"SAMLRequest": base64.b64encode(signed).decode()})
        r = browser.get(r["Location"])
        assert r.status_code == 302 and r["Location"].endswith("/login/"), r.status_code
        r = browser.post("/login/", {"identifier": phone, "pin": pin})
        assert r.status_code == 302 and r["Location"].endswith("/login/code/"), r.status_code
        for message in OutboundMessage.objects.filter(status=MessageStatus.QUEUED, destination=phone):
            send_message(str(message.pk))
        body = DevOutboxMessage.objects.filter(to=phone).latest("sent_at", "id").body
        r = browser.post("/login/code/", {"code": re.search(r"#(\d{6})\s*$", body).group(1)})
        assert r.status_code == 302 and r["Location"] == "/saml/continue", r.status_code
        r = browser.get(r["Location"])
        if first:
            assert r.status_code == 302 and r["Location"] == "/saml/consent", r.status_code
            r = browser.get(browser.post("/saml/consent", {"decision": "allow", "attribute": ["NomeProprio"]})
                            ["Location"])
        assert r.status_code == 200, (r.status_code, r.get("Location"))
        answer = OneLogin_Saml2_Response(self.settings, form_fields(r.content.decode())["SAMLResponse"])
        request_data = {"https": "on", "http_host": HOST, "script_name": "/sp/acs", "server_port": "443"}
        assert answer.is_valid(request_data, request_id, raise_exceptions=True)
        assert answer.get_attributes()[PREFIX + "NIC"]
        return time.perf_counter() - start


if __name__ == "__main__":
    raise SystemExit(main())

