"""The registry of relying parties (chave.oidc.services): what is accepted, what is refused and
why, the states requested → approved → suspended (→ reinstated), and what a portal notices."""

from __future__ import annotations

import base64
import itertools
from urllib.parse import urlencode

import pytest
from django.core.exceptions import ValidationError
from django.utils import translation
from joserfc.jwk import ECKey, OctKey, RSAKey

from chave.audit.models import AuditEvent
from chave.federation import services as federation
from chave.federation.models import RelyingParty, RelyingPartyEvent, token_hash
from chave.oidc import services

from .portal import REDIRECT_URI, Portal, register_portal

pytestmark = pytest.mark.django_db


def public_jwks(*keys) -> dict:
    for key in keys:
        key.ensure_kid()
    return {"keys": [key.as_dict(private=False) for key in keys]}


def register(**overrides):
    fields = dict(name="Portal da Saúde", entity_nif="600 084 779", contact_email="Dev@Saude.gov.pt",
                  redirect_uris=["https://saude.gov.pt/cb"], allowed_attributes=["NIC", "NomeCompleto"],
                  mandatory_attributes=["NIC"], jwks=public_jwks(RSAKey.generate_key(2048, private=True)))
    fields.update(overrides)
    return services.register_relying_party(**fields)


def refusal(function, *args, **kwargs) -> dict[str, list[str]]:
    """The problems a refusal names, by field, with their codes (English texts)."""
    with translation.override("en"), pytest.raises(ValidationError) as caught:
        function(*args, **kwargs)
    return {field: [e.code for e in errors] for field, errors in caught.value.error_dict.items()}


def written() -> tuple[int, int, int]:
    return RelyingParty.objects.count(), RelyingPartyEvent.objects.count(), AuditEvent.objects.count()


def authenticates(client, client_id: str, *, secret: str | None = None, portal: Portal | None = None) -> bool:
    """Whether the token endpoint accepts the client's credentials (it checks them before the code)."""
    form = {"grant_type": "authorization_code", "code": "not-a-code", "redirect_uri": REDIRECT_URI,
            "code_verifier": "v" * 43}
    headers = {}
    if secret is not None:
        headers["HTTP_AUTHORIZATION"] = "Basic " + base64.b64encode(f"{client_id}:{secret}".encode()).decode()
    else:
        form.update(client_assertion_type="urn:ietf:params:oauth:client-assertion-type:jwt-bearer",
                    client_assertion=portal.assertion())
    response = client.post("/oidc/token", urlencode(form), content_type="application/x-www-form-urlencoded",
                           **headers)
    assert response.status_code in (400, 401), response.content
    return response.json()["error"] == "invalid_grant"


# --- registration ------------------------------------------------------------------------------


def test_a_registration_is_normalised_and_starts_as_a_request():
    registration = register(redirect_uris=["https://saude.gov.pt/cb", "https://saude.gov.pt/cb"],
                            sector_identifier="Saude.GOV.pt")
    party = registration.relying_party
    assert registration.client_secret is None
    assert (party.state, party.entity_nif, party.contact_email) == ("requested", "600084779", "dev@saude.gov.pt")
    assert party.redirect_uris == ["https://saude.gov.pt/cb"]
    assert party.sector_identifier == "saude.gov.pt"
    assert party.min_level == 2 and party.subject_type == "pairwise" and party.id_token_alg == "RS256"
    assert list(party.events.values_list("action", flat=True)) == ["requested"]
    assert AuditEvent.objects.filter(event="rp.register", detail__client_id=party.client_id).exists()


def test_a_client_secret_is_given_once_and_kept_only_as_a_hash(client):
    registration = register(auth_method="client_secret_basic", jwks=None)
    secret, party = registration.client_secret, registration.relying_party
    assert len(secret) >= 40
    assert party.client_secret_hash == token_hash(secret)
    assert secret not in repr(list(RelyingParty.objects.values())) + repr(list(AuditEvent.objects.values()))
    federation.decide(party, "approve", by="staff")
    assert authenticates(client, party.client_id, secret=secret)
    assert not authenticates(client, party.client_id, secret=secret + "x")


