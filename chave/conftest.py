"""Fixtures shared by every app's tests.

- ``clock``: the service clock, moved by tests instead of sleeping (reset after each test).
- ``make_citizen``: registers a citizen through the real services (local civil records).
- ``outbox``: reads what the development sink "sent", as a citizen reads their phone.
- ``run_worker``: runs the real delivery worker (`db_worker --batch`) until the queue is empty.
- ``signing_pki`` (session): a fresh signing PKI directory and SoftHSM2 token for the run, its keys
  in the token, published on the session's live server (so certificates point at URLs that
  answer: OCSP, CRLs, CA issuers). Tests that make the server read their data ask for
  ``live_server`` themselves (transactional).
- ``browser``, ``new_page``, ``phone``: Debian's chromium through Playwright, for the browser tests
  (``chave/testing/browser.py``).
- ``private_pg`` (session), ``chave_database``: a PostgreSQL cluster of the run's own that a fault
  test may restart, and a fresh migrated database on it for ``chave`` processes
  (``chave/testing/faults.py``, which also starts a private Redis and Chave's processes).

Which tests run twice (SQLite, then PostgreSQL): CI (``.ci/run``) runs the whole suite on SQLite,
then again on PostgreSQL only what the database engine can change (``make test-pg``, ``PG_MARKERS``,
"not browser and not once"). Everything runs on PostgreSQL by default; a new test opts out only
when its outcome cannot depend on the engine:

- ``browser`` (added here to every test that uses the ``browser``, ``new_page`` or ``phone``
  fixtures): a browser drives pages whose every database call a test-client test also makes; it
  costs ten times as much and finds nothing new on another engine.
- ``@pytest.mark.once`` (or ``pytestmark = pytest.mark.once`` for a module): wording of pages and
  messages, accessibility of rendered pages, settings, CLI text, and tests that start their own
  PostgreSQL or Redis (``chave/testing/faults.py``) whatever the suite's database is.

Never ``once``: races, locks, throttles, codes, delivery, migrations, raw SQL, JSON lookups, field
lengths (PostgreSQL refuses an overlong value that SQLite stores), transactions, the robustness
sweep. When unsure, leave the test unmarked. A PostgreSQL run that selects nothing fails (pytest's
exit code 5 is a failure in ``scripts/pytest.sh``).
"""

from __future__ import annotations

import datetime as dt

import pytest
from django.core.management import call_command
from django.test import override_settings
from django.utils import translation

from chave import clock as service_clock
from chave.testing.browser import browser, chromium, new_page, phone  # noqa: F401 - fixtures for every app's browser tests
from chave.testing.faults import chave_database, chave_template, private_pg  # noqa: F401 - the fault tests


def _flush_past_the_audit_trigger():
    """SQLite has no TRUNCATE: Django's flush (how transactional tests empty the database) deletes
    rows, which the audit table's trigger refuses (chave/audit/migrations/0003_append_only.py). Lift
    that one trigger for the flush, in the flush's own transaction, as an operator's retention job
    would. PostgreSQL's flush is a TRUNCATE, which its trigger allows: nothing to do there."""
    from django.db.backends.sqlite3.base import DatabaseOperations

    from chave.audit import triggers

    original = DatabaseOperations.sql_flush
    if getattr(original, "lifts_audit_trigger", False):
        return

    def sql_flush(self, style, tables, **options):
        statements = original(self, style, tables, **options)
        if not any("audit_auditevent" in statement for statement in statements):
            return statements
        return [*triggers.SQLITE_DROP, *statements, triggers.SQLITE_NO_UPDATE, triggers.SQLITE_NO_DELETE]

    sql_flush.lifts_audit_trigger = True
    DatabaseOperations.sql_flush = sql_flush


_flush_past_the_audit_trigger()


@pytest.fixture(scope="session")
def django_db_setup(django_db_setup, django_db_blocker):
    """pytest-django's test databases; on PostgreSQL, before they are dropped, the sessions other
    than this one are ended. A test's thread or subprocess that closed its connection just before
    leaves a server process finishing for a few milliseconds, and DROP DATABASE refuses a
    database "being accessed by other users" (the suite passed, the database stayed behind)."""
    yield
    from django.db import connection

    with django_db_blocker.unblock():
        if connection.vendor == "postgresql":
            with connection.cursor() as cursor:
                cursor.execute("SELECT pg_terminate_backend(pid) FROM pg_stat_activity "
                               "WHERE datname = current_database() AND pid <> pg_backend_pid()")


BROWSER_FIXTURES = {"chromium", "browser", "new_page", "phone"}


def pytest_collection_modifyitems(config, items):
    """Every test that opens a browser is a ``browser`` test, marked or not (see the note above)."""
    for item in items:
        if BROWSER_FIXTURES & set(getattr(item, "fixturenames", ())) and item.get_closest_marker("browser") is None:
            item.add_marker(pytest.mark.browser)


