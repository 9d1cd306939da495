"""Every SignStatus code an SCMD integrator meets, through a zeep client built from the served
WSDL: 200, 800 (naming the field), 801, 802, 816, 817, 818, 900, 901 and 902 with the
specification's texts, ForceSMS's cooldown and caps, a process that lives as long as its code,
replays and a code for another process."""

from __future__ import annotations

import datetime as dt

import pytest
import zeep

from chave.delivery.messages import notice_message
from chave.signing.models import SigningRequest

from .conftest import PHONE, digest_info

pytestmark = pytest.mark.django_db(transaction=True)
PIN = "5820"
OTHER = "+351912000702"


@pytest.fixture
def ready(signer, integrator_client, outbox, clock):
    key, credential = signer(phone=PHONE)
    outbox.last(PHONE)  # the activation notice first (the clock is frozen: order by sending)
    clock.travel(dt.timedelta(seconds=1))
    return integrator_client, key, credential


def _sign(c, *, pin=PIN, user=PHONE, doc="contrato.pdf", data=b"contrato", app=None):
    return c.service.SCMDSign(request={"ApplicationId": app or c.app, "DocName": doc, "Hash": digest_info(data),
                                       "Pin": c.encrypt(pin), "UserId": c.encrypt(user)})


def _validate(c, process, code, app=None):
    return c.service.ValidateOtp(code=c.encrypt(code), processId=process, applicationId=app or c.app)


def test_wrong_pins_801_then_901_with_the_specification_s_text_then_902(ready, outbox, clock):
    c, key, credential = ready
    first = _sign(c, pin="9371")
    assert first.Code == "801" and "2" in first.Message and first.ProcessId is None
    assert _sign(c, pin="9371").Code == "801"
    blocked = _sign(c, pin="9371")
    assert blocked.Code == "901"
    site = c.url.split("://", 1)[1].split("/scmd/", 1)[0]  # Chave's address (CHAVE_PUBLIC_URL)
    assert blocked.Message == ("Para continuar a usar a assinatura da Chave, tem de alterar o seu PIN de assinatura. "
                               f"Para o alterar, basta iniciar sessão com a Chave em {site}.")
    # The citizen learns of it, whoever sent the PINs.
    assert outbox.last(PHONE).body == notice_message("signing_pin_blocked", language=key.citizen.language).body
    still = _sign(c)  # even the right PIN now
    assert still.Code == "902" and "Área pessoal -> Assinatura digital: assinar documentos PDF" in still.Message
    assert "Alterar o PIN de assinatura" in still.Message
    # In English when the integrator asks for it.
    c.session.headers["Accept-Language"] = "en"
    assert _sign(c).Message.startswith("To keep using Chave's signature, you must change your signing PIN at ")
    assert not SigningRequest.objects.filter(status=SigningRequest.Status.CODE_SENT).exists()


def test_codes_802_816_and_a_process_living_as_long_as_its_code(ready, outbox, clock):
    c, _key, _credential = ready
    started = _sign(c)
    code = outbox.last_code(PHONE)
    wrong = "000000" if code != "000000" else "111111"
    answer = _validate(c, started.ProcessId, wrong)
    assert answer.Status.Code == "802" and answer.Signature is None and "2" in answer.Status.Message
    # Unknown process; the code of another process.
    assert _validate(c, "0" * 32, code).Status.Code == "816"
    clock.travel(dt.timedelta(seconds=31))
    other = _sign(c, doc="outro.pdf", data=b"outro")
    other_code = outbox.last_code(PHONE)
    if other_code != code:
        assert _validate(c, started.ProcessId, other_code).Status.Code == "802"
    # The right code: signed once; the same again is a replay (816), nothing signed twice.
    done = _validate(c, other.ProcessId, other_code)
    assert done.Status.Code == "200" and done.Signature
    replay = _validate(c, other.ProcessId, other_code)
    assert replay.Status.Code == "816" and replay.Signature is None
    # The signing code lives 2 minutes: so does its process.
    clock.travel(dt.timedelta(seconds=31))
    late = _sign(c, doc="tarde.pdf", data=b"tarde")
    late_code = outbox.last_code(PHONE)
    clock.travel(dt.timedelta(seconds=121))
    assert _validate(c, late.ProcessId, late_code).Status.Code == "816"


