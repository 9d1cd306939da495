"""The personal area's services and adapters below the pages, and what they leave behind."""

import logging
import os

import pytest
from django.apps import apps
from django.contrib.sessions.models import Session
from django.core import serializers
from django.db import connection

from chave.identity import services as identity
from chave.identity.models import IllegalTransition, Key, KeyStatus
from chave.portal import services
from chave.portal.models import KeySession
from chave.portal.places import CsvPlaces, NoPlaces, places

from .helpers import EMAIL, PHONE, PIN, client_in, enter_with_card, enter_with_key

pytestmark = pytest.mark.django_db(transaction=True)


def test_no_places_by_default(settings):
    settings.CHAVE_GEOIP_CSV = ""
    assert isinstance(places(), NoPlaces) and places().place("193.136.1.1") is None


def test_csv_places_most_specific_range_and_a_changed_file(tmp_path):
    path = tmp_path / "ranges.csv"
    path.write_text("193.136.0.0/15,Portugal\n193.136.128.0/17,Lisboa\n2001:690::/32,PT (IPv6)\nbad,row\n,\n")
    finder = CsvPlaces(str(path))
    assert finder.place("193.136.200.1") == "Lisboa"
    assert finder.place("193.137.0.1") == "Portugal"
    assert finder.place("2001:690::5") == "PT (IPv6)"
    assert finder.place("8.8.8.8") is None and finder.place("not an ip") is None and finder.place(None) is None
    path.write_text("8.8.8.0/24,Somewhere else\n")
    os.utime(path, ns=(1, 2))  # a different modification time: the file is read again
    assert finder.place("8.8.8.8") == "Somewhere else"
    assert CsvPlaces(str(tmp_path / "missing.csv")).place("8.8.8.8") is None


def test_block_key_only_from_active_or_locked(make_citizen):
    key = make_citizen(phone=PHONE)
    assert identity.block_key(key, by="test") is True
    assert Key.objects.get(pk=key.pk).status == KeyStatus.BLOCKED
    assert identity.block_key(key, by="test") is False
    pending = make_citizen(phone="+351916000000", verified=False)
    with pytest.raises(IllegalTransition):
        identity.block_key(pending, by="test")


def test_sessions_are_recorded_at_sign_in_and_forgotten_at_sign_out(make_citizen, outbox):
    key = make_citizen(phone=PHONE, email=EMAIL)
    client = client_in()
    enter_with_key(client, outbox)
    row = KeySession.objects.get(key=key)
    assert row.method == "sms" and row.assurance_level == 3 and row.ended_at is None
    assert Session.objects.filter(session_key=row.session_key).exists()
    client.post("/login/logout/")
    assert KeySession.objects.get(pk=row.pk).ended_at is not None


def test_lapsed_sessions_are_marked_ended_at_the_next_sign_in(make_citizen):
    key = make_citizen(phone=PHONE)
    first = client_in()
    enter_with_card(first, key)
    Session.objects.all().delete()  # the first browser's session lapsed
    enter_with_card(client_in(), key)
    assert KeySession.objects.filter(key=key, ended_at__isnull=True).count() == 1


def test_ending_a_key_s_sessions_leaves_other_keys_alone(make_citizen):
    key = make_citizen(phone=PHONE)
    other = make_citizen(phone="+351916666666")
    mine, theirs = client_in(), client_in()
    enter_with_card(mine, key)
    enter_with_card(theirs, other)
    ended = services.end_key_sessions(key, by="test")
    assert ended.browser_sessions == 1
    assert mine.get("/area/").status_code == 302
    assert theirs.get("/area/").status_code == 200


def test_no_pin_or_code_in_the_database_or_logs(make_citizen, outbox, caplog):
    caplog.set_level(logging.DEBUG)
    key = make_citizen(phone=PHONE, email=EMAIL)
    client = client_in()
    enter_with_key(client, outbox)
    new_pin = "5830"
    client.post("/area/pin/", {"pin": PIN})
    pin_code = outbox.last_code(PHONE)
    client.post("/area/pin/confirm/", {"code": pin_code, "new_pin": new_pin, "new_pin_again": new_pin})
    client.post("/area/contact/mobile/", {"value": "+351913000111"})
    contact_code = outbox.last_code("+351913000111")
    client.post("/area/contact/confirm/", {"code": contact_code})
    assert identity.check_login_pin(Key.objects.get(pk=key.pk), new_pin).ok
    # Every table except the development outbox (the "phone" the tests read codes from).
    tables = set(connection.introspection.table_names())
    models = [m for m in apps.get_models()
              if m._meta.label != "delivery.DevOutboxMessage" and m._meta.db_table in tables]
    dump = "".join(serializers.serialize("json", m.objects.all()) for m in models)
    for secret in (new_pin, pin_code, contact_code):
        assert f'"{secret}"' not in dump and f" {secret}" not in dump and f"#{secret}" not in dump
    logged = "\n".join(r.getMessage() for r in caplog.records)
    for secret in (PIN, new_pin, pin_code, contact_code):
        assert secret not in logged
