"""Back-channel logout to SAML service providers: an SP that registered a SOAP logout service is
sent a signed LogoutRequest by Chave's worker whenever the session ends (another SP's logout, an
OpenID Connect portal's, Chave's own sign-out, a lapsed session, a cancelled key), with retries
and audit; the others keep the front-channel frames. And the HTTP-POST binding of the final
LogoutResponse. The SOAP SP is pysaml2 on a real HTTP server on loopback."""

import datetime as dt
import html
import re

import pytest
from django.conf import settings
from django.utils import timezone
from django_tasks_db.models import DBTaskResult
from saml2 import BINDING_HTTP_POST, BINDING_HTTP_REDIRECT, BINDING_SOAP
from saml2.saml import NameID
from saml2.samlp import STATUS_SUCCESS, STATUS_UNKNOWN_PRINCIPAL
from saml2.sigver import SignatureError
from saml2.xmldsig import DIGEST_SHA256, SIG_RSA_SHA256

from chave.audit.models import AuditEvent
from chave.oidc.logout import end_lapsed_sso_sessions
from chave.oidc.models import BackchannelLogout
from chave.oidc.tests.portal import register_portal
from chave.oidc.tests.signin import sign_in, tokens
from chave.saml import idp

from .conftest import register
from .sp import SoapLogoutService, fa_extensions, form_action, form_fields, pysaml2_portal
from .test_logout import logout_query
from .test_sso import answer, follow, start

pytestmark = pytest.mark.django_db(transaction=True)
EXTENSIONS = fa_extensions({"NIC": True}, level=3)


@pytest.fixture
def soap_sp(tmp_path, idp_metadata):
    with SoapLogoutService(tmp_path, idp_metadata) as service:
        service.registration = register(service.portal.metadata_xml, name="Portal SOAP")
        yield service


def saml_sign_in(client, outbox, portal, *, first=False):
    """A SAML sign-in (with the login when ``first``); the pysaml2 SP's verdict on the answer."""
    request_id, response = start(client, portal, extensions=EXTENSIONS)
    response = follow(client, response)
    if first:
        assert response["Location"].endswith("/login/")
        response = follow(client, sign_in(client, outbox))
    if response.status_code == 302 and response["Location"] == "/saml/consent":
        response = follow(client, client.post("/saml/consent", {"decision": "allow"}))
    return answer(portal, response, request_id)[1]


def frames_of(page) -> list[str]:
    return [html.unescape(u) for u in re.findall(r'<iframe class="frontchannel" src="([^"]+)"',
                                                 page.content.decode())]


def assert_told(soap_sp, result, *, times=1):
    """The SOAP SP got ``times`` LogoutRequests, each signed by Chave (pysaml2 checked it against
    Chave's metadata), for its SOAP service, naming the NameID and SessionIndex of its sign-in."""
    assert len(soap_sp.received) == times, soap_sp.received
    for received in soap_sp.received:
        assert received.error == "" and received.message is not None
        assert received.content_type.startswith("text/xml")
        assert received.soap_action == "http://www.oasis-open.org/committees/security"
        message = received.message
        assert message.issuer.text == idp.entity_id()
        assert message.destination == soap_sp.url
        assert message.name_id.text == result.name_id.text
        assert message.name_id.sp_name_qualifier == soap_sp.portal.entity_id
        [session_index] = message.session_index
        assert session_index.text == result.assertion.authn_statement[0].session_index


def saml_attempts(outcome: str) -> int:
    return AuditEvent.objects.filter(event="saml.backchannel_logout", outcome=outcome).count()


def make_retries_due() -> int:
    return DBTaskResult.objects.filter(status="READY").update(run_after=timezone.now() - dt.timedelta(seconds=1))