def test_force_sms_obeys_the_cooldown_and_the_cap_and_the_last_code_counts(ready, outbox, clock):
    c, _key, _credential = ready
    started = _sign(c)
    first = outbox.last_code(PHONE)
    early = c.service.ForceSMS(processId=started.ProcessId, citizenId=c.encrypt(PHONE), applicationId=c.app)
    assert early.Code == "900" and "30" in early.Message
    # Another number than the process's: refused, naming the field.
    clock.travel(dt.timedelta(seconds=30))
    other = c.service.ForceSMS(processId=started.ProcessId, citizenId=c.encrypt(OTHER), applicationId=c.app)
    assert other.Code == "800" and other.Field == "citizenId"
    resent = c.service.ForceSMS(processId=started.ProcessId, citizenId=c.encrypt("912 000 701"), applicationId=c.app)
    assert resent.Code == "200" and resent.ProcessId == started.ProcessId
    second = outbox.last_code(PHONE)
    clock.travel(dt.timedelta(seconds=30))
    assert c.service.ForceSMS(processId=started.ProcessId, citizenId=c.encrypt(PHONE),
                              applicationId=c.app).Code == "200"
    clock.travel(dt.timedelta(seconds=30))
    capped = c.service.ForceSMS(processId=started.ProcessId, citizenId=c.encrypt(PHONE), applicationId=c.app)
    assert capped.Code == "900" and capped.Message != early.Message
    third = outbox.last_code(PHONE)
    for stale in {first, second} - {third}:
        assert _validate(c, started.ProcessId, stale).Status.Code == "802"
    assert _validate(c, started.ProcessId, third).Status.Code == "200"
    # A finished process gets no more codes.
    assert c.service.ForceSMS(processId=started.ProcessId, citizenId=c.encrypt(PHONE),
                              applicationId=c.app).Code == "816"


def test_817_no_signing_and_818_an_ecdsa_key(signer, integrator_client, make_citizen, outbox):
    c = integrator_client
    make_citizen(phone=OTHER)
    assert c.service.GetCertificate(applicationId=c.app, userId=c.encrypt(OTHER)) is None
    inactive = _sign(c, user=OTHER)
    assert inactive.Code == "817" and not SigningRequest.objects.exists()  # no process, no code sent
    assert c.service.GetCertificateWithPin(applicationId=c.app, userId=c.encrypt(OTHER), pin=c.encrypt(PIN)).Code == "817"
    # A citizen whose key is P-256 (made before RSA was the default): a clear code, no PIN spent.
    _key, credential = signer(phone="+351912000703", key_algorithm="ec-p256")
    with pytest.raises(zeep.exceptions.Fault) as fault:
        c.service.GetCertificate(applicationId=c.app, userId=c.encrypt("+351912000703"))
    assert "CSC" in fault.value.message and fault.value.detail is not None
    assert fault.value.detail.findtext(".//{*}Code") == "818"
    refused = _sign(c, user="+351912000703")
    assert refused.Code == "818" and "/csc/v2/" in refused.Message
    credential.refresh_from_db()
    assert credential.pin_failures == 0 and not SigningRequest.objects.filter(credential=credential).exists()


