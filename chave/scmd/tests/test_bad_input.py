"""What a broken or hostile SCMD client meets before any operation runs: wrong credentials (401,
then 429 for the address), the integrator's own call limit, malformed XML, DTDs and entities,
oversized envelopes, SOAP 1.2, a SOAPAction naming another operation, unknown operations and
values of the wrong type: a SOAP Fault with a clear text and a 4xx, never a 500, nothing signed."""

from __future__ import annotations

import base64

import pytest
from lxml import etree

from chave.audit.models import AuditEvent
from chave.scmd import soap
from chave.signing.models import SigningRequest

pytestmark = pytest.mark.django_db
URL = "/scmd/SCMDService.svc"


@pytest.fixture
def post(client, integrator):
    basic = base64.b64encode(f"{integrator.integrator.username}:{integrator.password}".encode()).decode()

    def send(body: bytes | str, *, action="GetCertificate", auth=f"Basic {basic}", **extra):
        headers = {"HTTP_AUTHORIZATION": auth} if auth else {}
        if action is not None:
            headers["HTTP_SOAPACTION"] = f'"{soap.ACTION_PREFIX}{action}"'
        return client.generic("POST", URL, body.encode() if isinstance(body, str) else body,
                              content_type="text/xml; charset=utf-8", **headers, **extra)

    return send


def envelope(inner: str, ns: str = soap.SOAP_ENV) -> str:
    return f'<s:Envelope xmlns:s="{ns}"><s:Body>{inner}</s:Body></s:Envelope>'


GET_CERTIFICATE = f'<GetCertificate xmlns="{soap.TNS}"><applicationId>YQ==</applicationId><userId>x</userId></GetCertificate>'


def fault(response) -> tuple[str, str]:
    root = etree.fromstring(response.content)
    node = root.find(f".//{{{soap.SOAP_ENV}}}Fault")
    assert node is not None, response.content
    return node.findtext("faultcode"), node.findtext("faultstring")


def test_credentials_are_required_and_guessing_them_is_throttled_per_address(post, settings, integrator):
    settings.CHAVE_POLICY = {**settings.CHAVE_POLICY, "throttles": {
        **settings.CHAVE_POLICY["throttles"], "signing_api_bad_token_per_ip": (3, 600)}}
    body = envelope(GET_CERTIFICATE)
    for auth in (None, f"Basic {base64.b64encode(f'{integrator.integrator.username}:wrong'.encode()).decode()}",
                 "Basic %%%"):
        answer = post(body, auth=auth)
        assert answer.status_code == 401 and answer["WWW-Authenticate"].startswith("Basic realm=")
        assert fault(answer)[0] == "s:Client"
    refused = post(body)  # even the right credentials, from this address, for a while
    assert refused.status_code == 429 and refused["Retry-After"] == "600"
    assert AuditEvent.objects.filter(event="signing.api", outcome="429",
                                     detail__throttle="signing_api_bad_token_per_ip").exists()


def test_a_disabled_integrator_and_a_rotated_password_are_refused(post, integrator, client):
    from chave.scmd import services

    services.set_active(integrator.integrator, False, by="test")
    assert post(envelope(GET_CERTIFICATE)).status_code == 401
    services.set_active(integrator.integrator, True, by="test")
    rotated = services.rotate_secret(integrator.integrator, by="test")
    assert post(envelope(GET_CERTIFICATE)).status_code == 401  # the old password
    basic = base64.b64encode(f"{rotated.integrator.username}:{rotated.password}".encode()).decode()
    assert post(envelope(GET_CERTIFICATE), auth=f"Basic {basic}").status_code not in (401, 429)
    assert rotated.password not in str(list(AuditEvent.objects.values_list("detail", flat=True)))


def test_an_integrator_over_its_call_limit_gets_429(post, settings):
    settings.CHAVE_POLICY = {**settings.CHAVE_POLICY, "throttles": {
        **settings.CHAVE_POLICY["throttles"], "signing_api_per_client": (2, 60)}}
    for _ in range(2):  # let in (refused later for the ApplicationId "a", which is not its own)
        assert "ApplicationId" in fault(post(envelope(GET_CERTIFICATE)))[1]
    refused = post(envelope(GET_CERTIFICATE))
    assert refused.status_code == 429 and refused["Retry-After"] == "60" and "Too many calls" in fault(refused)[1]


