"""A web process killed mid-signing (issue 17): no half-issued SAD, no half-issued signature.

`chave serve` on a private PostgreSQL cluster, an integrator on the CSC API. The test stops the web
process at a known point inside the database (it holds a lock the request needs, sees the request
wait on it, then SIGKILLs the process; PostgreSQL rolls back what the dead process began):

1. in ``credentials/authorize``, after the signing code was checked and before the SAD was
   recorded: the code is not spent, no SAD exists, and the same PIN and code authorise afterwards;
2. in ``signatures/signHash``, after the HSM signed and before the SAD was recorded as spent: the
   SAD is unspent and nothing is recorded as signed; presented again it gives valid signatures,
   and only once.
"""

from __future__ import annotations

import base64
import hashlib
import json
import re
import signal
import threading

import pytest
import requests
from cryptography import x509
from cryptography.hazmat.primitives import hashes as h
from cryptography.hazmat.primitives.asymmetric import ec, padding, rsa
from cryptography.hazmat.primitives.asymmetric.utils import Prehashed

from chave.testing.faults import BOUND, ChaveProcess, chave_env, run_chave, wait_for

pytestmark = [pytest.mark.faults, pytest.mark.once]  # its own PostgreSQL, whatever the suite's database

PHONE = "+351912345678"  # the demo citizen (seed_demo): signing active, signing PIN 3691
SIGNING_PIN = "3691"
HASHES = [base64.b64encode(hashlib.sha256(f"contrato {n}".encode()).digest()).decode() for n in range(3)]
SHA256 = "2.16.840.1.101.3.4.2.1"


class Integrator:
    def __init__(self, env):
        added = run_chave(env, "rp", "add", "--name", "Plataforma de Documentos", "--nif", "600084779",
                          "--contact-email", "dev@docs.example.gov.pt", "--redirect-uri", "https://docs.example.gov.pt/cb",
                          "--auth", "client_secret_basic", "--approve", "--reason", "signing integrator", "--json")
        party = json.loads(added.stdout)
        self.client_id, self.secret = party["client_id"], party["client_secret"]
        self.base = self.token = ""

    def on(self, base: str):
        self.base = base
        answer = requests.post(base + "/oidc/token", data={"grant_type": "client_credentials", "scope": "csc"},
                               auth=(self.client_id, self.secret), timeout=BOUND)
        assert answer.status_code == 200, answer.text
        self.token = answer.json()["access_token"]

    def call(self, name: str, body: dict, timeout: float = BOUND) -> requests.Response:
        return requests.post(f"{self.base}/csc/v2/{name}", json=body, timeout=timeout,
                             headers={"Authorization": f"Bearer {self.token}"})


def killed_while_waiting(private_pg, database, server, call, lock_sql, *, params=()):
    """Run ``call`` in a thread; once its request waits on the lock ``lock_sql`` takes, SIGKILL the
    web process; then let the lock go. Returns what the call got (an error: nobody answered)."""
    import psycopg

    holder = psycopg.connect(private_pg.url(database))
    holder.execute(lock_sql, params)
    outcome = {}

    def run():
        try:
            outcome["answer"] = call()
        except requests.RequestException as exc:
            outcome["error"] = exc

    thread = threading.Thread(target=run, daemon=True)
    thread.start()
    wait_for(lambda: private_pg.execute(
        "SELECT count(*) FROM pg_stat_activity WHERE datname = %s AND wait_event_type = 'Lock'",
        [database])[0][0] >= 1, what="the request to wait inside the database")
    server.kill(signal.SIGKILL)
    holder.rollback()
    holder.close()
    thread.join(BOUND)
    # The dead process's session ends, rolled back, once PostgreSQL notices its client is gone.
    wait_for(lambda: private_pg.execute("SELECT count(*) FROM pg_stat_activity WHERE datname = %s AND "
                                        "state <> 'idle' AND pid <> pg_backend_pid()", [database])[0][0] == 0,
             what="the dead process's transaction to end")
    return outcome


