"""Which claims a portal receives, under which names, and which subject identifier."""

import json

import pytest

from chave.federation.attributes import PREFIX
from chave.identity.models import Citizen
from chave.oidc.claims import ATTRIBUTE_STATUS_CLAIM

from .portal import register_portal
from .signin import EMAIL, PHONE, make_foreigner, tokens, userinfo

pytestmark = pytest.mark.django_db(transaction=True)

STATUS = ATTRIBUTE_STATUS_CLAIM
PERSONAL = {"name", "given_name", "family_name", "birthdate", "email", "phone_number",
            *(PREFIX + n for n in ("NIC", "NIF", "DocType", "DocNationality", "DocNumber", "DataValidade",
                                   "TemAssinaturaDigitalCMD"))}


@pytest.fixture
def citizen(make_citizen):
    key = make_citizen(phone=PHONE, email=EMAIL)
    Citizen.objects.filter(pk=key.citizen_id).update(nif="123456789")
    return key


def flow(client, outbox, portal, **params):
    body = tokens(client, outbox, portal, channel="sms", **params)
    body["userinfo"] = userinfo(client, body["access_token"]).json()
    return body


def claims(value: dict) -> str:
    return json.dumps(value)


def test_standard_claims_carry_the_standard_names(client, outbox, citizen):
    info = flow(client, outbox, register_portal(), scope="openid profile email phone")["userinfo"]
    assert info["name"] == "Maria Teste Silva"
    assert info["given_name"] == "Maria" and info["family_name"] == "Silva"
    assert info["birthdate"] == "1980-05-17"
    assert info["email"] == EMAIL and info["email_verified"] is True
    assert info["phone_number"] == PHONE and info["phone_number_verified"] is True
    assert all(value == "available" for value in info[STATUS].values())


def test_custom_claims_are_named_by_their_uri(client, outbox, citizen):
    portal = register_portal(attributes=["NIC", "NIF", "DataValidade", "TemAssinaturaDigitalCMD"], mandatory=[])
    info = flow(client, outbox, portal, scope="openid pt:identity pt:nif pt:validity",
                claims=claims({"userinfo": {PREFIX + "TemAssinaturaDigitalCMD": None}}))["userinfo"]
    assert info[PREFIX + "NIC"] == citizen.citizen.doc_number
    assert info[PREFIX + "NIF"] == "123456789"
    assert info[PREFIX + "DataValidade"] == citizen.valid_until.isoformat()
    assert info[PREFIX + "TemAssinaturaDigitalCMD"] is False
    assert "name" not in info  # not asked for


def test_the_openid_scope_alone_releases_no_personal_data(client, outbox, citizen):
    body = flow(client, outbox, register_portal(mandatory=()), scope="openid")
    assert not PERSONAL & set(body["userinfo"]) and not PERSONAL & set(body["claims"])
    assert STATUS not in body["userinfo"]


def test_scopes_select_attributes(client, outbox, citizen):
    info = flow(client, outbox, register_portal(mandatory=()), scope="openid email")["userinfo"]
    assert PERSONAL & set(info) == {"email"}
    assert info[STATUS] == {"CorreioElectronico": "available"}


def test_the_claims_parameter_selects_single_attributes(client, outbox, citizen):
    info = flow(client, outbox, register_portal(mandatory=()), scope="openid",
                claims=claims({"userinfo": {"family_name": None, "email": {"essential": True}}}))["userinfo"]
    assert PERSONAL & set(info) == {"family_name", "email"}


def test_only_the_allowed_attributes_are_released(client, outbox, citizen):
    portal = register_portal(attributes=["NomeCompleto", "NIC"], mandatory=["NomeCompleto"])
    body = flow(client, outbox, portal, scope="openid profile",
                claims=claims({"userinfo": {"email": None, PREFIX + "NIF": None, "birthdate": None},
                               "id_token": {"phone_number": {"essential": True}, "name": None}}))
    assert PERSONAL & set(body["userinfo"]) == {"name"}
    assert set(body["userinfo"][STATUS]) == {"NomeCompleto"}  # what it may not have is not even listed
    assert PERSONAL & set(body["claims"]) == {"name"}


def test_the_id_token_carries_the_claims_asked_for_it(client, outbox, citizen):
    body = flow(client, outbox, register_portal(), scope="openid",
                claims=claims({"id_token": {"name": None, "birthdate": {"essential": True},
                                            PREFIX + "NIC": None}}))
    id_token = body["claims"]
    assert id_token["name"] == "Maria Teste Silva" and id_token["birthdate"] == "1980-05-17"
    assert id_token[PREFIX + "NIC"] == citizen.citizen.doc_number
    assert id_token[STATUS] == {"NomeCompleto": "available", "DataNascimento": "available", "NIC": "available"}
    # The same attributes were granted, so userinfo has them too.
    assert body["userinfo"]["birthdate"] == "1980-05-17"


