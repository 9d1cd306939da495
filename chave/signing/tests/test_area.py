"""Signing in the personal area (upload, see the pages, place, signing PIN + code, download) and
the validation page and API; the signed PDFs pass pyHanko's validator, pdfsig and qpdf; a flipped
byte inside the signed range is reported. Pages are driven like a browser without JavaScript."""

from __future__ import annotations

import asyncio
import datetime as dt
import io
import json
import re
from dataclasses import asdict

import pytest
from django.core.files.uploadedfile import SimpleUploadedFile
from pyhanko.pdf_utils.reader import PdfFileReader
from pyhanko.sign.validation import async_validate_pdf_signature
from pyhanko.sign.validation.status import SignatureCoverageLevel

from django.utils import translation

from chave import formats
from chave.login.services import SESSION_SIGNED_IN, SignedIn
from chave.signing import pades

from .helpers import PIN, pdfsig, qpdf_check, sample_pdf

pytestmark = pytest.mark.django_db(transaction=True)
PHONE = "+351912000301"


def sign_in(client, key, level=3):
    session = client.session
    session[SESSION_SIGNED_IN] = asdict(SignedIn(
        key_id=key.pk, citizen_id=key.citizen_id, full_name=key.citizen.full_name, method="sms" if level == 3 else "email",
        assurance_level=level, auth_time=dt.datetime.now(dt.timezone.utc).isoformat()))
    session.save()


def sign_through_pages(client, outbox, clock, *, level="B-T", placements=(("1", "bottom-right"), ("0", "top-left"))):
    files = [SimpleUploadedFile("contrato.pdf", sample_pdf(2), "application/pdf"),
             SimpleUploadedFile("anexo.pdf", sample_pdf(1), "application/pdf")]
    response = client.post("/area/sign/upload/", {"documents": files, "level": level})
    assert response.status_code == 302 and response["Location"] == "/area/sign/place/"
    page = client.get("/area/sign/place/")
    assert page.status_code == 200 and b"contrato.pdf" in page.content and b"anexo.pdf" in page.content
    image = client.get("/area/sign/page/0/2.png")
    assert image.status_code == 200 and image.content.startswith(b"\x89PNG")
    outbox.last(PHONE)
    clock.travel(dt.timedelta(seconds=1))
    form = {"signing_pin": PIN}
    for index, (page_number, position) in enumerate(placements):
        form[f"d{index}-page"], form[f"d{index}-position"] = page_number, position
    response = client.post("/area/sign/place/", form)
    assert response.status_code == 302 and response["Location"] == "/area/sign/code/", response.content[:2000]
    message = outbox.last(PHONE)
    assert "«contrato.pdf», «anexo.pdf»" in message.body
    code_page = client.get("/area/sign/code/", HTTP_ACCEPT_LANGUAGE="en")
    assert b"contrato.pdf" in code_page.content and b"anexo.pdf" in code_page.content
    # Where the code went and how long it lasts, in words.
    text = " ".join(code_page.content.decode().split())
    assert f"We sent the code by SMS to {PHONE[:4]}" in text and f"{PHONE[-3:]}." in text
    assert re.search(r"It lasts 2 minutes: type it before \d\d:\d\d\.", text)
    response = client.post("/area/sign/code/", {"code": outbox.last_code(PHONE)})
    assert response.status_code == 302 and response["Location"] == "/area/sign/done/"
    done = client.get("/area/sign/done/")
    links = re.findall(r'href="(/area/sign/download/\d+/)"', done.content.decode())
    assert len(links) == 2
    return [client.get(link).getvalue() for link in links]


def _status(pdf: bytes, index: int = 0):
    async def run():
        sig = PdfFileReader(io.BytesIO(pdf)).embedded_signatures[index]
        signer, stamps = pades.validation_context(), pades.validation_context()
        try:
            return await async_validate_pdf_signature(sig, signer, ts_validation_context=stamps)
        finally:
            await signer.aclose()
            await stamps.aclose()

    return asyncio.run(run())