def test_another_sps_logout_reaches_the_soap_sp_by_back_channel(client, make_citizen, outbox, portal, soap_sp,
                                                                 run_worker):
    make_citizen()
    at_portal = saml_sign_in(client, outbox, portal, first=True)
    at_soap = saml_sign_in(client, outbox, soap_sp.portal)
    assert at_soap.name_id.text != at_portal.name_id.text  # pairwise
    assert (at_soap.assertion.authn_statement[0].session_index
            != at_portal.assertion.authn_statement[0].session_index)  # and so is the SessionIndex

    _, query = logout_query(portal, at_portal.name_id)
    response = client.get("/saml/slo", query)

    # The SOAP SP is not loaded in a frame: the answer goes straight back to the initiating SP.
    assert response.status_code == 302 and response["Location"].startswith("https://portal.example.pt/saml/slo?")
    assert soap_sp.received == []  # the worker sends it, not the request
    run_worker()
    assert_told(soap_sp, at_soap)
    row = BackchannelLogout.objects.get(relying_party=soap_sp.registration.relying_party)
    assert (row.status, row.attempts, row.last_status) == ("delivered", 1, 200)
    assert not BackchannelLogout.objects.filter(relying_party=portal.registration.relying_party).exists()
    assert saml_attempts("delivered") == 1

    # The signature is what pysaml2 checks: a byte changed in the signed request fails it.
    tampered = soap_sp.received[0].envelope.replace(soap_sp.portal.entity_id, "http://127.0.0.1:1/other", 1)
    xml = soap_sp.portal.client.unravel(tampered, BINDING_SOAP, "logout_request")
    with pytest.raises(SignatureError):
        soap_sp.portal.client.sec.correctly_signed_logout_request(xml, must=True)


def test_an_oidc_portals_logout_and_chaves_sign_out_reach_the_soap_sp(client, make_citizen, outbox, soap_sp,
                                                                      run_worker):
    make_citizen()
    oidc_portal = register_portal(mandatory=(), min_level=3,
                                  post_logout_redirect_uris=["https://portal.example.gov.pt/adeus"])
    at_oidc = tokens(client, outbox, oidc_portal)
    at_soap = saml_sign_in(client, outbox, soap_sp.portal)  # single sign-on from OIDC to SAML

    response = client.get("/oidc/logout?" + "&".join([f"id_token_hint={at_oidc['id_token']}",
                                                      "post_logout_redirect_uri=https://portal.example.gov.pt/adeus"]))
    assert response.status_code == 302 and response["Location"] == "https://portal.example.gov.pt/adeus"
    run_worker()
    assert_told(soap_sp, at_soap)

    # Chave's own sign-out, in a new session: no frame for the SOAP SP, a LogoutRequest by SOAP.
    at_soap = saml_sign_in(client, outbox, soap_sp.portal, first=True)
    page = client.post("/login/logout/", follow=True)
    assert page.status_code == 200 and frames_of(page) == []
    run_worker()
    assert len(soap_sp.received) == 2
    soap_sp.received.pop(0)
    assert_told(soap_sp, at_soap)


def test_a_lapsed_session_reaches_the_soap_sp(client, make_citizen, outbox, soap_sp, run_worker, clock):
    make_citizen()
    at_soap = saml_sign_in(client, outbox, soap_sp.portal, first=True)
    clock.travel(dt.timedelta(seconds=settings.SESSION_COOKIE_AGE + 60))
    assert end_lapsed_sso_sessions() == 1
    run_worker()
    assert_told(soap_sp, at_soap)
    assert AuditEvent.objects.get(event="oidc.logout").detail["by"] == "timeout"


def test_a_key_cancelled_reaches_the_soap_sp(client, make_citizen, outbox, soap_sp,
                                                                        run_worker):
    from chave.portal.services import cancel_key

    key = make_citizen()
    at_soap = saml_sign_in(client, outbox, soap_sp.portal, first=True)
    cancel_key(key, ip="203.0.113.9")
    run_worker()
    assert_told(soap_sp, at_soap)
    assert AuditEvent.objects.get(event="oidc.logout").detail["by"] == "key_cancelled"