def test_without_an_id_token_request_the_id_token_has_no_personal_data(client, outbox, citizen):
    body = flow(client, outbox, register_portal(), scope="openid profile email")
    assert not PERSONAL & set(body["claims"])
    assert {"iss", "aud", "sub", "exp", "iat", "auth_time", "nonce", "acr", "amr", "sid", "at_hash"} <= set(body["claims"])


def test_refused_attributes_are_absent_from_the_id_token_too(client, outbox, citizen):
    body = flow(client, outbox, register_portal(), scope="openid profile", share=["NomeProprio"],
                claims=claims({"id_token": {"birthdate": None, "given_name": None}}))
    assert "birthdate" not in body["claims"] and body["claims"]["given_name"] == "Maria"
    assert body["claims"][STATUS] == {"NomeProprio": "available", "DataNascimento": "withheld"}


def test_missing_attributes_are_reported_not_available(client, outbox, make_citizen):
    make_citizen(phone=PHONE, email=None)  # no e-mail, no NIF on record
    info = flow(client, outbox, register_portal(), scope="openid email pt:nif")["userinfo"]
    assert "email" not in info and PREFIX + "NIF" not in info
    assert info[STATUS]["CorreioElectronico"] == "not_available"
    assert info[STATUS]["NIF"] == "not_available"


def test_a_foreign_resident_gets_the_foreign_document_for_the_identity_scope(client, outbox, db):
    key = make_foreigner(phone="+351913333333")
    portal = register_portal(attributes=["NIC", "DocType", "DocNationality", "DocNumber", "NomeCompleto"],
                             mandatory=["NomeCompleto"])
    body = tokens(client, outbox, portal, identifier="+351913333333", scope="openid pt:identity",
                  claims=claims({"id_token": {PREFIX + "DocNumber": None}}))
    info = userinfo(client, body["access_token"]).json()
    assert info[PREFIX + "DocType"] == "passport"
    assert info[PREFIX + "DocNationality"] == "BR"
    assert info[PREFIX + "DocNumber"] == key.citizen.doc_number == "FB123456"
    assert PREFIX + "NIC" not in info and "NIC" not in info[STATUS]
    assert body["claims"][PREFIX + "DocNumber"] == "FB123456"


def test_a_portuguese_citizen_gets_the_nic_for_the_identity_scope(client, outbox, citizen):
    portal = register_portal(attributes=["NIC", "DocType", "DocNationality", "DocNumber"], mandatory=[])
    info = flow(client, outbox, portal, scope="openid pt:identity")["userinfo"]
    assert info[PREFIX + "NIC"] == citizen.citizen.doc_number
    assert set(info[STATUS]) == {"NIC"}


# --- sub ------------------------------------------------------------------------------------------------


def sub_for(client, outbox, portal, **params):
    return tokens(client, outbox, portal, channel="sms", **params)["claims"]["sub"]


def test_portals_of_different_sectors_get_different_subjects(client, outbox, citizen):
    finances = register_portal(name="Finanças", redirect_uri="https://financas.gov.pt/cb")
    health = register_portal(name="Saúde", redirect_uri="https://sns.gov.pt/cb")
    assert sub_for(client, outbox, finances) != sub_for(client, outbox, health)


def test_portals_of_one_sector_share_the_subject(client, outbox, citizen):
    taxes = register_portal(name="IRS", redirect_uri="https://financas.gov.pt/irs/cb")
    customs = register_portal(name="Alfândega", redirect_uri="https://financas.gov.pt/alfandega/cb")
    assert sub_for(client, outbox, taxes) == sub_for(client, outbox, customs)


def test_public_subjects_are_the_same_for_every_public_portal(client, outbox, citizen):
    one = register_portal(name="Um", subject_type="public", redirect_uri="https://um.gov.pt/cb")
    two = register_portal(name="Dois", subject_type="public", redirect_uri="https://dois.gov.pt/cb")
    pairwise = register_portal(name="Três", redirect_uri="https://um.gov.pt/tres/cb")
    sub = sub_for(client, outbox, one)
    assert sub == sub_for(client, outbox, two)
    assert sub != sub_for(client, outbox, pairwise)


def test_the_subject_is_stable_across_logins_and_differs_between_citizens(client, outbox, make_citizen):
    from django.test import Client

    make_citizen(phone=PHONE)
    make_citizen(phone="+351914444444")
    portal = register_portal()
    first = sub_for(client, outbox, portal)
    assert sub_for(client, outbox, portal, prompt="login") == first
    assert sub_for(Client(), outbox, portal) == first  # another browser, another day
    other = tokens(Client(), outbox, portal, identifier="+351914444444")["claims"]["sub"]
    assert other != first
    assert len(first) >= 40 and citizen_pk_not_in(first)


def citizen_pk_not_in(sub: str) -> bool:
    return not any(str(c.pk) == sub for c in Citizen.objects.all())
