"""A foreign resident's renewed document with a new number, at the counter, in a real browser
(Debian's chromium, Playwright): on a phone (390 × 844) and a desk (1280 × 900), in English and in
Portuguese. The task is listed on the citizen's page; its page reports every problem at once; the
recorded document shows on the summary with the key's new validity, in words."""

import datetime as dt
import os
import re
from pathlib import Path

import pytest

os.environ.setdefault("DJANGO_ALLOW_ASYNC_UNSAFE", "true")

from chave import formats  # noqa: E402
from chave.identity import services as identity  # noqa: E402
from chave.identity.models import Key  # noqa: E402
from chave.identity.registry import DocumentRef, IdentityRecord, LocalRecords  # noqa: E402
from chave.login.tests.pages import says  # noqa: E402
from chave.testing.accessibility import assert_accessible  # noqa: E402
from chave.testing.browser import click_and_wait, fits_the_screen  # noqa: E402

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]
SHOTS = os.environ.get("CHAVE_SCREENSHOTS")  # a folder: the pages are saved there to be looked at
MOBILE = "+351912345678"
SCREENS = {"phone": {"width": 390, "height": 844}, "desk": {"width": 1280, "height": 900}}


def foreign_resident(clock):
    doc = DocumentRef("residence_permit", "UA", "AB123456")
    LocalRecords().store(IdentityRecord(doc=doc, full_name="Olena Kovalenko", given_name="Olena",
                                        family_name="Kovalenko", birth_date=dt.date(1988, 3, 2),
                                        document_expiry=clock.today() + dt.timedelta(days=20), nif="123456789"))
    key, _pin = identity.register_citizen(doc, [identity.ContactInput("mobile", MOBILE)], pin="4719",
                                          contacts_verified_by="test", language="pt-pt")
    return key


def shot(page, name):
    if SHOTS:
        page.screenshot(path=str(Path(SHOTS) / f"{name}.png"), full_page=True)


@pytest.mark.parametrize(("lang", "locale"), [("en", "en-GB"), ("pt-pt", "pt-PT")])
@pytest.mark.parametrize("screen", ["phone", "desk"])
def test_a_new_document_number_recorded_at_the_counter(live_server, new_page, make_staff, clock, lang, locale,
                                                        screen):
    from django.utils import translation

    key = foreign_resident(clock)
    login = make_staff("clerk", counter="Loja Aveiro", name="Ana Sousa")
    page = new_page(viewport=SCREENS[screen], locale=locale)
    page.goto(live_server.url + "/counter/login")
    page.locator("#id_username").fill(login.username)
    page.locator("#id_password").fill(login.password)
    page.locator("#id_code").fill(login.code())
    page.locator("main form button[type=submit]").click()
    page.wait_for_url(re.compile(r"/counter/find/$"))
    page.goto(f"{live_server.url}/counter/citizen/{key.citizen.pk}/")
    page.locator("#task-new_document").click()
    page.wait_for_url(re.compile(r"/new-document$"))
    assert page.locator("#task-title").inner_text() == says("Record a renewed document with a new number", lang)
    fits_the_screen(page)
    shot(page, f"new_document-{lang}-{screen}")

    # Every problem at once: the number on record, a short reason, the box not ticked, no date.
    page.get_by_label(says("New document number", lang)).fill("AB 123456")
    page.get_by_label(says("Reason", lang)).fill("new")
    click_and_wait(page.locator("#task-form button[type=submit]"))  # the same URL: wait for the answer's page
    errors = page.locator("p.error").all_inner_texts()
    assert len(errors) == 4, errors
    fits_the_screen(page)
    shot(page, f"new_document-errors-{lang}-{screen}")

    new_expiry = clock.today() + dt.timedelta(days=1825)
    page.get_by_label(says("New document number", lang)).fill("CD 765 432")
    page.get_by_label(says("Reason", lang)).fill("Residence permit renewed with a new number")
    page.locator("#id_newdoc-document_expiry").fill(new_expiry.isoformat())
    page.locator("#id_newdoc-same_person").check()
    page.locator("#task-form button[type=submit]").click()
    page.wait_for_url(re.compile(rf"/counter/citizen/{key.citizen.pk}/$"))
    page.locator(".messages").wait_for()
    assert says("The renewed document is recorded with its new number: the key's validity follows it.", lang) \
        in page.locator(".messages").inner_text()
    main = page.locator("main").inner_text()
    assert "CD765432" in main
    with translation.override(lang):
        assert formats.day(new_expiry) in main  # the key's validity, in words
        assert says("Key renewed with a new identity document (new number)", lang) in main
    assert Key.objects.get(pk=key.pk).valid_until == new_expiry
    fits_the_screen(page)
    shot(page, f"new_document-done-{lang}-{screen}")


@pytest.mark.parametrize("lang", ["en", "pt-pt"])
def test_the_new_document_page_is_accessible(staff_client, clock, lang):
    from django.conf import settings

    key = foreign_resident(clock)
    desk = staff_client("clerk")
    desk.cookies[settings.LANGUAGE_COOKIE_NAME] = lang
    url = f"/counter/citizen/{key.citizen.pk}/new-document"
    assert_accessible(desk.get(url), lang, "new document page")
    assert_accessible(desk.post(url, {"newdoc-reason": "x"}), lang, "new document page with errors", status=400)