@pytest.fixture(autouse=True, scope="session")
def _every_audit_event_has_labels():
    """Session-wide: every audit event written in this process during the run (kind, outcome,
    channel) has a label for the history page (chave/audit/labels.py). A gap fails the run at the
    end, naming what lacks a label; chave/audit/tests/test_labels.py checks the code statically."""
    from django.db.models.signals import post_save

    from chave.audit import labels
    from chave.audit.models import AuditEvent

    gaps: set[str] = set()

    def seen(sender, instance, created, **kwargs):
        if not str(instance.event).startswith("test."):  # the audit log's own tests write made-up kinds
            gaps.update(labels.missing(instance.event, instance.outcome, instance.channel))

    post_save.connect(seen, sender=AuditEvent, weak=False, dispatch_uid="audit-labels")
    yield
    post_save.disconnect(sender=AuditEvent, dispatch_uid="audit-labels")
    if gaps:
        pytest.fail("audit events without a label in chave/audit/labels.py: " + ", ".join(sorted(gaps)),
                    pytrace=False)


@pytest.fixture(autouse=True)
def _reset_clock():
    service_clock.reset()
    yield
    service_clock.reset()


@pytest.fixture(autouse=True)
def _reset_language():
    """Each test starts in the default language: a language one test activates never leaks."""
    translation.deactivate()
    yield
    translation.deactivate()


@pytest.fixture
def clock():
    service_clock.freeze()
    return service_clock


@pytest.fixture
def run_worker():
    def run():
        call_command("db_worker", "--batch", "--queue-name", "*", "--interval", "0", "--no-startup-delay",
                     verbosity=0)

    return run


class Outbox:
    def messages(self, to: str):
        from chave.delivery.models import DevOutboxMessage

        return list(DevOutboxMessage.objects.filter(to=to).order_by("-sent_at", "-id"))

    def last(self, to: str):
        found = self.messages(to)
        return found[0] if found else None

    def last_code(self, to: str) -> str:
        """The code in the latest message to ``to`` (an SMS's WebOTP line, else its sentence)."""
        from chave.delivery.messages import code_in

        message = self.last(to)
        assert message is not None, f"no message was sent to {to}"
        code = code_in(message.body)
        assert code, f"the last message to {to} carries no code: {message.body!r}"
        return code


@pytest.fixture
def outbox(run_worker):
    box = Outbox()
    original = box.last

    def last(to):
        run_worker()
        return original(to)

    box.last = last
    return box


@pytest.fixture
def make_citizen(db):
    from chave.identity import services
    from chave.identity.models import ContactKind
    from chave.identity.registry import DocumentRef, IdentityRecord, LocalRecords

    counter = {"n": 0}

    def make(
        *,
        nic: str | None = None,
        phone: str | None = "+351912345678",
        email: str | None = None,
        pin: str | None = "4719",
        birth_date: dt.date = dt.date(1980, 5, 17),
        document_expiry: dt.date | None = None,
        full_name: str = "Maria Teste Silva",
        verified: bool = True,
        language: str = "pt-pt",
    ):
        from stdnum.pt import cc

        counter["n"] += 1
        if nic is None:
            base = f"{10000000 + counter['n'] * 7919:08d}"
            nic = base
        assert cc.calc_check_digit(nic + "0ZZ")  # nic is an 8-digit civil number
        doc = DocumentRef("cc", "PT", nic)
        LocalRecords().store(
            IdentityRecord(
                doc=doc, full_name=full_name, given_name=full_name.split()[0], family_name=full_name.split()[-1],
                birth_date=birth_date,
                document_expiry=document_expiry or (service_clock.today() + dt.timedelta(days=3650)),
            )
        )
        contacts = []
        if phone:
            contacts.append(services.ContactInput(ContactKind.MOBILE, phone))
        if email:
            contacts.append(services.ContactInput(ContactKind.EMAIL, email))
        key, temporary_pin = services.register_citizen(
            doc, contacts, pin=pin, contacts_verified_by="test" if verified else "", language=language
        )
        key.temporary_pin = temporary_pin  # the PIN printed once when pin=None, for tests to type
        return key

    return make


@pytest.fixture(scope="session")
def signing_pki(request, tmp_path_factory, django_db_setup, django_db_blocker):
    server = request.getfixturevalue("live_server")
    directory = tmp_path_factory.mktemp("signing-pki")
    override = override_settings(
        CHAVE_SIGNING_DIR=directory,
        CHAVE_SIGNING_SOFTHSM2_CONF=str(directory / "hsm" / "softhsm2.conf"),
        CHAVE_SIGNING_PKI_URL=server.url + "/pki/signing",
        CHAVE_SIGNING_TSA_URL="",
    )
    override.enable()
    from chave.signing.devpki import ensure_dev_pki

    ensure_dev_pki()
    yield directory
    override.disable()
