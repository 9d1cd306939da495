#!/usr/bin/env python3
"""Login throughput against bare PIN hashing, measured in one run.

    .venv/bin/python bench/login.py [--logins N] [--hashes N]

A complete login is what a citizen does through the pages (Django's test client, so templates,
sessions, CSRF-exempt client aside, the database and the audit all count): POST identifier + PIN
→ the code is issued and queued → the delivery worker's send step hands it to the development
sink → the code is read from the sink → POST code → signed-in page. The baseline is a bare
Argon2id verification of a PIN with the same parameters (``CHAVE_ARGON2``). Both run on one
thread, on a fresh embedded SQLite database in a temporary folder.

Goal (issue 2): logins per second / PIN verifications per second >= 0.6.
"""

from __future__ import annotations

import argparse
import datetime as dt
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
    args = parser.parse_args()

    os.environ["CHAVE_DATA_DIR"] = tempfile.mkdtemp(prefix="chave-bench-")
    os.environ.setdefault("CHAVE_ENV", "dev")
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "chave.settings")
    import django

    django.setup()
    from django.conf import settings
    from django.core.management import call_command
    from django.test import Client

    from chave import clock
    from chave.delivery.models import DevOutboxMessage, MessageStatus, OutboundMessage
    from chave.delivery.services import send_message
    from chave.identity import pins, services
    from chave.identity.models import ContactKind
    from chave.identity.registry import DocumentRef, IdentityRecord, LocalRecords

    call_command("migrate", verbosity=0)
    pin = "4719"
    phones = []
    for i in range(args.logins):
        nic = f"{20000000 + i:08d}"
        doc = DocumentRef("cc", "PT", nic)
        LocalRecords().store(IdentityRecord(doc=doc, full_name=f"Bench Citizen {i}", given_name="Bench",
                                            family_name="Citizen", birth_date=dt.date(1980, 1, 1),
                                            document_expiry=clock.today() + dt.timedelta(days=3650)))
        phone = f"+3519100{i:05d}"
        services.register_citizen(doc, [services.ContactInput(ContactKind.MOBILE, phone)], pin=pin,
                                  contacts_verified_by="bench")
        phones.append(phone)
    # Activation notices are not part of a login.
    OutboundMessage.objects.all().delete()

    stored = pins.hash_pin(pin)
    pins.verify(stored, pin)  # warm-up
    t0 = time.perf_counter()
    for _ in range(args.hashes):
        ok, _ = pins.verify(stored, pin)
        assert ok
    hash_seconds = time.perf_counter() - t0

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

    one_login(0, phones[0])  # warm-up (templates, caches)
    durations = [one_login(i, phone) for i, phone in enumerate(phones[1:], start=1)]
    login_seconds = sum(durations)

    hashes_per_s = args.hashes / hash_seconds
    logins_per_s = len(durations) / login_seconds
    p = settings.CHAVE_ARGON2
    print(f"Argon2id parameters: time_cost={p['time_cost']} memory={p['memory_cost']} KiB parallelism={p['parallelism']}")
    print(f"database: {settings.DATABASES['default']['ENGINE'].rsplit('.', 1)[-1]}, one thread")
    print(f"bare PIN verifications: {args.hashes} in {hash_seconds:.2f} s = {hashes_per_s:.1f}/s")
    print(f"complete logins:        {len(durations)} in {login_seconds:.2f} s = {logins_per_s:.1f}/s "
          f"(median {statistics.median(durations) * 1000:.0f} ms)")
    ratio = logins_per_s / hashes_per_s
    print(f"ratio logins/hashes:    {ratio:.2f} (goal >= 0.6: {'met' if ratio >= 0.6 else 'NOT met'})")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
