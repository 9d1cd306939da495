"""The signature check on a phone, in both languages: the verdict is the first thing under the
heading, in words; the page fits a finger and the screen. Screenshots go to var/screenshots/."""

import os
import re
from pathlib import Path

import pytest

os.environ.setdefault("DJANGO_ALLOW_ASYNC_UNSAFE", "true")

from chave.login.tests.pages import says  # noqa: E402
from chave.testing.accessibility import assert_fits_a_finger  # noqa: E402
from chave.testing.browser import fits_the_screen  # noqa: E402

from .test_area import PHONE, sign_in, sign_through_pages  # noqa: E402

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]

SHOTS = Path(__file__).resolve().parents[3] / "var" / "screenshots"


def test_the_verdict_comes_first_in_words_on_a_phone(signer, client, outbox, clock, live_server, tmp_path, request):
    key, _credential = signer(phone=PHONE)
    sign_in(client, key)
    signed = tmp_path / "contrato-assinado.pdf"
    signed.write_bytes(sign_through_pages(client, outbox, clock)[0])
    # The browser only now: Playwright's loop in this thread would stop signing's own asyncio.run.
    phone, new_page = request.getfixturevalue("phone"), request.getfixturevalue("new_page")
    SHOTS.mkdir(parents=True, exist_ok=True)
    for lang, locale in (("pt-pt", "pt-PT"), ("en", "en-GB")):
        for name, page in (("phone", phone(locale=locale)),
                           ("desktop", new_page(viewport={"width": 1280, "height": 900}, locale=locale))):
            page.goto(live_server.url + "/validate/")
            page.get_by_label(says("Signed PDF", lang)).set_input_files(str(signed))
            page.get_by_role("button", name=says("Check", lang), exact=True).click()
            page.wait_for_selector("#verdict-1")
            verdict = page.locator("#verdict-1").inner_text()
            assert verdict.startswith(says("Valid signature by %(name)s, signed on %(date)s at %(time)s. The document "
                                           "was not changed since.", lang).split("%(name)s")[0] + key.citizen.full_name)
            assert not re.search(r"\d{4}-\d\d-\d\d", page.locator("main").inner_text())  # no ISO date
            # The verdict is the first thing under the heading; the form to check another comes after.
            assert page.locator("main h1 + section #verdict-1").count() == 1
            fits_the_screen(page)
            assert_fits_a_finger(page, f"validate ({lang}, {name})")
            page.screenshot(path=str(SHOTS / f"validate-result-{lang}-{name}.png"), full_page=True)