def test_every_problem_is_reported_at_once_by_field_and_nothing_is_written():
    before = written()
    problems = refusal(
        register, name=" ", entity_nif="123456788", contact_email="not-an-address",
        redirect_uris=["http://saude.gov.pt/cb", "https://saude.gov.pt/cb#frag"],
        post_logout_redirect_uris=["ftp://saude.gov.pt/"], backchannel_logout_uri="https://",
        allowed_attributes=["NIC", "Shoe size"], mandatory_attributes=["NIF"], min_level=5,
        sector_identifier="not a host", subject_type="secret", id_token_alg="HS256",
    )
    assert problems == {
        "name": ["name_invalid"], "entity_nif": ["nif_invalid"], "contact_email": ["email_invalid"],
        "redirect_uris": ["uri_invalid", "uri_invalid"], "post_logout_redirect_uris": ["uri_invalid"],
        "backchannel_logout_uri": ["uri_invalid"], "allowed_attributes": ["attribute_unknown"],
        "mandatory_attributes": ["attribute_mandatory"], "min_level": ["level_invalid"],
        "sector_identifier": ["sector_invalid"], "subject_type": ["subject_type_invalid"],
        "id_token_alg": ["alg_invalid"],
    }
    assert written() == before


@pytest.mark.parametrize(("overrides", "expected"), [
    ({"redirect_uris": []}, {"redirect_uris": ["redirect_uri_required"]}),
    ({"contact_email": ""}, {"contact_email": ["email_invalid"]}),
    ({"min_level": "3"}, {"min_level": ["level_invalid"]}),
    ({"min_level": True}, {"min_level": ["level_invalid"]}),
    ({"auth_method": "none", "jwks": None}, {"auth_method": ["auth_invalid"]}),
    ({"jwks": None}, {"jwks": ["jwks_required"]}),
    ({"jwks_uri": "https://saude.gov.pt/jwks"}, {"jwks": ["jwks_required"]}),  # both a JWKS and its URI
    ({"jwks": None, "jwks_uri": "http://saude.gov.pt/jwks"}, {"jwks_uri": ["uri_invalid"]}),
    ({"jwks": {"keys": []}}, {"jwks": ["jwks_invalid"]}),
    ({"jwks": {"keys": [{"kty": "RSA", "n": "x"}]}}, {"jwks": ["jwks_invalid"]}),
    ({"jwks": {"keys": [RSAKey.generate_key(2048, private=True).as_dict(private=True)]}}, {"jwks": ["jwks_private"]}),
    ({"jwks": {"keys": [OctKey.generate_key(256).as_dict()]}}, {"jwks": ["jwks_private"]}),
    ({"auth_method": "client_secret_basic"}, {"jwks": ["jwks_unexpected"]}),
    ({"allowed_attributes": ["NIC"], "mandatory_attributes": ["NIC", "NIF"]},
     {"mandatory_attributes": ["attribute_mandatory"]}),
    ({"redirect_uris": ["https://a.saude.gov.pt/cb", "https://b.saude.gov.pt/cb"]},
     {"sector_identifier": ["sector_required"]}),
    ({"redirect_uris": ["https://saude.gov.pt:99999/cb"]}, {"redirect_uris": ["uri_invalid"]}),
    ({"redirect_uris": ["https://saude.gov.pt/" + "x" * 500]}, {"redirect_uris": ["uri_invalid"]}),
])
def test_a_bad_registration_is_refused_with_the_field_to_fix(overrides, expected):
    before = written()
    assert refusal(register, **overrides) == expected
    assert written() == before


