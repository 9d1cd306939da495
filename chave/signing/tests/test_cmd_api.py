"""The CMD-style flow over real HTTP: certificate by mobile number, hashes + signing PIN →
process and code, resend, validate → signatures and certificate; its result codes."""

from __future__ import annotations

import base64
import datetime as dt
import hashlib

import pytest
import requests
from cryptography import x509

from .helpers import PIN, make_integrator, service_token, verify_signature

pytestmark = pytest.mark.django_db(transaction=True)
PHONE = "+351912000201"


@pytest.fixture
def call(signing_pki, live_server):
    party, secret = make_integrator("Portal do Cidadão")
    token = service_token(live_server.url, party.client_id, secret).json()["access_token"]

    def post(name, body):
        response = requests.post(f"{live_server.url}/api/signing/cmd/{name}", json=body,
                                 headers={"Authorization": f"Bearer {token}"}, timeout=30)
        assert response.status_code == 200, response.text
        return response.json()

    return post


def _hash(text: str) -> str:
    return base64.b64encode(hashlib.sha256(text.encode()).digest()).decode()


def test_certificate_sign_resend_validate(signer, call, outbox, clock):
    signer(phone=PHONE)
    outbox.last(PHONE)  # the activation notice goes first (the clock is frozen: order by sending)
    clock.travel(dt.timedelta(seconds=1))
    cert = call("certificate", {"userId": "912000201"})
    assert cert["code"] == 200 and len(cert["certificates"]) == 3
    documents = [{"name": "contrato.pdf", "hash": _hash("a")}, {"name": "anexo.pdf", "hash": _hash("b")}]
    started = call("sign", {"userId": PHONE, "pin": PIN, "documents": documents})
    assert started["code"] == 200
    first = outbox.last_code(PHONE)
    assert "«contrato.pdf», «anexo.pdf»" in outbox.last(PHONE).body and "Portal do Cidadão" in outbox.last(PHONE).body
    clock.travel(dt.timedelta(seconds=31))
    assert call("resend", {"processId": started["processId"]})["code"] == 200
    second = outbox.last_code(PHONE)
    if first != second:
        assert call("validate", {"processId": started["processId"], "code": first})["code"] == 802
    done = call("validate", {"processId": started["processId"], "code": second})
    assert done["code"] == 200
    public = x509.load_pem_x509_certificate(done["certificate"].encode()).public_key()
    for document, signed in zip(documents, done["signatures"], strict=True):
        assert signed["name"] == document["name"]
        verify_signature(public, base64.b64decode(signed["signature"]), base64.b64decode(document["hash"]))
    # The process is spent.
    assert call("validate", {"processId": started["processId"], "code": second})["code"] == 816


def test_result_codes(signer, call, outbox, clock, make_citizen):
    signer(phone=PHONE)
    outbox.last(PHONE)  # the activation notice goes first (the clock is frozen: order by sending)
    clock.travel(dt.timedelta(seconds=1))
    make_citizen(phone="+351912000202")
    one = [{"name": "a.pdf", "hash": _hash("a")}]
    assert call("certificate", {"userId": "+351912000202"})["code"] == 817
    assert call("sign", {"userId": "+351912000202", "pin": PIN, "documents": one})["code"] == 817
    assert call("sign", {"userId": PHONE, "pin": PIN, "documents": one * 101})["code"] == 900
    assert call("validate", {"processId": "f" * 32, "code": "123456"})["code"] == 816
    started = call("sign", {"userId": PHONE, "pin": PIN, "documents": one})
    code = outbox.last_code(PHONE)
    clock.travel(dt.timedelta(seconds=121))  # codes for signing live 2 minutes
    assert call("validate", {"processId": started["processId"], "code": code})["code"] == 816
    wrong = call("sign", {"userId": PHONE, "pin": "9371", "documents": one})
    assert wrong["code"] == 801 and wrong["attemptsLeft"] == 2
    assert call("sign", {"userId": PHONE, "pin": "9371", "documents": one})["attemptsLeft"] == 1
    clock.travel(dt.timedelta(seconds=1))
    assert call("sign", {"userId": PHONE, "pin": "9371", "documents": one})["code"] == 901
    # The wrong PINs came through an integrator: the citizen is told that signing is blocked.
    from chave.delivery.messages import notice_message
    from chave.identity.models import Citizen

    citizen = Citizen.objects.get(keys__contacts__value=PHONE)
    assert outbox.last(PHONE).body == notice_message("signing_pin_blocked", language=citizen.language).body
    assert call("sign", {"userId": PHONE, "pin": PIN, "documents": one})["code"] == 902


def test_an_integrator_s_one_address_is_not_limited_like_a_citizen_s(signer, call, settings):
    """Every citizen of an integrator reaches Chave from its server's address: the per-address
    limits of a citizen's browser would stop the second one, so the integrator's own apply."""
    throttles = settings.CHAVE_POLICY["throttles"]
    settings.CHAVE_POLICY = {**settings.CHAVE_POLICY, "throttles": {
        **throttles, "pin_attempt_per_ip": (1, 900), "code_send_per_ip": (1, 3600)}}
    one = [{"name": "a.pdf", "hash": _hash("a")}]
    for n, phone in enumerate(("+351912000211", "+351912000212", "+351912000213")):
        signer(phone=phone)
        assert call("sign", {"userId": phone, "pin": PIN, "documents": one})["code"] == 200, n
    settings.CHAVE_POLICY = {**settings.CHAVE_POLICY, "throttles": {
        **throttles, "signing_pin_per_client": (4, 900)}}  # three checks made above, one left
    signer(phone="+351912000214")
    signer(phone="+351912000215")
    assert call("sign", {"userId": "+351912000214", "pin": PIN, "documents": one})["code"] == 200
    assert call("sign", {"userId": "+351912000215", "pin": PIN, "documents": one})["code"] != 200  # its own limit