def test_a_soap_sp_down_for_a_moment_is_told_again_and_a_refusal_is_final(client, make_citizen, outbox, soap_sp,
                                                                          run_worker, settings):
    settings.CHAVE_POLICY = {**settings.CHAVE_POLICY, "oidc_backchannel_backoff_seconds": [600, 1800]}
    make_citizen()
    at_soap = saml_sign_in(client, outbox, soap_sp.portal, first=True)
    soap_sp.http_statuses = [503]
    client.post("/login/logout/")
    run_worker()
    row = BackchannelLogout.objects.get()
    assert (row.status, row.attempts, row.last_status) == ("queued", 1, 503)
    assert make_retries_due() == 1
    run_worker()
    row.refresh_from_db()
    assert (row.status, row.attempts, row.last_status) == ("delivered", 2, 200)
    assert_told(soap_sp, at_soap, times=2)
    assert (saml_attempts("retry"), saml_attempts("delivered")) == (1, 1)

    # An SP that answers with an error status: final, the status kept for the counter.
    soap_sp.saml_status = STATUS_UNKNOWN_PRINCIPAL
    saml_sign_in(client, outbox, soap_sp.portal, first=True)
    client.post("/login/logout/")
    run_worker()
    make_retries_due()
    run_worker()
    failed = BackchannelLogout.objects.get(status="failed")
    assert failed.attempts == 1 and "UnknownPrincipal" in failed.last_error
    assert len(soap_sp.received) == 3 and saml_attempts("failed") == 1


def test_the_logout_response_by_http_post_comes_after_the_other_sps_frames(client, make_citizen, outbox, tmp_path,
                                                                           idp_metadata, soap_sp, run_worker):
    """An SP whose logout service is HTTP-POST only: Chave's signed-out page loads the other
    front-channel SP in a frame (the SOAP SP is told by the worker) and its one button posts the
    signed LogoutResponse to the SP, which pysaml2 validates."""
    make_citizen()
    post_sp = pysaml2_portal(tmp_path, idp_metadata, host="post.example.pt", name="post",
                             slo_bindings=(BINDING_HTTP_POST,))
    register(post_sp.metadata_xml, name="Portal POST")
    redirect_sp = pysaml2_portal(tmp_path, idp_metadata, host="redirect.example.pt", name="redirect")
    register(redirect_sp.metadata_xml, name="Portal Redirect")
    at_post = saml_sign_in(client, outbox, post_sp, first=True)
    saml_sign_in(client, outbox, redirect_sp)
    at_soap = saml_sign_in(client, outbox, soap_sp.portal)

    logout_id, signed = post_sp.client.create_logout_request(idp.slo_url(), idp.entity_id(), name_id=at_post.name_id,
                                                             sign=True, sign_alg=SIG_RSA_SHA256,
                                                             digest_alg=DIGEST_SHA256)
    info = post_sp.client.apply_binding(BINDING_HTTP_POST, str(signed), idp.slo_url(), relay_state="fim")
    form = {"SAMLRequest": _form_value(info, "SAMLRequest"), "RelayState": "fim"}
    response = client.post("/saml/slo", form)

    # The cross-site POST carries no session cookie: the logout goes on as a top-level GET, once.
    assert response.status_code == 303 and response["Location"].startswith("/saml/slo/continue/")
    page = client.get(response["Location"])
    assert page.status_code == 200
    text = page.content.decode()
    [frame] = frames_of(page)
    assert frame.startswith("https://redirect.example.pt/saml/slo?SAMLRequest=")
    assert "Terminou a sessão" in text and "Já está autenticado" not in text
    assert form_action(text) == "https://post.example.pt/saml/slo"
    fields = form_fields(text)
    assert fields["RelayState"] == "fim"
    verdict = post_sp.client.parse_logout_request_response(fields["SAMLResponse"], BINDING_HTTP_POST)
    assert verdict.response.in_response_to == logout_id
    assert verdict.response.status.status_code.value == STATUS_SUCCESS
    assert verdict.response.signature is not None  # enveloped: the POST binding carries it in the XML
    policy = page["Content-Security-Policy"]
    assert "frame-src 'self' https://redirect.example.pt" in policy  # the SP answers in its frame, to Chave
    assert "form-action https://post.example.pt/saml/slo" in policy
    assert 'action="/i18n/setlang/"' not in text  # nothing else to post to
    run_worker()
    assert_told(soap_sp, at_soap)
    _, response = start(client, post_sp, extensions=EXTENSIONS)
    assert follow(client, response)["Location"].endswith("/login/")  # Chave's session is over
    # The reference is used once; the request's ID too (a replay gets a page, nothing signed).
    assert client.get(page.request["PATH_INFO"]).status_code == 400
    replayed = client.post("/saml/slo", form)
    assert replayed.status_code == 400 and "SAMLResponse" not in replayed.content.decode()


