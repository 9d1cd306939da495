"""``chave citizen add`` / ``chave citizen show``, as an operator at a terminal sees them.

Most cases run the command in-process (``call_command``); a few run the real ``chave`` console
script in a subprocess on a database of its own, to see the exit status and that no traceback
reaches the terminal. :func:`chave_environment` and :func:`run_chave` are shared with the
``serve`` tests.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import io
import json
import os
import subprocess
import sys
import uuid
from pathlib import Path

import pytest
from django.core.exceptions import ValidationError
from django.core.management import call_command
from django.core.management.base import CommandError
from django.test import override_settings
from django.utils import translation

from chave import clock as service_clock
from chave.audit.models import AuditEvent
from chave.delivery.models import OutboundMessage
from chave.identity import services, validation
from chave.identity.models import CivilRecord, Citizen, Contact, Key, KeyStatus

CHAVE = Path(sys.executable).with_name("chave")


# --- running the real console command -------------------------------------------------------


@contextlib.contextmanager
def chave_environment(data_dir: Path, *, env_name: str = "dev"):
    """Environment variables for ``chave`` subprocesses, on a database nobody else uses.

    SQLite: a file in ``data_dir``. When the suite runs on PostgreSQL (``CHAVE_DATABASE_URL``), a
    fresh database on the same server, dropped afterwards. Cheap Argon2 parameters, as in tests.
    """
    env = {k: v for k, v in os.environ.items() if k != "DJANGO_SETTINGS_MODULE"}
    env.update(
        CHAVE_DATA_DIR=str(data_dir),
        CHAVE_ENV=env_name,
        CHAVE_ARGON2_MEMORY_KIB="8192",
        CHAVE_ARGON2_TIME_COST="2",
        PYTHONUNBUFFERED="1",
    )
    url = os.environ.get("CHAVE_DATABASE_URL", "")
    if not url.startswith("postgres"):
        env.pop("CHAVE_DATABASE_URL", None)
        yield env
        return
    import dj_database_url
    import psycopg

    parsed = dj_database_url.parse(url)
    name = f"{parsed['NAME']}_cli_{uuid.uuid4().hex[:10]}"[-63:]
    server = {"host": parsed["HOST"] or None, "port": parsed["PORT"] or None, "user": parsed["USER"] or None,
              "password": parsed["PASSWORD"] or None, "dbname": "postgres"}
    with psycopg.connect(**{k: v for k, v in server.items() if v}, autocommit=True) as admin:
        admin.execute(f'CREATE DATABASE "{name}"')
    try:
        env["CHAVE_DATABASE_URL"] = url.rsplit("/", 1)[0] + "/" + name
        yield env
    finally:
        with psycopg.connect(**{k: v for k, v in server.items() if v}, autocommit=True) as admin:
            admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


def run_chave(env: dict, *args: str, timeout: float = 120) -> subprocess.CompletedProcess:
    return subprocess.run([str(CHAVE), *args], env=env, capture_output=True, text=True, timeout=timeout)


def message_of(function, *args, language: str, **kwargs) -> str:
    """The words chave.identity.validation uses for a refusal, in ``language``."""
    with translation.override(language):
        try:
            function(*args, **kwargs)
        except ValidationError as exc:
            return " ".join(str(m) for m in exc.messages)
    raise AssertionError(f"{function.__name__}{args} accepted the value")


@pytest.fixture(scope="module")
def migrated(tmp_path_factory):
    with chave_environment(tmp_path_factory.mktemp("cli")) as env:
        done = run_chave(env, "migrate", "--noinput", "-v0")
        assert done.returncode == 0, done.stderr
        yield env


# --- in-process helpers --------------------------------------------------------------------


def citizen_cli(*args: str) -> str:
    out = io.StringIO()
    with translation.override("en"):
        call_command("citizen", *args, stdout=out, stderr=io.StringIO())
    return out.getvalue()


def refused(*args: str) -> str:
    with translation.override("en"), pytest.raises(CommandError) as caught:
        call_command("citizen", *args, stdout=io.StringIO(), stderr=io.StringIO())
    return str(caught.value)


def written() -> dict:
    """Row counts of everything a registration writes."""
    return {m.__name__: m.objects.count() for m in (CivilRecord, Citizen, Key, Contact, AuditEvent, OutboundMessage)}


BASE = {
    "--nic": "12345678",
    "--name": "Ana Maria Lopes",
    "--given-name": "Ana Maria",
    "--family-name": "Lopes",
    "--birth-date": "1990-02-03",
    "--phone": "912 345 670",
    "--email": "Ana@Example.pt",
}


def add_args(changes: dict | None = None, *flags: str, terms: bool = True) -> list[str]:
    """``add`` with the base arguments, some replaced (value None removes one), plus ``flags``
    (``--terms-accepted`` unless ``terms`` is false)."""
    options = {**BASE, **(changes or {})}
    args = ["add", *(["--terms-accepted"] if terms else [])]
    for flag, value in options.items():
        if value is not None:
            args += [flag, value]
    return [*args, *flags]


FOREIGN = {"--nic": None, "--doc-type": "passport", "--doc-country": "br", "--doc-number": "ab 123456"}


# --- add ---------------------------------------------------------------------------------


@pytest.mark.django_db
def test_add_registers_an_active_key_and_prints_a_temporary_pin_once(clock):
    data = json.loads(citizen_cli(*add_args(None, "--json")))

    assert set(data) == {"citizen_id", "document", "nic", "full_name", "given_name", "family_name", "birth_date",
                         "nif", "document_expiry", "language", "key", "contacts", "temporary_pin"}
    assert data["document"] == {"type": "cc", "country": "PT", "number": "12345678"}
    assert data["nic"] == "12345678"
    assert (data["full_name"], data["given_name"], data["family_name"]) == ("Ana Maria Lopes", "Ana Maria", "Lopes")
    assert data["key"]["status"] == "active"
    assert data["key"]["pin_is_temporary"] is True
    # Operators see full contact values, normalised as the login will match them.
    assert data["contacts"]["mobile"]["value"] == "+351912345670"
    assert data["contacts"]["email"]["value"] == "ana@example.pt"
    assert data["contacts"]["mobile"]["verified"] and data["contacts"]["email"]["verified"]

    key = Key.objects.get(citizen_id=data["citizen_id"])
    assert key.status == KeyStatus.ACTIVE
    assert "pin_hash" not in json.dumps(data) and key.pin_hash not in json.dumps(data)
    # The printed PIN is the key's PIN, and the first sign-in must change it.
    decision = services.check_login_pin(key, data["temporary_pin"], ip="198.51.100.1")
    assert decision.ok and decision.must_change_pin
    # Without --doc-expiry: 5 years from today; a Citizen Card key is valid 30 days more.
    expiry = service_clock.today().replace(year=service_clock.today().year + 5)
    assert data["document_expiry"] == expiry.isoformat()
    assert data["key"]["valid_until"] == (expiry + dt.timedelta(days=30)).isoformat()
    # The identity also went to the local civil records.
    assert CivilRecord.objects.filter(doc_type="cc", doc_number="12345678", full_name="Ana Maria Lopes").exists()


@pytest.mark.django_db
def test_add_human_output_names_the_citizen_and_shows_the_temporary_pin():
    out = citizen_cli(*add_args({"--nif": "123456789", "--doc-expiry": "2031-06-30"}))
    assert "Registered Ana Maria Lopes (NIC 12345678)." in out
    assert "+351912345670 (verified)" in out and "ana@example.pt (verified)" in out
    assert "2031-07-30" in out  # valid until: card expiry + 30 days
    printed = [line.split(":", 1)[1].strip() for line in out.splitlines() if line.startswith("Temporary PIN:")]
    assert len(printed) == 1 and printed[0].isdigit()
    key = Key.objects.get(citizen__doc_number="12345678")
    assert services.check_login_pin(key, printed[0], ip="198.51.100.2").ok
    assert Citizen.objects.get().nif == "123456789"


@pytest.mark.django_db
def test_add_records_the_terms_of_use_acceptance_as_the_counter_does(clock):
    from chave.public.models import TermsAcceptance
    from chave.public.terms import TERMS_VERSION

    before = written()
    message = refused(*add_args(None, terms=False))
    assert "--terms-accepted: Give the citizen the terms of use" in message
    assert written() == before and not TermsAcceptance.objects.exists()

    data = json.loads(citizen_cli(*add_args(None, "--json")))
    accepted = TermsAcceptance.objects.get()
    assert (accepted.citizen_id, accepted.version, accepted.channel) == (data["citizen_id"], TERMS_VERSION, "cli")
    assert accepted.accepted_at == service_clock.now()
    event = AuditEvent.objects.get(event="terms.accept")
    assert (event.citizen_id, event.channel, event.detail["version"]) == (data["citizen_id"], "cli", TERMS_VERSION)


@pytest.mark.django_db
def test_a_refused_registration_records_no_acceptance():
    from chave.public.models import TermsAcceptance

    citizen_cli(*add_args())
    refused(*add_args({"--phone": "912 345 671", "--email": "other@example.pt"}))  # the same NIC again
    assert TermsAcceptance.objects.count() == 1


@pytest.mark.django_db
def test_pin_is_refused_outside_development():
    before = written()
    message = refused(*add_args({"--pin": "4719"}))
    assert "--pin is accepted only in development (CHAVE_ENV=dev)" in message
    assert "4719" not in message
    assert written() == before


@pytest.mark.django_db
@override_settings(CHAVE_ENV="dev")
def test_pin_in_development_sets_a_permanent_pin_and_prints_none():
    data = json.loads(citizen_cli(*add_args({"--pin": "4719"}, "--json")))
    assert "temporary_pin" not in data and data["key"]["pin_is_temporary"] is False
    key = Key.objects.get(citizen_id=data["citizen_id"])
    decision = services.check_login_pin(key, "4719", ip="198.51.100.3")
    assert decision.ok and not decision.must_change_pin
    assert "5820" not in citizen_cli(*add_args({"--pin": "5820", "--nic": "12345679", "--phone": "912345671",
                                                "--email": None}))


@pytest.mark.django_db
def test_foreign_document_with_email_only_and_x_account():
    data = json.loads(citizen_cli(*add_args(
        {**FOREIGN, "--phone": None, "--x-user-id": "783214", "--doc-expiry": "2030-01-31", "--language": "en"},
        "--json")))
    assert data["document"] == {"type": "passport", "country": "BR", "number": "AB123456"}
    assert data["nic"] is None
    assert data["key"]["valid_until"] == "2030-01-31"  # foreign documents: their own expiry
    assert set(data["contacts"]) == {"email", "x"} and data["contacts"]["x"]["value"] == "783214"
    assert data["language"] == "en"


@pytest.mark.django_db
def test_sixteen_today_is_old_enough(clock):
    today = service_clock.today()
    sixteen = today.replace(year=today.year - 16) if (today.month, today.day) != (2, 29) else dt.date(today.year - 16, 2, 28)
    data = json.loads(citizen_cli(*add_args({"--birth-date": sixteen.isoformat()}, "--json")))
    assert data["key"]["status"] == "active"


# --- refusals ----------------------------------------------------------------------------

BAD_ARGUMENTS = [
    ({"--nic": "1234567"}, "--nic: Enter the civil identification number (NIC): 8 digits"),
    ({"--nic": "12345678 9 ZZ 0"}, "--nic: This Citizen Card number is not valid"),
    ({"--nic": ""}, "--nic: Enter the civil identification number (NIC)"),
    ({"--nif": "123456788"}, "--nif: This tax number (NIF) is not valid"),
    ({"--nif": "12345"}, "--nif: This tax number (NIF) is not valid"),
    ({"--phone": "12345"}, "--phone: This is not a valid mobile number."),
    ({"--phone": "+351 212 345 678"}, "--phone: This number is not a mobile number."),
    ({"--phone": "9" * 40}, "--phone: Enter a mobile number"),
    ({"--email": "ana@"}, "--email: This is not a valid e-mail address."),
    ({"--email": "a" * 250 + "@example.pt"}, "--email: This e-mail address is too long."),
    ({"--birth-date": "1990-02-30"}, "--birth-date: Enter a date as YYYY-MM-DD."),
    ({"--birth-date": "03/02/1990"}, "--birth-date: Enter a date as YYYY-MM-DD."),
    ({"--doc-expiry": "soon"}, "--doc-expiry: Enter a date as YYYY-MM-DD."),
    ({"--doc-expiry": "2001-01-01"}, "--doc-expiry: The identity document has expired"),
    ({"--name": "A" * 201}, "--name: The name is too long (at most 200 characters)."),
    ({"--given-name": "A" * 101}, "--given-name: The name is too long (at most 100 characters)."),
    ({"--family-name": "Lopes 2"}, "--family-name: A name cannot contain digits or control characters."),
    ({"--name": "Ana\x07Lopes"}, "--name: A name cannot contain digits or control characters."),
    ({"--given-name": "   "}, "--given-name: Enter the name as it is on the document."),
    ({"--x-user-id": "@ana"}, "--x-user-id: An X account is given by its numeric user id."),
    ({**FOREIGN, "--doc-type": "visa"}, "--doc-type: Document type must be one of: passport"),
    ({**FOREIGN, "--doc-type": "cc"}, "--doc-type: For a Citizen Card use --nic"),
    ({**FOREIGN, "--doc-country": "BRA"}, "--doc-country: Enter the issuing country as a two-letter code"),
    ({**FOREIGN, "--doc-number": "A!"}, "--doc-number: The document number has 3 to 20 letters and digits."),
    ({"--doc-type": "passport"}, "not both"),
    ({**FOREIGN, "--doc-number": None}, "A foreign document needs all three of --doc-type, --doc-country and"),
    ({"--nic": None}, "Give --nic for a Portuguese citizen, or --doc-type"),
    ({"--phone": None, "--email": None}, "Give --phone or --email (or both)"),
    ({"--language": "fr"}, "argument --language: invalid choice: 'fr'"),
    ({"--name": None}, "the following arguments are required: --name"),
    ({"--birth-date": None, "--family-name": None}, "the following arguments are required: --family-name, --birth-date"),
]


@pytest.mark.django_db
@pytest.mark.parametrize(("changes", "expected"), BAD_ARGUMENTS, ids=[repr(c) for c, _ in BAD_ARGUMENTS])
def test_bad_argument_is_refused_with_a_clear_message_and_nothing_written(changes, expected):
    before = written()
    message = refused(*add_args(changes))
    assert expected in message
    assert "Traceback" not in message
    assert written() == before


@pytest.mark.django_db
@override_settings(CHAVE_ENV="dev")
@pytest.mark.parametrize(("pin", "expected"), [
    ("1111", "The PIN cannot be one digit repeated."),
    ("3456", "The PIN cannot be a run of digits such as 1234 or 9876."),
    ("1990", "The PIN cannot be your birth date or year."),
    ("0302", "The PIN cannot be your birth date or year."),
    ("12a4", "The PIN must have 4 to 8 digits, digits only."),
    ("123456789", "The PIN must have 4 to 8 digits, digits only."),
    ("", "The PIN must have 4 to 8 digits, digits only."),
])
def test_trivial_or_malformed_pin_is_refused(pin, expected):
    before = written()
    message = refused(*add_args({"--pin": pin}))
    assert message.endswith(f"--pin: {expected}")
    assert written() == before


@pytest.mark.django_db
def test_every_bad_argument_is_reported_at_once():
    message = refused(*add_args({"--nic": "1", "--phone": "2", "--email": "x", "--birth-date": "yesterday"}))
    lines = message.splitlines()
    assert lines[0] == "Nothing was registered:"
    assert [line.split(":")[0].strip() for line in lines[1:]] == ["--nic", "--birth-date", "--phone", "--email"]


@pytest.mark.django_db
def test_under_sixteen_is_refused(clock):
    today = service_clock.today()
    almost = (today.replace(year=today.year - 16) if (today.month, today.day) != (2, 29)
              else dt.date(today.year - 16, 2, 28)) + dt.timedelta(days=1)
    before = written()
    message = refused(*add_args({"--birth-date": almost.isoformat()}))
    assert message == "--birth-date: The Digital Mobile Key is for people aged 16 or over."
    assert written() == before


@pytest.mark.django_db
def test_same_person_twice_is_refused_and_their_record_is_untouched():
    citizen_cli(*add_args())
    before = written()
    message = refused(*add_args({"--name": "Someone Else", "--phone": "912345671", "--email": "other@example.pt"}))
    assert message == "--nic: This person already has a Digital Mobile Key."
    assert written() == before
    assert CivilRecord.objects.get(doc_number="12345678").full_name == "Ana Maria Lopes"


@pytest.mark.django_db
@pytest.mark.parametrize(("changes", "expected"), [
    ({"--phone": "+351912345670", "--email": "new@example.pt"},
     "--phone: This mobile number is already tied to another Digital Mobile Key."),
    ({"--phone": "912345671", "--email": "ANA@example.PT"},
     "--email: This e-mail address is already tied to another Digital Mobile Key."),
    ({"--phone": "912345671", "--email": "new@example.pt", "--x-user-id": "783214"},
     "--x-user-id: This X account is already tied to another Digital Mobile Key."),
])
def test_contact_of_another_key_is_refused(changes, expected):
    citizen_cli(*add_args({"--x-user-id": "783214"}))
    before = written()
    message = refused(*add_args({"--nic": "87654321", **changes}))
    assert message == expected
    assert written() == before
    assert not CivilRecord.objects.filter(doc_number="87654321").exists()


@pytest.mark.django_db
def test_subcommand_is_required():
    assert "the following arguments are required: {add,show}" in refused()


# --- show --------------------------------------------------------------------------------


@pytest.mark.django_db
@pytest.mark.parametrize("who", ["912 345 670", "+351912345670", "ANA@example.pt", "12345678"])
def test_show_finds_the_citizen_by_number_email_or_nic(who):
    added = json.loads(citizen_cli(*add_args(None, "--json")))
    shown = json.loads(citizen_cli("show", who, "--json"))
    assert shown["citizen_id"] == added["citizen_id"]
    assert "temporary_pin" not in shown
    assert shown["key"]["status"] == "active" and shown["key"]["pin_failures"] == 0
    assert shown["key"]["last_used_at"] is None


@pytest.mark.django_db
def test_show_reports_the_effective_status_and_failures(clock):
    citizen_cli(*add_args())
    key = Key.objects.get()
    for _ in range(3):
        services.check_login_pin(key, "5820", ip="198.51.100.9")
    shown = json.loads(citizen_cli("show", "912345670", "--json"))
    assert shown["key"]["status"] == "locked" and shown["key"]["pin_failures"] == 3
    assert shown["key"]["locked_until"] is not None
    text = citizen_cli("show", "912345670")
    assert "Temporarily locked" in text and "Wrong PINs in a row: 3" in text and "Locked until" in text
    assert key.pin_hash not in text

    clock.travel(dt.timedelta(hours=1))  # the lock has run out: the citizen may try again
    shown = json.loads(citizen_cli("show", "ana@example.pt", "--json"))
    assert shown["key"]["status"] == "active" and shown["key"]["locked_until"] is None


@pytest.mark.django_db
@pytest.mark.parametrize("who", ["913000000", "nobody@example.pt", "87654321", "not a number"])
def test_show_unknown_is_an_error(who):
    citizen_cli(*add_args())
    assert refused("show", who) == f"No citizen has this mobile number, e-mail address or NIC: {who}"


# --- the real console command --------------------------------------------------------------


def test_console_add_then_show(migrated):
    added = run_chave(migrated, "citizen", *add_args({"--nic": "11223344", "--phone": "961234567",
                                                      "--email": None}, "--json"))
    assert added.returncode == 0, added.stderr
    data = json.loads(added.stdout)
    assert data["temporary_pin"].isdigit() and data["key"]["status"] == "active"
    shown = run_chave(migrated, "citizen", "show", "96 123 45 67", "--json")
    assert shown.returncode == 0, shown.stderr
    assert json.loads(shown.stdout)["citizen_id"] == data["citizen_id"]
    assert data["temporary_pin"] not in shown.stdout


def test_console_bad_arguments_exit_non_zero_without_traceback(migrated):
    bad = run_chave(migrated, "citizen", *add_args({"--nic": "22334455x", "--phone": "962345678",
                                                    "--nif": "999999999"}))
    assert bad.returncode == 1
    assert "Traceback" not in bad.stderr and bad.stdout == ""
    # The operator reads validation's own words, in the service's language (settings.LANGUAGE_CODE).
    assert "--nic: " + message_of(validation.parse_nic, "22334455x", language="pt-pt") in bad.stderr
    assert "--nif: " + message_of(validation.parse_nif, "999999999", language="pt-pt") in bad.stderr
    assert run_chave(migrated, "citizen", "show", "962345678").returncode == 1  # nothing was written

    missing = run_chave(migrated, "citizen", "add", "--nic", "22334455")
    assert missing.returncode == 2
    assert "usage: chave citizen add" in missing.stderr and "--name" in missing.stderr
    assert "Traceback" not in missing.stderr

    unknown = run_chave(migrated, "citizen", "show", "nobody@example.pt")
    assert unknown.returncode == 1 and "nobody@example.pt" in unknown.stderr
    assert "Traceback" not in unknown.stderr


def test_console_pin_outside_development(migrated):
    env = {**migrated, "CHAVE_ENV": "test"}
    result = run_chave(env, "citizen", *add_args({"--nic": "33445566", "--phone": "963456789", "--email": None,
                                                  "--pin": "4719"}))
    assert result.returncode == 1 and "Traceback" not in result.stderr
    assert "CHAVE_ENV=dev" in result.stderr
    assert run_chave(migrated, "citizen", "show", "33445566").returncode == 1

    dev = run_chave(migrated, "citizen", *add_args({"--nic": "33445566", "--phone": "963456789", "--email": None,
                                                    "--pin": "4719"}, "--json"))
    assert dev.returncode == 0, dev.stderr
    assert "temporary_pin" not in json.loads(dev.stdout)


def test_console_unmigrated_database_is_a_clear_error(tmp_path):
    with chave_environment(tmp_path) as env:
        result = run_chave(env, "citizen", "show", "912345678")
    assert result.returncode == 1
    assert "chave migrate" in result.stderr and "Traceback" not in result.stderr
