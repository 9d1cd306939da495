"""What assistive technology finds on the signing pages of the personal area and on the validation
page, in both languages, along a signing (upload, place, signing PIN, code, done) and with the
refusals shown on the way: one <h1> and headings in order, landmarks and the skip link, labelled
fields, named buttons (the place page's clickable pages and its hidden first button included),
unique ids and the page language (``chave.testing.accessibility``)."""

from __future__ import annotations

import pytest
from django.conf import settings
from django.core.files.uploadedfile import SimpleUploadedFile

from chave.testing.accessibility import assert_accessible

from .helpers import PIN, sample_pdf, sign_placed
from .test_area import sign_in

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.once]  # the same on any database: SQLite pass only
PHONE = "+351912000303"
SHOWN = {"d0-page": "2", "d0-position": "bottom-right", "d1-page": "0", "d1-position": "top-left"}
PLACED = {**SHOWN, "signing_pin": PIN}


def upload(client):
    files = [SimpleUploadedFile("contrato.pdf", sample_pdf(12), "application/pdf"),
             SimpleUploadedFile("anexo.pdf", sample_pdf(1), "application/pdf")]
    response = client.post("/area/sign/upload/", {"documents": files, "level": "B-T"})
    assert response.status_code == 302 and response["Location"] == "/area/sign/place/"


def placed(client, outbox):
    upload(client)
    response = client.post("/area/sign/place/", PLACED)
    assert response.status_code == 302 and response["Location"] == "/area/sign/code/"


def signed(client, outbox):
    upload(client)
    return sign_placed(client, outbox, PHONE, PLACED)


def validate(client, pdf: bytes):
    return client.post("/validate/", {"document": SimpleUploadedFile("s.pdf", pdf, "application/pdf")})


# Each page: how the citizen (with signing active) gets there, and the status it answers with
# (``upload`` and ``placed`` return nothing, hence ``or``; ``signed`` returns the signed PDFs).
PAGES = {
    "home": (lambda c, o: c.get("/area/sign/"), 200),
    "signing PIN": (lambda c, o: c.get("/area/sign/pin/"), 200),
    "signing PIN, not the same twice": (
        lambda c, o: c.post("/area/sign/pin/", {"new_pin": "5831", "new_pin_again": "5832"}), 200),
    "place": (lambda c, o: upload(c) or c.get("/area/sign/place/"), 200),
    "place, page 7 shown": (lambda c, o: upload(c) or c.post("/area/sign/place/", {**SHOWN, "d0-show": "7"}), 200),
    "place, wrong signing PIN": (
        lambda c, o: upload(c) or c.post("/area/sign/place/", {**PLACED, "signing_pin": "9371"}), 400),
    "code": (lambda c, o: placed(c, o) or c.get("/area/sign/code/"), 200),
    "code, wrong code": (lambda c, o: placed(c, o) or c.post("/area/sign/code/", {"code": "000000"}), 400),
    "code, not a code": (lambda c, o: placed(c, o) or c.post("/area/sign/code/", {"code": "12ab"}), 400),
    "done": (lambda c, o: signed(c, o) and c.get("/area/sign/done/"), 200),
    "validate": (lambda c, o: c.get("/validate/"), 200),
    "validate, no signature": (lambda c, o: validate(c, sample_pdf(1)), 200),
    "validate, signed": (lambda c, o: validate(c, signed(c, o)[0]), 200),
}


@pytest.mark.parametrize("lang", ["en", "pt-pt"])
@pytest.mark.parametrize("name", list(PAGES))
def test_every_signing_page_is_accessible(signer, client, outbox, live_server, name, lang):
    key, _credential = signer(phone=PHONE)
    sign_in(client, key)
    client.cookies[settings.LANGUAGE_COOKIE_NAME] = lang
    go, status = PAGES[name]
    assert_accessible(go(client, outbox), lang, name, status=status)


@pytest.mark.parametrize("lang", ["en", "pt-pt"])
@pytest.mark.parametrize(("name", "path", "data", "status"), [
    ("home, signing not active", "/area/sign/", None, 200),
    ("activate", "/area/sign/activate/", None, 200),
    ("activate, not the same twice", "/area/sign/activate/", {"new_pin": "5831", "new_pin_again": "5832"}, 200),
])
def test_the_pages_before_signing_is_active_are_accessible(make_citizen, client, name, path, data, status, lang):
    sign_in(client, make_citizen(phone=PHONE))
    client.cookies[settings.LANGUAGE_COOKIE_NAME] = lang
    response = client.get(path) if data is None else client.post(path, data)
    assert_accessible(response, lang, name, status=status)