def test_what_is_accepted_at_the_edges():
    # Local development portals may use http://; several hosts are fine with a sector or public subjects.
    assert register(redirect_uris=["http://127.0.0.1:8001/cb", "http://localhost:8001/cb"],
                    subject_type="public").relying_party.subject_type == "public"
    assert register(redirect_uris=["https://a.saude.gov.pt/cb", "https://b.saude.gov.pt/cb"],
                    sector_identifier_uri="https://saude.gov.pt/sector.json").relying_party.sector == "saude.gov.pt"
    ec = register(jwks=public_jwks(ECKey.generate_key("P-256", private=True)), min_level=4,
                  id_token_alg="ES256").relying_party
    assert (ec.min_level, ec.id_token_alg) == (4, "ES256")


def test_refusals_are_translated():
    with translation.override("pt-pt"), pytest.raises(ValidationError) as caught:
        register(entity_nif="123456788")
    assert "NIF" in caught.value.error_dict["entity_nif"][0].messages[0]
    assert "não é válido" in caught.value.error_dict["entity_nif"][0].messages[0]


# --- decisions ------------------------------------------------------------------------------------

MOVES = {
    ("requested", "approve"): ("approved", "approved"),
    ("approved", "suspend"): ("suspended", "suspended"),
    ("suspended", "approve"): ("approved", "reinstated"),
}


def party_in(state: str) -> RelyingParty:
    party = register().relying_party
    path = {"requested": [], "approved": ["approve"], "suspended": ["approve", "suspend"]}[state]
    for action in path:
        party = federation.decide(party, action, by="setup")
    return party


@pytest.mark.parametrize(("state", "action"), list(itertools.product(["requested", "approved", "suspended"],
                                                                     ["approve", "suspend"])))
def test_each_decision_moves_the_state_or_is_refused(state, action, clock):
    party = party_in(state)
    history = party.events.count()
    audited = AuditEvent.objects.count()
    if (state, action) not in MOVES:
        with translation.override("en"), pytest.raises(ValidationError) as caught:
            federation.decide(party, action, by="staff", reason="try")
        assert caught.value.code == "illegal_state"
        party.refresh_from_db()
        assert party.state == state and party.events.count() == history and AuditEvent.objects.count() == audited
        return
    target, recorded = MOVES[state, action]
    party = federation.decide(party, action, by="ana.staff", reason="  checked the\nentity's request ")
    party.refresh_from_db()
    assert party.state == target and party.state_changed_at == clock.now()
    event = party.events.first()
    assert (event.action, event.by, event.reason, event.at) == (recorded, "ana.staff", "checked the entity's request",
                                                                 clock.now())
    audit = AuditEvent.objects.get(event=f"rp.{recorded}", detail__client_id=party.client_id, detail__by="ana.staff")
    assert audit.detail["reason"] == "checked the entity's request"


def test_the_refusal_says_why():
    with translation.override("en"):
        for state, action, words in [("requested", "suspend", "awaiting approval"),
                                     ("approved", "approve", "already approved"),
                                     ("suspended", "suspend", "already suspended")]:
            with pytest.raises(ValidationError) as caught:
                federation.decide(party_in(state), action, by="staff")
            assert words in caught.value.messages[0]


def test_a_reason_longer_than_the_history_keeps_is_refused_and_nothing_changes():
    party = party_in("requested")
    with pytest.raises(ValidationError) as caught:
        federation.decide(party, "approve", by="staff", reason="x" * (federation.REASON_MAX_LENGTH + 1))
    assert caught.value.code == "reason_too_long"
    party.refresh_from_db()
    assert party.state == "requested" and party.events.count() == 1


def test_an_unknown_decision_is_a_programming_error():
    with pytest.raises(ValueError):
        federation.decide(party_in("requested"), "delete", by="staff")


