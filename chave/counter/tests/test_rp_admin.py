"""Relying-party administration pages: the workflow with reasons and history; who may do what."""

import json

import pytest
from joserfc.jwk import RSAKey

from chave.audit.models import AuditEvent
from chave.federation.models import RelyingParty, token_hash

pytestmark = pytest.mark.django_db


def jwks():
    key = RSAKey.generate_key(2048, private=True)
    key.ensure_kid()
    return {"keys": [key.as_dict(private=False)]}


REQUEST = {"name": "Portal da Saúde", "entity_nif": "600084779", "contact_email": "dev@saude.gov.pt",
           "redirect_uris": "https://saude.gov.pt/cb", "allowed_attributes": ["NIC", "NomeCompleto"],
           "mandatory_attributes": ["NIC"], "min_level": "3", "auth_method": "private_key_jwt",
           "jwks_uri": "https://saude.gov.pt/jwks.json", "subject_type": "pairwise", "id_token_alg": "RS256"}


def test_request_review_approve_suspend_reinstate_with_history(staff_client):
    admin = staff_client("rp-admin", counter="")
    response = admin.post("/counter/rp/request", REQUEST)
    assert response.status_code == 200
    party = RelyingParty.objects.get()
    assert party.state == "requested" and party.min_level == 3
    url = f"/counter/rp/{party.client_id}/"
    assert 'data-state="requested"' in admin.get(url).content.decode()
    short = admin.post(url + "decide", {"decide-decision": "approve", "decide-reason": "ok"})
    assert short.status_code == 400 and RelyingParty.objects.get().state == "requested"
    for decision, reason, state in (("approve", "Public entity, checked the NIF", "approved"),
                                    ("suspend", "Security incident reported", "suspended"),
                                    ("approve", "Incident closed by the entity", "approved")):
        assert admin.post(url + "decide", {"decide-decision": decision, "decide-reason": reason}).status_code == 302
        assert RelyingParty.objects.get().state == state
    page = admin.get(url).content.decode()
    for text in ("requested", "approved", "suspended", "reinstated", "Security incident reported",
                 f"Staff {admin.login_as.username} ({admin.login_as.username})"):
        assert text in page, text
    assert AuditEvent.objects.filter(event="rp.suspended").get().detail["by"] == f"staff:{admin.login_as.username}"


@pytest.mark.parametrize("language", ["en", "pt-pt"])
def test_portal_pages_say_things_in_words(staff_client, language, settings):
    """The list and a portal's page as the administrator reads them: dates, who decided, the
    attributes and the client authentication in words; an empty JWKS box is empty, not "null"."""
    import re

    from chave.federation import services as federation
    from chave.public.management.commands.seed_demo import SEEDED_BY

    admin = staff_client("rp-admin", counter="", name="Paula Portais")
    admin.post("/counter/rp/request", REQUEST)
    party = RelyingParty.objects.get()
    federation.decide(party, "approve", by=SEEDED_BY, reason="demo portal")
    federation.decide(party, "suspend", by="ana (CLI)", reason="Certificate expired")
    admin.cookies[settings.LANGUAGE_COOKIE_NAME] = language
    pages = admin.get("/counter/rp/").content.decode(), admin.get(f"/counter/rp/{party.client_id}/").content.decode()
    for page in pages:
        assert not re.search(r"\b\d{4}-\d{2}-\d{2}\b", page) and "staff:" not in page and SEEDED_BY not in page
        assert f"<code>{party.client_id}</code>" in page or f'<code id="client-id">{party.client_id}</code>' in page
    listing, detail = pages
    assert re.search(r'<textarea name="keys-jwks"[^>]*>\s*</textarea>', detail), "the JWKS box shows something"
    blank = admin.get("/counter/rp/request").content.decode()
    assert re.search(r'<textarea name="jwks"[^>]*>\s*</textarea>', blank), "the request's JWKS box shows something"
    words = {"en": ["Client ID (client_id)", f"Paula Portais ({admin.login_as.username})", "ana, on the command line",
                    "The demo data (make run)", "Civil identification number (NIC), Full name",
                    "Signed with the portal&#x27;s private key (private_key_jwt)"],
             "pt-pt": ["Identificador de cliente (client_id)", f"Paula Portais ({admin.login_as.username})",
                       "ana, na linha de comandos", "Os dados de demonstração (make run)",
                       "Assinada com a chave privada do portal (private_key_jwt)"]}[language]
    for text in words:
        assert text in detail, text
    assert words[0] in listing