def test_a_reference_of_one_kind_does_not_continue_the_other(client, portal, db):
    from chave.saml import services

    [sp] = [portal.registration]
    sso = services.remember(sp, services.ParsedRequest(request_id="id-a", acs=portal.acs, relay_state=None,
                                                       levels=[3]))
    _, message = logout_query(portal, NameID(text="someone"))  # any signed LogoutRequest of the SP
    parsed = services.receive_logout(binding=BINDING_HTTP_REDIRECT, raw=message["SAMLRequest"],
                                     relay_state=message["RelayState"], sig_alg=message["SigAlg"],
                                     signature=message["Signature"])
    logout = services.remember_logout(*parsed, "fim")
    assert client.get(f"/saml/slo/continue/{sso}").status_code == 400
    assert client.get(f"/saml/continue/{logout}").status_code == 400
    assert client.get(f"/saml/continue/{sso}").status_code == 302  # each still works for its own kind
    assert client.get(f"/saml/slo/continue/{logout}").status_code in (200, 302)


@pytest.mark.parametrize("lang", ["pt-pt", "en"])
def test_the_logout_response_by_http_post_without_other_sps(client, make_citizen, outbox, tmp_path, idp_metadata,
                                                            lang):
    from chave.testing.accessibility import assert_accessible

    make_citizen()
    post_sp = pysaml2_portal(tmp_path, idp_metadata, host="post.example.pt", name="post",
                             slo_bindings=(BINDING_HTTP_POST,))
    register(post_sp.metadata_xml, name="Portal POST")
    at_post = saml_sign_in(client, outbox, post_sp, first=True)
    logout_id, query = logout_query(post_sp, at_post.name_id)  # the request by Redirect, the answer by POST
    client.cookies[settings.LANGUAGE_COOKIE_NAME] = lang
    page = client.get("/saml/slo", query)
    assert_accessible(page, lang, "signed out, the LogoutResponse to post")
    assert frames_of(page) == []
    text = page.content.decode()
    assert form_action(text) == "https://post.example.pt/saml/slo"
    verdict = post_sp.client.parse_logout_request_response(form_fields(text)["SAMLResponse"], BINDING_HTTP_POST)
    assert verdict.response.in_response_to == logout_id
    assert "form-action https://post.example.pt/saml/slo" in page["Content-Security-Policy"]


def _form_value(info, name: str) -> str:
    return html.unescape(re.search(rf'name="{name}" value="([^"]*)"', info["data"]).group(1))


def test_metadata_with_a_soap_logout_service_is_read(tmp_path, idp_metadata, db):
    from chave.saml.services import read_metadata

    sp = pysaml2_portal(tmp_path, idp_metadata, host="127.0.0.1:8123", scheme="http",
                        slo_bindings=(BINDING_HTTP_REDIRECT, BINDING_SOAP))
    assert read_metadata(sp.metadata_xml).slo == [
        {"url": "http://127.0.0.1:8123/saml/slo", "binding": BINDING_HTTP_REDIRECT},
        {"url": "http://127.0.0.1:8123/saml/soap-slo", "binding": BINDING_SOAP}]


def test_a_soap_sp_answering_200_without_a_logout_response_is_not_counted_as_told(client, make_citizen, outbox,
                                                                                    soap_sp, run_worker):
    make_citizen()
    saml_sign_in(client, outbox, soap_sp.portal, first=True)
    soap_sp.http_statuses = [200]  # an empty 200: a proxy's page, say, not the SP's answer
    client.post("/login/logout/")
    run_worker()
    row = BackchannelLogout.objects.get()
    assert (row.status, row.attempts, row.last_status) == ("failed", 1, 200)
    assert row.last_error == "the service provider did not answer with a LogoutResponse"
    assert len(soap_sp.received) == 1 and soap_sp.received[0].error == ""  # it was sent, and valid