def test_900_too_many_documents_and_800_for_bad_hashes_and_fields(ready, outbox):
    c, _key, _credential = ready
    request = {"ApplicationId": c.app, "Pin": c.encrypt(PIN), "UserId": c.encrypt(PHONE)}

    def multiple(items):
        return c.service.SCMDMultipleSign(request=request, documents={"HashStructure": items})

    one = {"Hash": digest_info(b"a"), "Name": "a.pdf", "id": "1"}
    too_many = multiple([one] * 101)
    assert too_many.Code == "900" and "100" in too_many.Message
    assert multiple([]).Code == "800"
    for bad in (b"", digest_info(b"a")[:-1], digest_info(b"a") + b"\x00", b"\x00" * 51,
                digest_info(b"a", "sha256").replace(b"\x01\x05\x00", b"\x07\x05\x00"),  # an unknown algorithm
                bytes.fromhex("3021300906052b0e03021a05000414") + b"\x00" * 20):  # SHA-1
        refused = multiple([one, {**one, "Hash": bad}])
        assert (refused.Code, refused.Field) == ("800", "HashStructure[1].Hash"), bad
        single = c.service.SCMDSign(request={**request, "Hash": bad, "DocName": "x.pdf"})
        assert (single.Code, single.Field) == ("800", "Hash")
    # Fields that do not decrypt under Chave's certificate, each named.
    assert (_status := c.service.SCMDSign(request={**request, "Hash": digest_info(b"a"), "UserId": "bm90IGNpcGhlcg=="})
            ).Code == "800" and _status.Field == "UserId"
    assert c.service.SCMDSign(request={**request, "Hash": digest_info(b"a"), "Pin": PIN}).Field == "Pin"
    not_base64 = c.service.GetCertificateWithPin(applicationId=c.app, userId="%%%", pin=c.encrypt(PIN))
    assert (not_base64.Code, not_base64.Field) == ("800", "userId")
    with pytest.raises(zeep.exceptions.Fault) as fault:
        c.service.GetCertificate(applicationId=c.app, userId=c.encrypt(PHONE)[:-8] + "AAAAAAA=")
    assert fault.value.detail.findtext(".//{*}Field") == "userId"
    started = _sign(c)
    assert c.service.ValidateOtp(code="x", processId=started.ProcessId, applicationId=c.app).Status.Field == "code"
    assert c.service.ForceSMS(processId=started.ProcessId, citizenId="", applicationId=c.app).Field == "citizenId"
    # Nothing was signed by any of these.
    assert not SigningRequest.objects.filter(status=SigningRequest.Status.SIGNED).exists()


def test_an_application_id_or_process_of_another_integrator_is_refused(ready, outbox, integrator, live_server):
    from chave.scmd import services

    c, _key, _credential = ready
    assert _sign(c, app=b"another-application").Code == "800"
    assert _sign(c, app=b"another-application").Field == "ApplicationId"
    started = _sign(c)
    code = outbox.last_code(PHONE)
    # A second integrator, with its own credentials, cannot finish or resend the first one's process.
    other = services.add_integrator("Outro Portal", by="test")
    import requests
    from zeep.transports import Transport

    session = requests.Session()
    session.auth = (other.integrator.username, other.password)
    second = zeep.Client(c.url + "?wsdl", transport=Transport(session=session)).service
    app = other.integrator.application_id.encode()
    assert second.ValidateOtp(code=c.encrypt(code), processId=started.ProcessId, applicationId=app).Status.Code == "816"
    assert second.ValidateOtp(code=c.encrypt(code), processId=started.ProcessId,
                              applicationId=c.app).Status.Field == "applicationId"
    assert _validate(c, started.ProcessId, code).Status.Code == "200"


def test_an_integrator_s_one_address_is_not_limited_like_a_citizen_s(signer, integrator_client, settings):
    """Every citizen of an integrator reaches Chave from its server's address: the per-address
    limits of a citizen's browser would stop the second one, so the integrator's own apply."""
    c = integrator_client
    throttles = settings.CHAVE_POLICY["throttles"]
    settings.CHAVE_POLICY = {**settings.CHAVE_POLICY, "throttles": {
        **throttles, "pin_attempt_per_ip": (1, 900), "code_send_per_ip": (1, 3600)}}
    for n, phone in enumerate(("+351912000711", "+351912000712", "+351912000713")):
        signer(phone=phone)
        assert _sign(c, user=phone).Code == "200", n
    settings.CHAVE_POLICY = {**settings.CHAVE_POLICY, "throttles": {
        **throttles, "signing_pin_per_client": (2, 900)}}  # the right PINs above took nothing from it
    signer(phone="+351912000714")
    signer(phone="+351912000715")
    assert _sign(c, user="+351912000714").Code == "200"
    assert [_sign(c, user="+351912000715", pin="9371").Code for _ in range(2)] == ["801", "801"]  # wrong ones count
    assert _sign(c, user="+351912000715").Code == "900"  # its own limit