def test_refusals_by_field(staff_client):
    admin = staff_client("rp-admin", counter="")
    response = admin.post("/counter/rp/request", {**REQUEST, "entity_nif": "123", "redirect_uris": "http://x.pt/cb"})
    assert response.status_code == 400
    page = response.content.decode()
    assert 'id="id_entity_nif_error"' in page and 'id="id_redirect_uris_error"' in page
    assert not RelyingParty.objects.exists()


def test_rotate_secret_shows_it_once_and_set_keys(staff_client):
    admin = staff_client("rp-admin", counter="")
    admin.post("/counter/rp/request", {**REQUEST, "auth_method": "client_secret_basic", "jwks_uri": ""})
    party = RelyingParty.objects.get()
    response = admin.post(f"/counter/rp/{party.client_id}/rotate-secret", {"rotate-reason": "Secret leaked in a log"})
    secret = response.content.decode().split('id="client-secret"')[1].split("<code>")[1].split("</code>")[0]
    assert RelyingParty.objects.get().client_secret_hash == token_hash(secret)
    assert secret not in admin.get(f"/counter/rp/{party.client_id}/").content.decode()

    admin.post("/counter/rp/request", {**REQUEST, "name": "Portal B"})
    other = RelyingParty.objects.get(name="Portal B")
    keys = jwks()
    response = admin.post(f"/counter/rp/{other.client_id}/keys", {"keys-jwks": json.dumps(keys),
                                                                  "keys-reason": "Yearly key rotation"})
    assert response.status_code == 302
    other.refresh_from_db()
    assert other.jwks == keys and other.jwks_uri == ""
    assert other.events.filter(action="keys_changed").exists()


@pytest.mark.parametrize("role", ["clerk", "supervisor", "auditor", "mailroom"])
def test_only_the_rp_administrator_decides(staff_client, role):
    from chave.oidc import services

    party = services.register_relying_party(name="P", entity_nif="600084779", contact_email="a@b.pt",
                                            redirect_uris=["https://p.gov.pt/cb"], jwks=jwks()).relying_party
    client = staff_client(role)
    assert client.post(f"/counter/rp/{party.client_id}/decide",
                       {"decide-decision": "approve", "decide-reason": "I should not be able to"}).status_code == 403
    assert client.get("/counter/rp/request").status_code == 403
    assert client.get(f"/counter/rp/{party.client_id}/").status_code == (200 if role == "auditor" else 403)
    assert RelyingParty.objects.get().state == "requested"


def test_refused_decisions_and_keys_say_why(staff_client):
    from chave.oidc import services

    party = services.register_relying_party(name="P", entity_nif="600084779", contact_email="a@b.pt",
                                            redirect_uris=["https://p.gov.pt/cb"], jwks=jwks()).relying_party
    admin = staff_client("rp-admin", counter="")
    url = f"/counter/rp/{party.client_id}/"
    response = admin.post(url + "decide", {"decide-decision": "suspend", "decide-reason": "Nothing to suspend yet"})
    assert response.status_code == 400 and "still awaiting approval" in response.content.decode()
    private = RSAKey.generate_key(2048, private=True).as_dict(private=True)
    response = admin.post(url + "keys", {"keys-jwks": json.dumps({"keys": [private]}),
                                         "keys-reason": "Rotation with a mistake"})
    assert response.status_code == 400 and 'id="id_keys-jwks_error"' in response.content.decode()
    party.refresh_from_db()
    assert party.state == "requested" and party.jwks["keys"][0].get("d") is None


