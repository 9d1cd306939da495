"""What assistive technology finds on the Citizen Card pages (one h1, headings in order, labelled
fields, unique ids, the page language), in both languages, along a registration and a recovery."""

from __future__ import annotations

import pytest
from django.conf import settings

from chave.testing.accessibility import assert_headings, assert_named, parse

from .conftest import card_citizen

pytestmark = pytest.mark.django_db(transaction=True)


def check(response, lang: str) -> None:
    assert response.status_code in (200, 400, 403), response
    page = parse(response.content.decode())
    assert_headings(page, response.request["PATH_INFO"])
    assert_named(page, lang, response.request["PATH_INFO"])


@pytest.mark.parametrize("lang", ["en", "pt-pt"])
def test_the_card_pages_are_accessible(browser_for, cards, make_citizen, outbox, lang):
    card = cards["good"]
    card_citizen(card)
    browser = browser_for()
    client = browser.client
    client.cookies[settings.LANGUAGE_COOKIE_NAME] = lang
    check(client.get("/card/"), lang)
    browser.sign_in(card)
    check(client.get("/card/done/"), lang)
    check(client.get("/card/register/"), lang)
    check(client.post("/card/register/", {"terms": "on", "mobile": "12"}), lang)  # with an error summary
    client.post("/card/register/", {"terms": "on", "mobile": "916 000 333"})
    check(client.get("/card/register/confirm/"), lang)
    client.post("/card/register/confirm/", {"mobile-code": outbox.last_code("+351916000333")})
    check(client.get("/card/register/pin/"), lang)
    client.post("/card/register/pin/", {"new_pin": "5831", "new_pin_again": "5831"})
    check(client.get("/card/register/done/"), lang)
    check(client.get("/card/register/"), lang)  # now refused: a key is active
    check(client.get("/card/recover/"), lang)
    client.post("/card/recover/")
    check(client.get("/card/recover/pin/"), lang)
