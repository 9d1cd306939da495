#!/usr/bin/env python3
"""Remote signing against its raw costs, measured in one run.

    .venv/bin/python bench/signing.py [--rounds N]

1. ``signatures/signHash`` of a 100-hash batch through the CSC API (Django's test client: the
   service token check, JSON, the single-use SAD spent under a row lock, audit, the HSM) against
   the raw HSM signing time of the same 100 hashes (python-pkcs11 on SoftHSM2, same key).
   The SAD is obtained beforehand (signing PIN + code), untimed: it is the citizen's part.
2. The SCMD SOAP service: ``SCMDMultipleSign`` of 100 DigestInfos (ApplicationId and Basic
   credentials checked, envelope validated against the WSDL's schemas, UserId and Pin decrypted
   in the HSM, the signing PIN's Argon2 check, the process and the code queued) plus
   ``ValidateOtp`` (code decrypted and checked, the HSM signs, the SignResponse written), against
   raw HSM RSA signing of the same 100 DigestInfos. The envelopes are built and the fields
   encrypted beforehand, as the integrator does; reading the code is the citizen's part (untimed).
   The signing PIN's Argon2id check alone is printed too: it is the cost of the PIN, not of SOAP.
3. PAdES B-T of a 1 MB and a 50 MB PDF, file to file as the personal area signs (pyHanko:
   prepare, HSM signature, CMS, time-stamp) against SHA-256 of the same file's bytes in memory,
   which the signature cannot avoid (goal for 50 MB: at most 3x the hash), each round hashing
   then signing, so both meet the same load. ``--pades-only`` runs just this part, and prints
   the process's peak resident memory.

Each ratio is raw time / service time (1.0 = no overhead). Everything runs on one thread, on a
fresh SQLite database, development PKI and SoftHSM2 token in a temporary folder.
"""

from __future__ import annotations

import argparse
import base64
import hashlib
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))


