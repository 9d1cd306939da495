"""PostgreSQL restarted under load (issue 17): `chave serve --with-worker` on a private cluster, citizens
signing in from several threads, and the cluster restarted (fast shutdown: every session ended, its
transaction rolled back) while requests are inside the database.

What a citizen or a load balancer observes: answers in flight and while the database is down are
503 with Retry-After, never 500; nothing is half-written (every code has its message, every message
its task, every login step its code, the audit chain verifies); and the same processes serve
complete sign-ins again once PostgreSQL is back, without being restarted.
"""

from __future__ import annotations

import re
import threading
from collections import Counter

import pytest

from chave.testing.faults import BOUND, ChaveProcess, Visitor, chave_env, run_chave, wait_for

pytestmark = [pytest.mark.faults, pytest.mark.once]  # its own PostgreSQL, whatever the suite's database

PIN = "4719"
PHONES = [f"+3519123402{i:02d}" for i in range(7)]  # the last one signs in after the restart
NAMES = ["Ana", "Beatriz", "Carla", "Diana", "Eva", "Filipa", "Graça"]


SEED = """
import datetime as dt
from chave.identity import services
from chave.identity.models import ContactKind
from chave.identity.registry import DocumentRef, IdentityRecord, LocalRecords
for i, (phone, name) in enumerate(zip({phones!r}, {names!r})):
    doc = DocumentRef("cc", "PT", f"{{20000000 + i * 7919:08d}}")
    LocalRecords().store(IdentityRecord(doc=doc, full_name=name + " Carga", given_name=name, family_name="Carga",
                                        birth_date=dt.date(1980, 5, 17), document_expiry=dt.date(2035, 1, 1)))
    services.register_citizen(doc, [services.ContactInput(ContactKind.MOBILE, phone)], pin={pin!r},
                              contacts_verified_by="test", language="pt-pt")
"""


def add_citizens(env):
    """The citizens, through the registration service, in one process (a `chave citizen add` each is slower)."""
    run_chave(env, "shell", "-c", SEED.format(phones=PHONES, names=NAMES, pin=PIN))


class Load:
    """Threads signing in (PIN step, which sends a code) until stopped; every answer is kept."""

    def __init__(self, base: str, threads: int = 4):
        self.base, self.answers, self.lock = base, [], threading.Lock()
        self.stopping = threading.Event()
        self.threads = [threading.Thread(target=self.run, args=(i,), daemon=True) for i in range(threads)]
        self.rounds = 0

    def run(self, i: int):
        n = 0
        while not self.stopping.is_set() and n < 2000:  # bounded in count and, by stop(), in time
            n += 1
            visitor = Visitor(self.base)
            forwarded = {"X-Forwarded-For": f"198.51.{100 + i}.{n % 250 + 1}"}  # throttles count per address
            for step in (("/login/", None), ("/login/", {"identifier": PHONES[n % (len(PHONES) - 1)][4:],
                                                          "pin": PIN})):
                status, headers, _body = visitor.request(*step, headers=forwarded, timeout=BOUND)
                with self.lock:
                    self.answers.append((status, headers.get("Retry-After")))
                if status != 200:
                    break

    def count(self, status: int) -> int:
        with self.lock:
            return sum(1 for s, _ in self.answers if s == status)

    def start(self):
        for thread in self.threads:
            thread.start()

    def stop(self):
        self.stopping.set()
        for thread in self.threads:
            thread.join(BOUND)
        assert not any(t.is_alive() for t in self.threads)


def sign_in(base: str, phone: str, private_pg, database: str) -> str:
    """A complete sign-in through the pages, the code read where the development sink keeps it."""
    visitor = Visitor(base)
    assert visitor.request("/login/")[0] == 200
    status, _, page = visitor.request("/login/", {"identifier": phone[4:], "pin": PIN})
    assert (status, visitor.path) == (200, "/login/code/"), page[:2000]

    def code():
        rows = private_pg.execute('SELECT body FROM delivery_devoutboxmessage WHERE "to" = %s ORDER BY sent_at DESC',
                                  [phone], database=database)
        match = rows and re.search(r"#(\d{6})\s*$", rows[0][0])
        return match and match.group(1)

    status, _, page = visitor.request("/login/code/", {"code": wait_for(code, what="the worker to send the code")})
    assert (status, visitor.path) == (200, "/login/done/"), page[:2000]
    return page


def test_postgresql_restarted_under_load_answers_503_and_recovers_by_itself(private_pg, chave_database, tmp_path):
    database = chave_database.rsplit("/", 1)[1]
    env = chave_env(chave_database, tmp_path, CHAVE_TRUSTED_PROXIES="1")
    add_citizens(env)
    server = ChaveProcess(env, "serve", "--port", "0", "--with-worker", log=tmp_path / "serve.log")
    load = None
    try:
        base = server.url()
        load = Load(base)
        load.start()
        wait_for(lambda: server.running() and load.count(200) >= 12, what="the service to be under load")

        # Requests inside the database at the moment it goes: hold the audit table so that the PIN
        # steps in flight wait on it, then restart PostgreSQL under them.
        import psycopg

        holder = psycopg.connect(chave_database)
        holder.execute("LOCK TABLE audit_auditevent IN SHARE MODE")
        wait_for(lambda: server.running() and private_pg.execute(
            "SELECT count(*) FROM pg_stat_activity WHERE datname = %s AND wait_event_type = 'Lock'",
            [database])[0][0] >= 2, what="requests to be waiting inside the database")
        refused_before = load.count(503) + load.count(500)
        private_pg.restart()
        holder.close()
        wait_for(lambda: load.count(503) + load.count(500) >= refused_before + 2,
                 what="the requests in flight to be answered")

        # Recovered by itself: the same processes sign a citizen in, the worker sending the code.
        page = sign_in(base, PHONES[-1], private_pg, database)
        assert "Graça Carga" in page
        load.stop()
        assert server.process.poll() is None, server.output()  # nobody restarted the service
    finally:
        if load is not None:
            load.stop()
        server.stop()

    statuses = Counter(status for status, _ in load.answers)
    assert statuses[500] == 0 and statuses[0] == 0, (statuses, server.output()[-3000:])
    assert statuses[503] >= 2 and statuses[200] >= 12, statuses
    assert all(retry_after == "5" for status, retry_after in load.answers if status == 503)

    # Nothing half-written.
    def count(sql):
        return private_pg.execute(sql, database=database)[0][0]

    assert count("SELECT count(*) FROM codes_onetimecode") == count(
        "SELECT count(*) FROM delivery_outboundmessage WHERE kind = 'code'") > 0
    assert count("SELECT count(*) FROM delivery_outboundmessage m WHERE NOT EXISTS (SELECT 1 FROM "
                 "django_tasks_database_dbtaskresult t WHERE t.args_kwargs->'args'->>0 = m.id::text)") == 0
    assert count("SELECT count(*) FROM login_logintransaction x WHERE x.status <> 'pin_ok' AND NOT EXISTS "
                 "(SELECT 1 FROM codes_onetimecode c WHERE c.transaction = x.id::text)") == 0
    run_chave(env, "audit", "verify")  # exit 0: the chain is intact
