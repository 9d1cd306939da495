"""Signing in the personal area in a real browser (Debian's chromium driven by Playwright) on a
phone-sized screen: upload a landscape Letter PDF, see a page, click on its image to put the
signature there (no JavaScript: ``<input type="image">``), Enter in the signing PIN field, the
code, and the downloaded PDF has the signature where the citizen clicked."""

import os
import re

import pytest

# Playwright's sync API runs an event loop in this thread; the test thread's own database work
# (fixtures, the outbox worker) is synchronous and safe.
os.environ.setdefault("DJANGO_ALLOW_ASYNC_UNSAFE", "true")

from django.conf import settings  # noqa: E402
from django.contrib.sessions.backends.db import SessionStore  # noqa: E402
from django.test import RequestFactory  # noqa: E402

from chave.login import services as login  # noqa: E402
from chave.login.tests.pages import says  # noqa: E402
from chave.testing.browser import click_and_wait, expect, fits_the_screen  # noqa: E402

from .helpers import PIN, sample_pdf, widget  # noqa: E402

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]
PHONE = "+351912000303"
LETTER_LANDSCAPE = (792, 612)


def _signed_in_with_the_card(page, live_server, key):
    """The browser holds a session as after a Citizen Card sign-in (level 4: signing allowed)."""
    request = RequestFactory().get("/card/return")
    request.session = SessionStore()
    login.complete_card_login(request, key)
    request.session.save()
    page.context.add_cookies([{"name": settings.SESSION_COOKIE_NAME, "value": request.session.session_key,
                               "url": live_server.url}])


def test_click_on_the_page_image_then_sign(live_server, phone, signer, outbox):
    lang = "en"
    key, _credential = signer(phone=PHONE)
    page = phone("en-GB")
    _signed_in_with_the_card(page, live_server, key)
    page.goto(live_server.url + "/area/sign/")
    page.get_by_label(says("PDF documents", lang)).set_input_files(
        [{"name": "plan.pdf", "mimeType": "application/pdf", "buffer": sample_pdf(2, size=LETTER_LANDSCAPE)}])
    page.get_by_role("button", name=says("Continue", lang)).click()
    page.wait_for_url(re.compile(r"/area/sign/place/$"))
    fits_the_screen(page)
    # The last page is shown first; the citizen looks at page 1 instead.
    # Each click posts the form: wait for its page (load state alone may be the old page's).
    click_and_wait(page.get_by_role("button", name=f'{says("Show page", lang)} 1', exact=True))
    expect(page.locator("#document-0 p", has_text="Showing page 1 of 2")).to_be_visible()

    image = page.get_by_role("button", name=re.compile("^" + re.escape(says("Page %(page)s: put the signature here",
                                                                            lang, page=1))))
    frame = image.bounding_box()
    assert frame["width"] > frame["height"]  # a landscape page looks landscape
    click_and_wait(image, position={"x": frame["width"] * 0.25, "y": frame["height"] * 0.30})
    marker = page.locator("#signature-box-0").bounding_box()
    frame = page.locator("#page-image-0").bounding_box()
    centre = (marker["x"] + marker["width"] / 2 - frame["x"], marker["y"] + marker["height"] / 2 - frame["y"])
    assert centre == pytest.approx((frame["width"] * 0.25, frame["height"] * 0.30), abs=3)
    where = " ".join(page.locator("#where-0").inner_text().split())
    assert re.fullmatch(r"Your signature: page 1, \d+ mm from the left, \d+ mm from the bottom\.", where), where
    assert page.get_by_label(says("Position on the page", lang)).input_value() == "point"
    fits_the_screen(page)

    # Enter in the signing PIN field is the signing step (not a click on a page).
    page.get_by_label(says("Signing PIN", lang)).fill(PIN)
    page.get_by_label(says("Signing PIN", lang)).press("Enter")
    page.wait_for_url(re.compile(r"/area/sign/code/$"))
    page.get_by_label(says("Security code", lang)).fill(outbox.last_code(PHONE))
    page.get_by_role("button", name=says("Sign", lang), exact=True).click()
    page.wait_for_url(re.compile(r"/area/sign/done/$"))
    href = page.locator("#downloads a").first.get_attribute("href")
    signed = page.request.get(live_server.url + href).body()
    on, rect = widget(signed)
    assert on == 1
    # A quarter from the left, 30 % from the top of a 792 × 612 point page.
    assert ((rect[0] + rect[2]) / 2, (rect[1] + rect[3]) / 2) == pytest.approx((792 * 0.25, 612 * 0.70), abs=4)