def best(function, rounds: int) -> float:
    times = []
    for _ in range(rounds):
        start = time.perf_counter()
        function()
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--pades-only", action="store_true", help="only PAdES against SHA-256")
    args = parser.parse_args()

    os.environ["CHAVE_DATA_DIR"] = tempfile.mkdtemp(prefix="chave-bench-signing-")
    os.environ.setdefault("CHAVE_ENV", "dev")
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "chave.settings")
    import django

    django.setup()
    from django.core.management import call_command
    from django.test import Client

    call_command("migrate", verbosity=0)
    from chave.federation import services as federation
    from chave.identity import services as identity
    from chave.identity.models import ContactKind
    from chave.identity.registry import DocumentRef, IdentityRecord, LocalRecords
    from chave.oidc import services as oidc
    from chave.signing import pades, services
    from chave.signing.devpki import ensure_dev_pki
    from chave.signing.hsm import hsm

    ensure_dev_pki()
    import datetime as dt

    doc = DocumentRef("cc", "PT", "12345678")
    LocalRecords().store(IdentityRecord(doc=doc, full_name="Maria Bench Silva", given_name="Maria",
                                        family_name="Silva", birth_date=dt.date(1980, 5, 17),
                                        document_expiry=dt.date.today() + dt.timedelta(days=3650)))
    key, _ = identity.register_citizen(doc, [identity.ContactInput(ContactKind.MOBILE, "+351912999999")], pin="4719",
                                       contacts_verified_by="bench")
    credential = services.activate_signing(key, "5820", by="bench").credential
    registration = oidc.register_relying_party(
        name="Bench", entity_nif="600084779", contact_email="b@example.gov.pt", redirect_uris=["https://b.example/cb"],
        allowed_attributes=["NomeCompleto"], auth_method="client_secret_basic")
    party = federation.decide(registration.relying_party, "approve", by="bench", reason="bench")
    client = Client()
    basic = base64.b64encode(f"{party.client_id}:{registration.client_secret}".encode()).decode()
    token = client.post("/oidc/token", {"grant_type": "client_credentials", "scope": "csc"},
                        HTTP_AUTHORIZATION=f"Basic {basic}").json()["access_token"]
    headers = {"HTTP_AUTHORIZATION": f"Bearer {token}"}
    batch = [base64.b64encode(hashlib.sha256(f"doc {n}".encode()).digest()).decode() for n in range(100)]
    digests = [base64.b64decode(h) for h in batch]

    def authorised_sad() -> str:
        # The citizen's part, untimed: signing PIN → code (the worker hands it to the development
        # sink, read like a phone) → SAD. The clock moves past the resend cooldown each round.
        import re

        from chave import clock
        from chave.delivery.models import DevOutboxMessage

        clock.travel(dt.timedelta(seconds=31))
        started = services.start_request(credential, via="csc", documents=["bench.pdf"], hashes=batch,
                                         client_id=party.client_id, client_name=party.name, pin="5820")
        assert started.ok, started.reason
        call_command("db_worker", "--batch", "--queue-name", "*", "--interval", "0", "--no-startup-delay",
                     verbosity=0)
        body = DevOutboxMessage.objects.filter(to="+351912999999").order_by("-sent_at", "-id").first().body
        code = re.search(r"#(\d{6})\s*$", body).group(1)
        return services.authorise(started.request, code=code).sad

    def sign_hash(sad):
        response = client.post("/csc/v2/signatures/signHash", {
            "credentialID": credential.credential_id, "SAD": sad, "hashes": batch,
            "hashAlgorithmOID": "2.16.840.1.101.3.4.2.1", "signAlgo": services.sign_algorithm_oids(credential)["sha256"]},
            content_type="application/json", **headers)
        assert response.status_code == 200, response.content

    digest_infos = [services.DIGEST_INFO_PREFIXES["sha256"] + d for d in digests]

    def raw_sign(items):
        if credential.key_algorithm == "rsa-3072":
            return hsm().sign_pkcs1(credential.hsm_label, [services.DIGEST_INFO_PREFIXES["sha256"] + d for d in items])
        return hsm().sign_digests(credential.hsm_label, items)

    if not args.pades_only:
        raw_sign(digests)  # warm up
        raw = best(lambda: raw_sign(digests), args.rounds)
        api_times = []
        for _ in range(args.rounds):
            sad = authorised_sad()
            start = time.perf_counter()
            sign_hash(sad)
            api_times.append(time.perf_counter() - start)
        api = statistics.median(api_times)
        print(f"raw HSM signing, 100 hashes:      {raw * 1000:8.1f} ms")
        print(f"CSC signHash, 100-hash batch:     {api * 1000:8.1f} ms")
        print(f"ratio raw/signHash:               {raw / api:8.2f}")

        # --- SCMD: SCMDMultipleSign + ValidateOtp of 100 hashes ---------------------------------
        import re

        from cryptography import x509
        from cryptography.hazmat.primitives.asymmetric import padding

        from chave import clock
        from chave.delivery.models import DevOutboxMessage
        from chave.identity import pins
        from chave.scmd import encryption, soap
        from chave.scmd import services as scmd

        made = scmd.add_integrator("Bench SOAP", by="bench")
        soap_headers = {"HTTP_AUTHORIZATION": "Basic " + base64.b64encode(
            f"{made.integrator.username}:{made.password}".encode()).decode()}
        public = x509.load_pem_x509_certificate(encryption.certificate_pem()).public_key()

        def enc(text: str) -> str:
            return base64.b64encode(public.encrypt(text.encode(), padding.PKCS1v15())).decode()

        app = base64.b64encode(made.integrator.application_id.encode()).decode()

        def envelope(operation: str, inner: str) -> bytes:
            return (f'<s:Envelope xmlns:s="{soap.SOAP_ENV}" xmlns:a="{soap.DC}"><s:Body><{operation} '
                    f'xmlns="{soap.TNS}">{inner}</{operation}></s:Body></s:Envelope>').encode()

        def post(body: bytes) -> bytes:
            response = client.generic("POST", "/scmd/SCMDService.svc", body, "text/xml; charset=utf-8", **soap_headers)
            assert response.status_code == 200, response.content
            return response.content

        items = "".join(f"<a:HashStructure><a:Hash>{base64.b64encode(d).decode()}</a:Hash><a:Name>doc {n}.pdf</a:Name>"
                        f"<a:id>{n}</a:id></a:HashStructure>" for n, d in enumerate(digest_infos))
        soap_times, argon = [], best(lambda: pins.verify(credential.pin_hash, "5820"), args.rounds)
        for _ in range(args.rounds):
            clock.travel(dt.timedelta(seconds=31))
            multiple = envelope("SCMDMultipleSign", f"<request><a:ApplicationId>{app}</a:ApplicationId><a:Pin>{enc('5820')}"
                                f"</a:Pin><a:UserId>{enc('+351912999999')}</a:UserId></request><documents>{items}</documents>")
            start = time.perf_counter()
            answer = post(multiple)
            first = time.perf_counter() - start
            process = re.search(rb"ProcessId>([0-9a-f]+)<", answer).group(1).decode()
            call_command("db_worker", "--batch", "--queue-name", "*", "--interval", "0", "--no-startup-delay",
                         verbosity=0)
            body = DevOutboxMessage.objects.filter(to="+351912999999").order_by("-sent_at", "-id").first().body
            code = re.search(r"#(\d{6})\s*$", body).group(1)
            validate = envelope("ValidateOtp", f"<code>{enc(code)}</code><processId>{process}</processId>"
                                f"<applicationId>{app}</applicationId>")
            start = time.perf_counter()
            signed = post(validate)
            soap_times.append(first + time.perf_counter() - start)
            assert signed.count(b"<a:HashStructure>") == 100, signed[:500]
        scmd_time = statistics.median(soap_times)
        print(f"SCMDMultipleSign + ValidateOtp, 100 hashes: {scmd_time * 1000:8.1f} ms "
              f"(of which the signing PIN's Argon2id: {argon * 1000:.1f} ms)")
        print(f"ratio raw/SCMD:                   {raw / scmd_time:8.2f}")
        print(f"ratio raw/(SCMD less Argon2id):   {raw / (scmd_time - argon):8.2f}  (goal: at least 0.5, SOAP at most 2x)")

    cert = services.certificate(credential)
    folder = Path(os.environ["CHAVE_DATA_DIR"])
    for size_mb in (1, 50):
        from chave.signing.tests.helpers import sample_pdf

        pdf = sample_pdf(3, padding=size_mb * 1024 * 1024)
        rounds = args.rounds if size_mb == 1 else max(2, args.rounds // 2)
        # As the personal area signs: the uploaded file on disk, copied and signed file to file
        # (pades.prepare_file, the HSM, pades.finish_file). The signed file is removed after each
        # round, untimed: the area writes each batch's in a new folder.
        original, prepared_path, signed_path = (folder / f"{size_mb}.{kind}.pdf" for kind in
                                                ("original", "prepared", "signed"))
        original.write_bytes(pdf)
        hashing, signing = [], []
        for _ in range(rounds + 1):  # the first round warms up; hashing and signing interleaved
            start = time.perf_counter()
            hashlib.sha256(pdf).digest()
            hashing.append(time.perf_counter() - start)
            start = time.perf_counter()
            prepared = pades.prepare_file(original, prepared_path, cert)
            signature = raw_sign([prepared.to_sign])[0]
            pades.finish_file(prepared_path, signed_path, prepared, cert, signature)
            signing.append(time.perf_counter() - start)
            signed_path.unlink()
        sha, pades_time = statistics.median(hashing[1:]), statistics.median(signing[1:])
        goal = "  (goal: at most 3x)" if size_mb == 50 else ""
        print(f"{size_mb:>2} MB PDF: SHA-256 {sha * 1000:8.1f} ms, PAdES B-T {pades_time * 1000:8.1f} ms, "
              f"ratio {sha / pades_time:.3f} = {pades_time / sha:.1f}x the hash{goal}")
    if args.pades_only:
        import resource

        print(f"peak resident memory: {resource.getrusage(resource.RUSAGE_SELF).ru_maxrss // 1024} MB")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