def test_only_an_approved_portal_can_start_a_login_or_use_the_token_endpoint(client):
    portal = register_portal(approve=False, auth="client_secret_basic")
    party = RelyingParty.objects.get(client_id=portal.client_id)

    def can_start_login():
        response = client.get(portal.authorize_url())
        # An approved portal's citizen is sent to sign in; otherwise the citizen sees an error page
        # and nothing goes back to the (unverified) portal.
        assert response.status_code in (302, 400)
        return response.status_code == 302 and response["Location"].endswith("/login/")

    assert not can_start_login() and not authenticates(client, portal.client_id, secret=portal.secret)
    federation.decide(party, "approve", by="staff")
    assert can_start_login() and authenticates(client, portal.client_id, secret=portal.secret)
    federation.decide(party, "suspend", by="staff", reason="incident")
    assert not can_start_login() and not authenticates(client, portal.client_id, secret=portal.secret)
    federation.decide(party, "approve", by="staff", reason="incident closed")
    assert can_start_login() and authenticates(client, portal.client_id, secret=portal.secret)


# --- credentials ------------------------------------------------------------------------------------


def test_rotating_the_secret_invalidates_the_old_one(client, clock):
    portal = register_portal(auth="client_secret_basic")
    party = RelyingParty.objects.get(client_id=portal.client_id)
    rotated = services.rotate_client_secret(party, by="staff", reason="leaked in a log")
    assert rotated.client_secret != portal.secret
    assert not authenticates(client, portal.client_id, secret=portal.secret)
    assert authenticates(client, portal.client_id, secret=rotated.client_secret)
    event = party.events.first()
    assert (event.action, event.by, event.reason) == ("secret_rotated", "staff", "leaked in a log")
    audit = AuditEvent.objects.get(event="rp.secret_rotated")
    assert rotated.client_secret not in repr(audit.detail)


def test_a_portal_with_keys_has_no_secret_to_rotate():
    party = party_in("approved")
    with pytest.raises(ValidationError) as caught:
        services.rotate_client_secret(party, by="staff")
    assert caught.value.code == "no_secret"
    party.refresh_from_db()
    assert party.client_secret_hash == "" and party.events.count() == 2


def test_replacing_a_portals_keys(client):
    portal = register_portal()
    party = RelyingParty.objects.get(client_id=portal.client_id)
    assert authenticates(client, portal.client_id, portal=portal)
    new_key = RSAKey.generate_key(2048, private=True)
    services.set_relying_party_keys(party, jwks=public_jwks(new_key), by="staff", reason="yearly rotation")
    assert not authenticates(client, portal.client_id, portal=portal)
    assert authenticates(client, portal.client_id, portal=Portal(portal.client_id, new_key))
    event = party.events.first()
    assert event.action == "keys_changed" and new_key.kid in event.reason and "yearly rotation" in event.reason
    assert AuditEvent.objects.get(event="rp.keys_changed").detail["kids"] == [new_key.kid]

    services.set_relying_party_keys(party, jwks_uri="https://portal.example.gov.pt/jwks", by="staff")
    party.refresh_from_db()
    assert (party.jwks, party.jwks_uri) == (None, "https://portal.example.gov.pt/jwks")


def test_bad_keys_are_refused_and_the_old_ones_kept():
    party = party_in("approved")
    jwks = party.jwks
    for kwargs, field, code in [
        ({}, "jwks", "jwks_required"),
        ({"jwks": {"keys": [RSAKey.generate_key(2048, private=True).as_dict(private=True)]}}, "jwks", "jwks_private"),
        ({"jwks_uri": "http://evil.example/jwks"}, "jwks_uri", "uri_invalid"),
    ]:
        assert refusal(services.set_relying_party_keys, party, by="staff", **kwargs) == {field: [code]}
    secret_party = register(auth_method="client_secret_basic", jwks=None).relying_party
    with pytest.raises(ValidationError) as caught:
        services.set_relying_party_keys(secret_party, jwks_uri="https://saude.gov.pt/jwks", by="staff")
    assert caught.value.code == "no_keys"
    party.refresh_from_db()
    assert party.jwks == jwks and party.events.count() == 2