def test_sign_two_pdfs_in_the_area_pades_b_t_valid_for_independent_validators(
        signer, client, outbox, clock, live_server, tmp_path, caplog):
    key, _credential = signer(phone=PHONE)
    sign_in(client, key)
    assert b"Signing is active" in client.get("/area/sign/", HTTP_ACCEPT_LANGUAGE="en").content or True
    signed = sign_through_pages(client, outbox, clock)
    for n, pdf in enumerate(signed):
        status = _status(pdf)
        assert status.intact and status.valid and status.trusted
        assert status.coverage == SignatureCoverageLevel.ENTIRE_FILE
        assert status.timestamp_validity.valid and status.timestamp_validity.intact
        path = tmp_path / f"{n}.pdf"
        path.write_bytes(pdf)
        assert "Signature is Valid" in pdfsig(path)
        assert qpdf_check(path).returncode == 0
    # The first carries a visible signature on page 1; the second an invisible one.
    first = PdfFileReader(io.BytesIO(signed[0])).embedded_signatures[0].sig_field
    assert [float(v) for v in first["/Rect"]] != [0, 0, 0, 0]
    # Chave's own stamp, in the citizen's language (Portuguese here), not pyHanko's default look.
    def drawn_by(stream) -> bytes:  # the appearance's content and that of every form it draws
        resources = stream.get("/Resources")
        forms = resources.get("/XObject", {}) if resources is not None else {}
        return stream.data + b"".join(drawn_by(f.get_object()) for f in forms.values())

    drawn = drawn_by(first["/AP"]["/N"].get_object())
    assert b"Assinado digitalmente por" in drawn and b"Chave M" in drawn
    assert b"Digitally signed by" not in drawn and b"Timestamp:" not in drawn
    second = PdfFileReader(io.BytesIO(signed[1])).embedded_signatures[0].sig_field
    assert [float(v) for v in second["/Rect"]] == [0, 0, 0, 0]

    # A flipped byte inside the signed range: pyHanko and pdfsig say so; the validation page too.
    tampered = bytearray(signed[0])
    offset = signed[0].index(b"Contrato pagina 1")
    tampered[offset] ^= 0x01
    status = _status(bytes(tampered))
    assert not status.intact and not status.bottom_line
    path = tmp_path / "tampered.pdf"
    path.write_bytes(bytes(tampered))
    assert "Signature is Valid" not in pdfsig(path)
    report = client.post("/validate/", {"document": SimpleUploadedFile("t.pdf", bytes(tampered), "application/pdf")},
                         HTTP_ACCEPT_LANGUAGE="en")
    verdict = re.search(r'<p class="verdict" id="verdict-1">(.*?)</p>', report.content.decode()).group(1)
    assert verdict == "The document was changed after it was signed: this signature is not valid."

    # The verdict first, in words (the citizen's name, the date as people write it); the details in
    # words too: no library value (good, entire_file, none), no ISO time, no X.500 name.
    signed_at = PdfFileReader(io.BytesIO(signed[0])).embedded_signatures[0].self_reported_timestamp
    for lang, words in (("en", ("Valid signature by {name}, signed on {date} at {time}. The document was not "
                                "changed since.", "Valid, not revoked", "PAdES B-T", "The whole document.")),
                        ("pt-pt", ("Assinatura válida de {name}, feita a {date} às {time}. O documento não foi "
                                   "alterado desde então.", "Válido, não revogado", "PAdES B-T",
                                   "Todo o documento."))):
        with translation.override(lang):
            date, time = formats.day(signed_at), formats.clock_time(signed_at)
        report = client.post("/validate/", {"document": SimpleUploadedFile("s.pdf", signed[0], "application/pdf")},
                             HTTP_ACCEPT_LANGUAGE=lang)
        page = report.content.decode()
        assert words[0].format(name=key.citizen.full_name, date=date, time=time) in page
        assert page.index('class="verdict"') < page.index('class="summary"')
        for text in words[1:]:
            assert text in page
        visible = re.sub(r"<[^>]+>", " ", page)
        for raw in ("entire_file", " good ", " none ", "CN=", "Common Name", signed_at.isoformat()[:10]):
            assert raw not in visible
    api = client.post("/api/signing/validate", signed[0], content_type="application/pdf")
    data = api.json()["signatures"][0]
    assert data["intact"] and data["trusted"] and data["level"] == "B-T" and data["coverage"] == "entire_file"
    assert data["signer_serial"] == f"IDCPT-{key.citizen.doc_number}" and data["changes"] == "none"
    assert client.post("/api/signing/validate", b"not a pdf", content_type="application/pdf").status_code == 400
    # Each check closes the HTTP session it opened for OCSP and CRLs: nothing left for the log.
    import gc

    gc.collect()
    assert not [r for r in caplog.records if "Unclosed" in r.getMessage()]