def test_a_web_process_killed_mid_signing_leaves_no_half_issued_sad_or_signature(private_pg, chave_database,
                                                                                  tmp_path):
    database = chave_database.rsplit("/", 1)[1]
    env = chave_env(chave_database, tmp_path, CHAVE_TRUSTED_PROXIES="1")
    run_chave({**env, "CHAVE_ENV": "dev"}, "seed_demo")
    integrator = Integrator(env)

    def query(sql, params=()):
        return private_pg.execute(sql, params, database=database)

    def serve(n):
        server = ChaveProcess(env, "serve", "--port", "0", "--with-worker", log=tmp_path / f"serve-{n}.log")
        integrator.on(server.url())
        return server

    server = serve(1)
    try:
        [credential_id] = integrator.call("credentials/list", {"userID": PHONE}).json()["credentialIDs"]
        info = integrator.call("credentials/info", {"credentialID": credential_id}).json()
        certificate = x509.load_der_x509_certificate(base64.b64decode(info["cert"]["certificates"][0]))
        assert integrator.call("credentials/sendOTP", {"credentialID": credential_id}).status_code == 204

        def code():
            rows = query('SELECT body FROM delivery_devoutboxmessage WHERE "to" = %s ORDER BY sent_at DESC', [PHONE])
            match = rows and re.search(r"#(\d{6})\s*$", rows[0][0])
            return match and match.group(1)

        otp = wait_for(code, what="the signing code")
        authorize = {"credentialID": credential_id, "numSignatures": len(HASHES), "PIN": SIGNING_PIN, "OTP": otp,
                     "hashes": HASHES, "hashAlgorithmOID": SHA256}
        # 1. Killed after the code was checked, before the SAD was recorded: holding the request's row.
        [(request_id, process_id)] = query("SELECT id, process_id FROM signing_signingrequest "
                                           "WHERE status = 'code_sent'")
        transaction = f"signing-{process_id}"  # SigningRequest.code_transaction
        outcome = killed_while_waiting(private_pg, database, server, lambda: integrator.call("credentials/authorize",
                                                                                             authorize),
                                       "SELECT 1 FROM signing_signingrequest WHERE id = %s FOR UPDATE",
                                       params=[request_id])
    finally:
        server.kill()
    assert "answer" not in outcome  # nobody answered: the process died
    assert query("SELECT status, sad_hash FROM signing_signingrequest WHERE id = %s", [request_id]) == [("code_sent", "")]
    assert query("SELECT count(*) FROM codes_onetimecode WHERE transaction = %s AND used_at IS NOT NULL",
                 [transaction]) == [(0,)]  # the code is not spent

    server = serve(2)
    try:
        authorised = integrator.call("credentials/authorize", authorize)  # the same PIN and code
        assert authorised.status_code == 200, authorised.text
        sad = authorised.json()["SAD"]
        rsa_key = isinstance(certificate.public_key(), rsa.RSAPublicKey)  # the demo citizen's key (the setting's)
        sign = {"credentialID": credential_id, "SAD": sad, "hashes": HASHES, "hashAlgorithmOID": SHA256,
                "signAlgo": "1.2.840.113549.1.1.11" if rsa_key else "1.2.840.10045.4.3.2"}
        # 2. Killed after the HSM signed, before the SAD was recorded as spent: holding the audit table,
        #    whose insert is the last thing signHash does before it commits.
        outcome = killed_while_waiting(private_pg, database, server,
                                       lambda: integrator.call("signatures/signHash", sign),
                                       "LOCK TABLE audit_auditevent IN SHARE MODE")
    finally:
        server.kill()
    assert "answer" not in outcome
    assert query("SELECT status FROM signing_signingrequest WHERE id = %s", [request_id]) == [("authorised",)]
    assert query("SELECT count(*) FROM audit_auditevent WHERE event = 'signing.sign'") == [(0,)]

    server = serve(3)
    try:
        signed = integrator.call("signatures/signHash", sign)  # the same SAD
        assert signed.status_code == 200, signed.text
        for digest, signature in zip(HASHES, signed.json()["signatures"], strict=True):
            if rsa_key:
                certificate.public_key().verify(base64.b64decode(signature), base64.b64decode(digest),
                                                padding.PKCS1v15(), Prehashed(h.SHA256()))
            else:
                certificate.public_key().verify(base64.b64decode(signature), base64.b64decode(digest),
                                                ec.ECDSA(Prehashed(h.SHA256())))
        again = integrator.call("signatures/signHash", sign)
        assert again.status_code == 400  # spent once it signed
    finally:
        server.stop()
    assert query("SELECT status FROM signing_signingrequest WHERE id = %s", [request_id]) == [("signed",)]
    run_chave(env, "audit", "verify")  # exit 0: the chain is intact
