"""Queries compiled once (chave/compiled.py) answer what the ORM answers, on each database, and
refuse what they cannot express when they are compiled rather than guess."""

from __future__ import annotations

import datetime as dt
import uuid

import pytest
from django.db import connection, transaction
from django.db.models import Count, Min, Q
from django.db.transaction import TransactionManagementError
from django.test.utils import CaptureQueriesContext

from chave import clock
from chave.compiled import Compiled
from chave.identity.models import Contact, Key
from chave.login.models import LoginTransaction
from chave.throttle.models import ThrottleEvent

pytestmark = pytest.mark.django_db


def test_model_rows_with_related_objects_are_the_orms(make_citizen):
    make_citizen(phone="+351912000001")
    make_citizen(phone="+351912000002")
    compiled = Compiled(lambda kind, value: Contact.objects.select_related("key__citizen")
                        .filter(kind=kind, value=value, live=True).order_by("pk")[:1], str, str)
    for phone in ("+351912000002", "+351912000001"):
        expected = Contact.objects.select_related("key__citizen").get(value=phone)
        with CaptureQueriesContext(connection) as queries:
            found = compiled.first("mobile", phone)
            # Related objects came with it: reading them asks nothing more.
            assert (found.key.pk, found.key.citizen.full_name) == (expected.key.pk, expected.key.citizen.full_name)
        assert len(queries) == 1
        assert found == expected
        assert {f.attname: getattr(found, f.attname) for f in Contact._meta.concrete_fields} == \
            {f.attname: getattr(expected, f.attname) for f in Contact._meta.concrete_fields}
        assert found.key.created_at == expected.key.created_at and found.key.created_at.tzinfo is not None
        assert found._state.adding is False and found._state.db == "default"
    assert compiled.first("mobile", "+351919999999") is None
    assert compiled.first("email", "+351912000001") is None


def test_aggregate_rows_are_converted_as_the_orm_converts_them():
    now = clock.now()
    for minutes in (1, 2, 30):
        ThrottleEvent.objects.create(name="n", subject="s", at=now - dt.timedelta(minutes=minutes))
    ThrottleEvent.objects.create(name="n", subject="other", at=now)

    def build(name, subject, since):
        return (ThrottleEvent.objects.filter(Q(name=name, subject=subject, at__gt=since)).order_by()
                .values_list("name", "subject").annotate(events=Count("id"), oldest=Min("at")))

    compiled = Compiled(build, str, str, dt.datetime, values=True)
    since = now - dt.timedelta(minutes=10)
    assert compiled.all("n", "s", since) == list(build("n", "s", since)) == [
        ("n", "s", 2, now - dt.timedelta(minutes=2))]
    assert compiled.all("n", "s", now) == []


def test_an_update_changes_what_it_matches_and_says_how_many(make_citizen):
    key = make_citizen()
    now = clock.now()
    compiled = Compiled(lambda pk, at: Key.objects.filter(pk=pk, last_used_at=None), int, dt.datetime,
                        update=lambda pk, at: {"last_used_at": at})
    assert compiled.update(key.pk, now) == 1
    assert compiled.update(key.pk, now) == 0  # no longer unused
    key.refresh_from_db()
    assert key.last_used_at == now


def test_uuid_keys_are_stored_as_the_backend_stores_them(make_citizen):
    key = make_citizen()
    tx = LoginTransaction.objects.create(key=key, created_at=clock.now(), expires_at=clock.now())
    compiled = Compiled(lambda pk: LoginTransaction.objects.select_related("key__citizen").filter(pk=pk)[:1],
                        uuid.UUID)
    assert compiled.first(tx.pk) == tx
    assert compiled.first(uuid.uuid4()) is None


@pytest.mark.django_db(transaction=True)
def test_a_locking_read_needs_a_transaction(make_citizen):
    """As the ORM says on PostgreSQL, and here on SQLite too: code that reads a row to change it
    outside a transaction is wrong on both."""
    key = make_citizen()
    with transaction.atomic():
        assert Key.locked(key.pk) == key
    with pytest.raises(TransactionManagementError):
        Key.locked(key.pk)
    with transaction.atomic(), pytest.raises(Key.DoesNotExist):
        Key.locked(key.pk + 1000)
    if connection.vendor == "postgresql":
        with transaction.atomic(), CaptureQueriesContext(connection) as queries:
            Key.locked(key.pk)
        assert queries[0]["sql"].endswith("FOR UPDATE")


def test_what_cannot_be_compiled_is_refused_at_once():
    now = clock.now()
    derived = Compiled(lambda at: ThrottleEvent.objects.filter(at__gt=at - dt.timedelta(minutes=1)), dt.datetime)
    with pytest.raises(TypeError, match="derived"):
        derived.all(now)
    with pytest.raises(TypeError, match="float"):
        Compiled(lambda n: ThrottleEvent.objects.filter(pk=n), float).all(1.0)
    values = Compiled(lambda n: ThrottleEvent.objects.filter(name=n).values_list("name"), str)
    with pytest.raises(TypeError, match="values=True"):
        values.all("n")


def test_values_of_the_wrong_type_are_refused(make_citizen):
    compiled = Compiled(lambda pk, at: Key.objects.filter(pk=pk, created_at__lt=at), int, dt.datetime)
    now = clock.now()
    for args in (("1", now), (None, now), (True, now), (1, now.replace(tzinfo=None)), (1,)):
        with pytest.raises(TypeError):
            compiled.all(*args)
    assert compiled.all(1, now) == []


def test_inserted_rows_are_the_orms_with_their_keys_read_back(make_citizen):
    from chave.compiled import Inserter
    from chave.login.session_store import Session

    now = clock.now()
    events = Inserter(ThrottleEvent)
    one = events.create(name="n", subject="s", at=now)
    two, three = events.create_many([ThrottleEvent(name="n", subject="t", at=now),
                                     ThrottleEvent(name="m", subject="u", at=now - dt.timedelta(seconds=1))])
    assert one.pk and two.pk and three.pk and len({one.pk, two.pk, three.pk}) == 3
    for made in (one, two, three):
        stored = ThrottleEvent.objects.get(pk=made.pk)
        assert (stored.name, stored.subject, stored.at) == (made.name, made.subject, made.at)
        assert made._state.adding is False
    # A key set by the caller is written as given (nothing to read back).
    session = Inserter(Session).create(session_key="k" * 32, session_data="d", expire_date=now)
    assert Session.objects.get(pk="k" * 32).expire_date == session.expire_date == now
    from django.db import IntegrityError
    with pytest.raises(IntegrityError), transaction.atomic():
        Inserter(Session).create(session_key="k" * 32, session_data="again", expire_date=now)
    assert Session.objects.get(pk="k" * 32).session_data == "d"