BILLION_LAUGHS = ('<?xml version="1.0"?><!DOCTYPE lolz [<!ENTITY lol "lol">'
                  + "".join(f'<!ENTITY lol{i} "{("&lol" + (str(i - 1) if i > 1 else "") + ";") * 10}">'
                            for i in range(1, 10))
                  + ']>' + envelope(GET_CERTIFICATE.replace("<userId>x</userId>", "<userId>&lol9;</userId>")))
EXTERNAL = ('<?xml version="1.0"?><!DOCTYPE s [<!ENTITY xxe SYSTEM "file:///etc/passwd">]>'
            + envelope(GET_CERTIFICATE.replace("<userId>x</userId>", "<userId>&xxe;</userId>")))


@pytest.mark.parametrize("body, expected", [
    ("", "not well-formed"),
    ("<s:Envelope", "not well-formed"),
    (b"\xff\xfe<junk", "not well-formed"),
    (BILLION_LAUGHS, "Document type declarations"),
    (EXTERNAL, "Document type declarations"),
    ('<?xml version="1.0"?><!DOCTYPE x SYSTEM "http://127.0.0.1:1/x.dtd"><x/>', "Document type declarations"),
    ("<notsoap/>", "not a SOAP 1.1 envelope"),
    (envelope(GET_CERTIFICATE, soap.SOAP12_ENV), "SOAP 1.2"),
    (envelope(""), "exactly one operation"),
    (envelope(GET_CERTIFICATE * 2), "exactly one operation"),
    (envelope('<Nope xmlns="http://Ama.Authentication.Service/"/>'), "Unknown operation"),
    (envelope(GET_CERTIFICATE.replace(soap.TNS, "urn:other")), "Unknown operation"),
    (envelope(GET_CERTIFICATE.replace("YQ==", "not base64!")), "does not match the WSDL"),
    (envelope(GET_CERTIFICATE.replace("<userId>x</userId>", "<userId><b>x</b></userId>")), "does not match the WSDL"),
    (envelope(f'<SCMDSign xmlns="{soap.TNS}"><request><Hash>x</Hash></request></SCMDSign>'), "does not match the WSDL"),
    (envelope(f'<ValidateOtp xmlns="{soap.TNS}"><unexpected/></ValidateOtp>'), "does not match the WSDL"),
    (f'<s:Envelope xmlns:s="{soap.SOAP_ENV}"><s:Header><h:Security xmlns:h="urn:x" s:mustUnderstand="1"/>'
     f'</s:Header><s:Body>{GET_CERTIFICATE}</s:Body></s:Envelope>', "not understood"),
])
def test_a_message_that_is_not_a_valid_request_gets_a_fault(post, body, expected):
    answer = post(body, action=None)
    assert answer.status_code == 400, answer.content
    code, text = fault(answer)
    assert expected in text and code.startswith("s:")
    assert b"root:" not in answer.content  # no file was ever read into the answer
    assert not SigningRequest.objects.exists()


def test_a_soap_action_naming_another_operation_is_refused(post):
    answer = post(envelope(GET_CERTIFICATE), action="SCMDSign")
    assert answer.status_code == 400 and "does not name the operation" in fault(answer)[1]
    # Without a SOAPAction the body decides: the operation runs (and refuses another's ApplicationId).
    assert "ApplicationId" in fault(post(envelope(GET_CERTIFICATE), action=None))[1]


def test_an_oversized_envelope_is_refused_before_it_is_read(post, settings):
    settings.CHAVE_POLICY = {**settings.CHAVE_POLICY, "scmd_max_envelope_bytes": 2048}
    answer = post(envelope(GET_CERTIFICATE), CONTENT_LENGTH=str(10 * 1024 * 1024))
    assert answer.status_code == 413 and "too large" in fault(answer)[1]
    answer = post(envelope(GET_CERTIFICATE.replace("<userId>x", "<userId>" + "x" * 4096)))
    assert answer.status_code == 413


def test_the_wsdl_and_the_encryption_certificate_are_public_and_other_methods_refused(client, signing_pki):
    from cryptography import x509

    assert client.get(URL + "?wsdl")["Content-Type"].startswith("text/xml")
    assert client.get(URL + "?singleWsdl").status_code == 200
    assert b"?wsdl" in client.get(URL).content
    assert client.put(URL, b"x").status_code == 405
    cert = x509.load_pem_x509_certificate(client.get("/scmd/encryption.crt").content)
    assert cert.public_key().key_size == 3072 and cert.extensions.get_extension_for_class(x509.KeyUsage).value.key_encipherment
