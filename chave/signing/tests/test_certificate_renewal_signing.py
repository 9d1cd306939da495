"""Signing across a certificate renewal, end to end over HTTP: PDFs signed in the personal area
before and after the identity document's renewal both pass pyHanko's validator with revocation
checking required (it asks Chave's OCSP responder about each signer's certificate); a document
prepared before the renewal and signed after keeps the certificate its signature names; the
citizen is told; the signing page says the certificate's validity in words in both languages; the
CSC API gives the new certificate."""

from __future__ import annotations

import asyncio
import datetime as dt
import io
import re

import pytest
import requests
from django.core.files.uploadedfile import SimpleUploadedFile
from django.utils import timezone, translation
from pyhanko.pdf_utils.reader import PdfFileReader
from pyhanko.sign.validation import async_validate_pdf_signature
from pyhanko_certvalidator import ValidationContext

from chave import formats
from chave.delivery.messages import notice_message
from chave.identity import services as identity
from chave.signing import pades, pki, services

from .helpers import PIN, make_integrator, sample_pdf, service_token
from .test_area import PHONE, sign_in, sign_through_pages

pytestmark = pytest.mark.django_db(transaction=True)


def _validated(pdf: bytes):
    """pyHanko's verdict on the signature, revocation required: it fetches the signer's status from
    the OCSP responder its certificate names (an unreachable or "unknown" answer fails it), and
    takes today's "good" for the signing time (a signature made days ago is checked now)."""
    m = pki.material()

    async def run():
        sig = PdfFileReader(io.BytesIO(pdf)).embedded_signatures[0]
        signer = ValidationContext(trust_roots=[pades._asn1(m.root)], other_certs=[pades._asn1(m.ca)],
                                   allow_fetching=True, revocation_mode="hard-fail", retroactive_revinfo=True)
        stamps = pades.validation_context()
        try:
            status = await async_validate_pdf_signature(sig, signer, ts_validation_context=stamps)
            return status, len(signer.ocsps)
        finally:
            await signer.aclose()
            await stamps.aclose()

    return asyncio.run(run())


def test_signatures_before_and_after_a_renewal_both_validate_and_the_citizen_is_told(
        signer, client, outbox, clock, live_server):
    key, credential = signer(phone=PHONE, language="en", document_expiry=clock.today() + dt.timedelta(days=20))
    old_serial = credential.serial_number
    sign_in(client, key)
    before = sign_through_pages(client, outbox, clock)[0]

    clock.travel(dt.timedelta(seconds=1))
    assert identity.renew_document(key, clock.today() + dt.timedelta(days=3650), by="civil-registry",
                                   channel="registry")
    credential.refresh_from_db()
    assert credential.serial_number != old_serial
    key.refresh_from_db()
    outbox.last(PHONE)  # the messages go out
    told = [m.body for m in outbox.messages(PHONE)[:2]]
    assert told == [  # newest first
        notice_message("signing_certificate_renewed", language="en", until=credential.not_after).body,
        notice_message("key_renewed", language="en",
                       until=timezone.make_aware(dt.datetime.combine(key.valid_until, dt.time(12)))).body,
    ]

    clock.travel(dt.timedelta(seconds=31))
    after = sign_through_pages(client, outbox, clock)[0]
    for pdf, serial in ((before, old_serial), (after, credential.serial_number)):
        status, ocsp_answers = _validated(pdf)
        assert status.intact and status.valid and status.trusted, status.pretty_print_details()
        assert ocsp_answers >= 1  # the responder was asked, and answered "good"
        assert f"{status.signing_cert.serial_number:x}" == serial

    # The signing page: the current certificate's validity and its renewal, in words, both languages.
    for language, words in (("en", "It was renewed on"), ("pt-pt", "Foi renovado a")):
        page = " ".join(client.get("/area/sign/", HTTP_ACCEPT_LANGUAGE=language).content.decode().split())
        with translation.override(language):
            since, until, on = formats.day(credential.not_before), formats.day(credential.not_after), \
                formats.day(clock.now())
        assert f"{since}" in page and f"{until}." in page, page
        assert f"{words} {on}" in page
        assert not re.search(r"\d{4}-\d\d-\d\d", page)


def test_a_document_prepared_before_a_renewal_keeps_its_certificate(signer, client, outbox, clock, live_server):
    key, credential = signer(phone=PHONE, document_expiry=clock.today() + dt.timedelta(days=20))
    old_serial = credential.serial_number
    sign_in(client, key)
    files = [SimpleUploadedFile("contrato.pdf", sample_pdf(1), "application/pdf")]
    assert client.post("/area/sign/upload/", {"documents": files, "level": "B-T"}).status_code == 302
    outbox.last(PHONE)
    clock.travel(dt.timedelta(seconds=1))
    response = client.post("/area/sign/place/", {"signing_pin": PIN, "d0-page": "1", "d0-position": "bottom-right"})
    assert response["Location"] == "/area/sign/code/"
    code = outbox.last_code(PHONE)
    # The civil records renew the card while the citizen reads the code.
    assert identity.renew_document(key, clock.today() + dt.timedelta(days=3650), by="civil-registry")
    credential.refresh_from_db()
    assert credential.serial_number != old_serial
    assert client.post("/area/sign/code/", {"code": code})["Location"] == "/area/sign/done/"
    link = re.findall(r'href="(/area/sign/download/\d+/)"', client.get("/area/sign/done/").content.decode())[0]
    status, _answers = _validated(client.get(link).getvalue())
    assert status.intact and status.valid and status.trusted, status.pretty_print_details()
    assert f"{status.signing_cert.serial_number:x}" == old_serial  # the one its signed attributes name


def test_the_csc_api_gives_the_renewed_certificate(signer, live_server, clock):
    key, credential = signer(phone=PHONE, document_expiry=clock.today() + dt.timedelta(days=20))
    party, secret = make_integrator()
    token = service_token(live_server.url, party.client_id, secret).json()["access_token"]

    def info():
        answer = requests.post(f"{live_server.url}/csc/v2/credentials/info", timeout=30,
                               headers={"Authorization": f"Bearer {token}"},
                               json={"credentialID": credential.credential_id, "certificates": "chain",
                                     "certInfo": True})
        assert answer.status_code == 200, answer.text
        return answer.json()["cert"]

    before = info()
    assert before["serialNumber"] == credential.serial_number
    assert identity.renew_document(key, clock.today() + dt.timedelta(days=3650), by="test")
    credential.refresh_from_db()
    after = info()
    assert after["serialNumber"] == credential.serial_number != before["serialNumber"]
    assert after["status"] == "valid" and len(after["certificates"]) == 3
    assert after["certificates"][0] == services.chain_pem(credential)[0].split("-----")[2].replace("\n", "")
    assert after["certificates"][1:] == before["certificates"][1:]  # the same CA chain
    assert after["validTo"] > before["validTo"]