def test_the_portal_page_shows_each_logout_notification_and_its_outcome(staff_client, make_citizen, clock):
    import datetime as dt

    from chave.federation.models import SsoSession
    from chave.oidc.models import BackchannelLogout
    from chave.oidc.services import register_relying_party

    party = register_relying_party(
        name="Portal da Saúde", entity_nif="600084779", contact_email="dev@saude.gov.pt",
        redirect_uris=["https://saude.gov.pt/cb"], backchannel_logout_uri="https://saude.gov.pt/bcl",
        jwks=jwks()).relying_party
    key = make_citizen()
    now = clock.now()
    for n, (status, attempts, http, error, later) in enumerate([
            ("delivered", 1, 200, "", None), ("queued", 2, 400, "the portal answered 400", 30),
            ("failed", 6, None, "the portal is unreachable: refused", None),
            ("failed", 1, 200, "the service provider did not answer with a LogoutResponse", None)]):
        session = SsoSession.objects.create(sid=f"s{n}", key=key, auth_time=now, assurance_level=3, method="sms",
                                            created_at=now)
        BackchannelLogout.objects.create(
            sso_session=session, relying_party=party, status=status, attempts=attempts, last_status=http,
            last_error=error, created_at=now - dt.timedelta(minutes=n),
            next_attempt_at=now + dt.timedelta(seconds=later) if later else None)
    clerk = staff_client("rp-admin", counter="")
    html = clerk.get(f"/counter/rp/{party.client_id}/").content.decode()
    table = html[html.index('id="rp-logouts"'):html.index("</table>", html.index('id="rp-logouts"'))]
    assert "Delivered" in table and "HTTP 200" in table
    assert "Will try again at" in table and "HTTP 400" in table
    assert "Not delivered: gave up" in table and "No answer (unreachable)" in table
    assert "HTTP 200, without confirming the sign-out" in table  # a SAML SP's answer that was not Success
    assert "queued" not in table and "failed" not in table  # labels, never the internal codes


def test_a_portal_without_back_channel_logout_says_so(staff_client):
    from chave.oidc.services import register_relying_party

    party = register_relying_party(name="Portal X", entity_nif="600084779", contact_email="dev@x.gov.pt",
                                   redirect_uris=["https://x.gov.pt/cb"], jwks=jwks()).relying_party
    html = staff_client("rp-admin", counter="").get(f"/counter/rp/{party.client_id}/").content.decode()
    assert "registered no back-channel logout URI" in html


def test_a_saml_sp_page_says_whether_it_is_told_by_soap(staff_client, client, tmp_path):
    from saml2 import BINDING_HTTP_REDIRECT, BINDING_SOAP

    from chave.saml.tests.conftest import register
    from chave.saml.tests.sp import pysaml2_portal

    idp_metadata = client.get("/saml/metadata").content.decode()
    front = register(pysaml2_portal(tmp_path, idp_metadata, host="front.example.pt", name="front").metadata_xml)
    soap = register(pysaml2_portal(tmp_path, idp_metadata, host="soap.example.pt", name="soap",
                                   slo_bindings=(BINDING_HTTP_REDIRECT, BINDING_SOAP)).metadata_xml, name="SOAP")
    clerk = staff_client("rp-admin", counter="")
    front_page = clerk.get(f"/counter/rp/{front.relying_party.client_id}/").content.decode()
    soap_page = clerk.get(f"/counter/rp/{soap.relying_party.client_id}/").content.decode()
    assert "registered no SOAP logout service" in front_page
    assert "No citizen has signed out of this portal yet." in soap_page and "SOAP logout service" not in soap_page


# --- OpenID Connect settings (issue 14): the newer client settings and the sector identifier URI --------


@pytest.fixture
def sector():
    from chave.oidc.tests.test_pairwise import SectorDocuments

    documents = SectorDocuments()
    yield documents
    documents.server.shutdown()
    documents.server.server_close()