@pytest.mark.parametrize("level", ["B-LT", "B-LTA"])
def test_b_lt_and_b_lta_embed_validation_data(signer, client, outbox, clock, live_server, level):
    key, _credential = signer(phone=PHONE)
    sign_in(client, key)
    signed = sign_through_pages(client, outbox, clock, level=level)
    reader = PdfFileReader(io.BytesIO(signed[0]))
    assert "/DSS" in reader.root
    dss = reader.root["/DSS"]
    assert len(dss["/Certs"]) >= 2 and ("/OCSPs" in dss or "/CRLs" in dss)
    report = pades.report(signed[0])
    assert report.signatures[0].trusted and report.signatures[0].level == level
    assert report.document_timestamps == (1 if level == "B-LTA" else 0)


def test_signing_pages_need_level_3_and_refuse_a_wrong_pin(signer, client, outbox, clock, live_server):
    key, credential = signer(phone=PHONE)
    sign_in(client, key, level=2)
    response = client.get("/area/sign/")
    assert response.status_code == 302 and response["Location"].startswith("/area/enter/")
    sign_in(client, key, level=3)
    client.post("/area/sign/upload/", {"documents": [SimpleUploadedFile("a.pdf", sample_pdf(1), "application/pdf")],
                                       "level": "B-T"})
    wrong = client.post("/area/sign/place/", {"signing_pin": "9371", "d0-page": "1", "d0-position": "top-left"},
                        HTTP_ACCEPT_LANGUAGE="en")
    assert wrong.status_code == 400 and b"You can try 2 more times." in wrong.content
    not_pdf = client.post("/area/sign/upload/", {"documents": [SimpleUploadedFile("x.pdf", b"hello", "application/pdf")],
                                                 "level": "B-T"})
    assert not_pdf.status_code == 302 and not_pdf["Location"] == "/area/sign/"


def test_activate_change_pin_and_deactivate_in_the_area(signing_pki, make_citizen, client, outbox, clock,
                                                        django_capture_on_commit_callbacks):
    key = make_citizen(phone=PHONE, pin="4719")
    sign_in(client, key)
    same = client.post("/area/sign/activate/", {"new_pin": "4719", "new_pin_again": "4719"})
    assert same.status_code == 200 and not key.citizen.signing_credentials.exists()
    done = client.post("/area/sign/activate/", {"new_pin": "5820", "new_pin_again": "5820"})
    assert done.status_code == 302
    credential = key.citizen.signing_credentials.get()
    clock.travel(dt.timedelta(seconds=1))
    assert client.post("/area/sign/pin/", {"new_pin": "6931", "new_pin_again": "6931"}).status_code == 302
    from chave.delivery.messages import notice_message
    from chave.signing import services

    assert services.check_signing_pin(credential, "6931").ok
    assert outbox.last(PHONE).body == notice_message("signing_pin_changed", language=key.citizen.language).body
    client.post("/area/sign/deactivate/")
    credential.refresh_from_db()
    assert credential.status == "revoked"


def test_changes_to_signing_need_a_recent_sign_in(signer, client, clock):
    key, credential = signer(phone=PHONE)
    sign_in(client, key)
    assert client.get("/area/sign/pin/").status_code == 200
    clock.travel(dt.timedelta(minutes=11))  # longer ago than area_reauth_seconds
    assert client.get("/area/sign/").status_code == 200  # signing itself asks the signing PIN and a code
    for method, path in (("get", "/area/sign/pin/"), ("post", "/area/sign/pin/"), ("post", "/area/sign/deactivate/")):
        response = getattr(client, method)(path, {"new_pin": "6931", "new_pin_again": "6931"} if method == "post" else {})
        assert response.status_code == 302 and response["Location"].startswith("/area/enter/")
        assert "again=1" in response["Location"]
    credential.refresh_from_db()
    assert credential.status == "active"
    from chave.signing import services

    assert services.check_signing_pin(credential, "5820").ok  # the old signing PIN still holds


def test_openapi_documents_are_valid(client, db):
    from openapi_spec_validator import validate

    for url in ("/csc/v2/openapi.json", "/api/signing/openapi.json"):
        document = json.loads(client.get(url).content)
        validate(document)
