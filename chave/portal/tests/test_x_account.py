"""Linking an X account (codes by direct message) in the personal area (and at the counter:
``chave/counter/tests/test_x_at_counter.py``): the
account is confirmed by a code sent to it there, through the X channel's development sink; it is
offered only while the X channel is configured. A foreign resident is not offered recovery by
Citizen Card, which they cannot use."""

import re

import pytest

from chave.identity import services as identity
from chave.identity.models import ContactKind
from chave.identity.registry import DocumentRef, IdentityRecord, LocalRecords

from .helpers import client_in, enter_with_key

pytestmark = pytest.mark.django_db(transaction=True)  # the outbox worker runs
X_USER = "1456789012345678901"


def body(response) -> str:
    return response.content.decode()


def test_a_citizen_links_their_x_account_with_a_code_sent_there(key, area, outbox, settings):
    assert 'id="go-x"' not in body(area.get("/area/")) and area.get("/area/contact/x/").status_code == 404
    settings.CHAVE_X_PROVIDER = "sink"
    home = body(area.get("/area/"))
    assert 'id="go-x"' in home and "Link your X account" in home
    refused = area.post("/area/contact/x/", {"value": "@maria"})
    assert refused.status_code == 400 and "numeric user id" in body(refused)
    response = area.post("/area/contact/x/", {"value": X_USER})
    assert response.status_code == 302 and response["Location"] == "/area/contact/confirm/"
    wrong = area.post("/area/contact/confirm/", {"code": "000000"})
    assert wrong.status_code == 400 and identity.find_key_by_contact(ContactKind.X, X_USER) is None
    response = area.post("/area/contact/confirm/", {"code": outbox.last_code(X_USER)})
    assert response.status_code == 302
    assert identity.find_key_by_contact(ContactKind.X, X_USER).pk == key.pk
    home = body(area.get("/area/"))
    assert "X •••901" in home and "Change your X account" in home and X_USER not in home


def test_a_foreign_resident_is_not_offered_recovery_by_citizen_card(outbox, clock):
    import datetime as dt

    doc = DocumentRef("passport", "BR", "FX123456")
    LocalRecords().store(IdentityRecord(doc=doc, full_name="João Estrangeiro", given_name="João",
                                        family_name="Estrangeiro", birth_date=dt.date(1990, 1, 2),
                                        document_expiry=clock.today() + dt.timedelta(days=900), nif="123456789"))
    identity.register_citizen(doc, [identity.ContactInput("mobile", "+351913000222")], pin="4719",
                              contacts_verified_by="test")
    client = client_in("en")
    enter_with_key(client, outbox, identifier="+351913000222", pin="4719")
    home = body(client.get("/area/"))
    assert 'id="go-pin"' in home and 'id="go-recover"' not in home
    # The document reads in words, its country named rather than coded.
    assert re.search(r'id="document">Passport FX123456 \(Brazil\)<', home)