def test_a_request_records_the_portal_s_oidc_settings_and_sector_identifier_uri(staff_client, sector):
    from chave.oidc.models import client_settings

    admin = staff_client("rp-admin", counter="")
    uris = ["https://a.saude.gov.pt/cb", "https://b.saude.gov.pt/cb"]
    document = sector.publish("/sector.json", uris)
    several_hosts = {**REQUEST, "redirect_uris": "\n".join(uris)}
    refused = admin.post("/counter/rp/request", several_hosts)
    assert refused.status_code == 400 and 'id="id_sector_identifier_error"' in refused.content.decode()
    response = admin.post("/counter/rp/request", {
        **several_hosts, "sector_identifier_uri": document, "frontchannel_logout_uri": "https://a.saude.gov.pt/fc",
        "offline_access": "on", "require_dpop": "on"})
    assert response.status_code == 200
    party = RelyingParty.objects.get()
    row = client_settings(party)
    assert (row.sector_identifier_uri, row.frontchannel_logout_uri) == (document, "https://a.saude.gov.pt/fc")
    assert (row.offline_access, row.require_dpop, row.profile, row.always_refresh) == (True, True, "oidc", False)
    assert party.sector == "127.0.0.1"  # the document's host
    page = admin.get(f"/counter/rp/{party.client_id}/").content.decode()
    assert document in page and "https://a.saude.gov.pt/fc" in page
    # Approval reads the document: it lists both redirect URIs.
    assert admin.post(f"/counter/rp/{party.client_id}/decide", {
        "decide-decision": "approve", "decide-reason": "Checked the sector document"}).status_code == 302


def test_settings_change_at_the_counter_with_a_reason_and_are_validated(staff_client, sector):
    from chave.oidc.models import client_settings

    admin = staff_client("rp-admin", counter="")
    admin.post("/counter/rp/request", REQUEST)
    party = RelyingParty.objects.get()
    url = f"/counter/rp/{party.client_id}/settings"
    base = {"settings-profile": "oidc", "settings-reason": "The portal asked for refresh tokens"}

    done = admin.post(url, {**base, "settings-offline_access": "on", "settings-always_refresh": "on"})
    assert done.status_code == 302
    row = client_settings(party)
    assert (row.offline_access, row.always_refresh) == (True, True)
    event = party.events.get(action="settings_changed")
    assert "offline_access=True" in event.reason and event.by == f"staff:{admin.login_as.username}"
    assert 'id="rp-refresh">With every sign-in<' in admin.get(f"/counter/rp/{party.client_id}/").content.decode()

    # FAPI 2.0 needs ES256 ID tokens; another host's sector document would change every subject.
    other_host = sector.publish("/s.json", ["https://saude.gov.pt/cb"])
    for change, field in (({"settings-profile": "fapi2"}, "FAPI 2.0"),
                          ({"settings-sector_identifier_uri": other_host}, "another host would change the subjects"),
                          ({"settings-frontchannel_logout_uri": "http://saude.gov.pt/fc"}, "https")):
        refused = admin.post(url, {**base, **change})
        assert refused.status_code == 400 and field in refused.content.decode(), change
    assert admin.post(url, {**base, "settings-reason": "x"}).status_code == 400  # a reason in a few words
    assert client_settings(party).profile == "oidc" and not client_settings(party).sector_identifier_uri
    assert party.events.filter(action="settings_changed").count() == 1


def test_only_the_rp_administrator_changes_settings(staff_client):
    admin = staff_client("rp-admin", counter="")
    admin.post("/counter/rp/request", REQUEST)
    party = RelyingParty.objects.get()
    auditor = staff_client("auditor", counter="")
    response = auditor.post(f"/counter/rp/{party.client_id}/settings", {
        "settings-profile": "oidc", "settings-offline_access": "on", "settings-reason": "I would like it"})
    assert response.status_code == 403
    assert 'id="settings"' not in auditor.get(f"/counter/rp/{party.client_id}/").content.decode()
