"""The citizen's pages in a real browser on a phone-sized screen, in both languages: every control
big enough for a finger (WCAG 2.2 target size), buttons never touching, nothing scrolling sideways,
and the header saying who is signed in.

Screenshots of each page (phone and desktop) go to ``var/screenshots/`` for a person to look at.
"""

import os
import re
from pathlib import Path

import pytest

os.environ.setdefault("DJANGO_ALLOW_ASYNC_UNSAFE", "true")

from chave.audit import services as audit  # noqa: E402
from chave.login.tests.pages import says  # noqa: E402
from chave.testing.accessibility import assert_fits_a_finger  # noqa: E402
from chave.testing.browser import expect, fits_the_screen, sign_in_with_the_key  # noqa: E402

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]

LANGS = [("pt-pt", "pt-PT"), ("en", "en-GB")]
PHONE, PIN = "+351912345678", "4719"
SHOTS = Path(__file__).resolve().parents[3] / "var" / "screenshots"
PUBLIC = ["/", "/faq/", "/help/", "/terms/", "/privacy/", "/login/", "/validate/"]
SIGNED_IN = ["/area/", "/area/history/", "/area/portals/", "/area/sign/", "/area/app/", "/login/done/"]


def _check(page, name: str, lang: str) -> None:
    fits_the_screen(page)
    assert_fits_a_finger(page, f"{name} ({lang})")
    SHOTS.mkdir(parents=True, exist_ok=True)
    page.screenshot(path=str(SHOTS / f"{name.strip('/').replace('/', '-') or 'home'}-{lang}-phone.png"), full_page=True)


@pytest.mark.parametrize(("lang", "locale"), LANGS)
def test_public_and_signed_in_pages_fit_a_finger_on_a_phone(live_server, phone, make_citizen, outbox, lang, locale):
    citizen = make_citizen(phone=PHONE, pin=PIN)
    audit.record("pin.attempt", outcome="wrong", citizen=citizen.citizen, channel="web")
    audit.record("key.locked", outcome="ok", citizen=citizen.citizen, channel="web")
    page = phone(locale=locale)
    for path in PUBLIC:
        page.goto(live_server.url + path)
        expect(page.locator("#nav-sign-in")).to_be_visible()
        _check(page, path, lang)

    page.goto(live_server.url + "/login/")
    sign_in_with_the_key(page, outbox, lang=lang, phone=PHONE, pin=PIN)
    page.wait_for_url(re.compile(r"/login/done/$"))
    # The header: who is signed in, the personal area, and signing out instead of signing in.
    names = citizen.citizen.full_name.split()
    assert page.locator("#nav-who").inner_text().endswith(f"{names[0]} {names[-1]}")
    assert page.locator("#nav-sign-in").count() == 0
    expect(page.get_by_role("button", name=says("Sign out", lang)).first).to_be_visible()
    page.get_by_role("link", name=says("Go to your personal area", lang)).click()
    page.wait_for_url(re.compile(r"/area/$"))
    for path in SIGNED_IN:
        page.goto(live_server.url + path)
        _check(page, path, lang)
    # The history: under today's date, each event by its title, in words.
    page.goto(live_server.url + "/area/history/")
    assert page.locator(".history-date").first.inner_text().startswith(says("Today", lang))
    assert page.locator("[data-event='key.locked'] .event-title").inner_text() == \
        says("Key locked for a while after wrong PINs", lang)
    page.locator("#nav-sign-out").click()
    page.wait_for_url(live_server.url + "/")  # the home page (r"/$" matched the history page still open)
    expect(page.locator("#nav-sign-in")).to_be_visible()


def test_pages_on_a_desktop_screen(live_server, new_page):
    """The same pages on a desktop screen, for the screenshots, and the same checks."""
    page = new_page(viewport={"width": 1280, "height": 900}, locale="pt-PT")
    for path in PUBLIC:
        page.goto(live_server.url + path)
        fits_the_screen(page)
        assert_fits_a_finger(page, path)
        SHOTS.mkdir(parents=True, exist_ok=True)
        page.screenshot(path=str(SHOTS / f"{path.strip('/').replace('/', '-') or 'home'}-desktop.png"), full_page=True)


def test_the_finger_checks_find_what_they_look_for(new_page):
    """The checks fail where a finger would: two stacked buttons touching, a small checkbox beside
    its neighbour; they pass the same controls laid out with room."""
    from chave.testing.accessibility import assert_buttons_apart, assert_target_sizes

    page = new_page(viewport={"width": 390, "height": 844})
    page.set_content('<form><button>One</button></form><form><button>Two</button></form>'
                     '<p><input type="checkbox" id="a" style="width:13px;height:13px;margin:0">'
                     '<input type="checkbox" id="b" style="width:13px;height:13px;margin:0"></p>')
    page.add_style_tag(content="form { margin: 0; } button { display: block; margin: 0; }")
    with pytest.raises(AssertionError, match="buttons closer than 8px"):
        assert_buttons_apart(page)
    with pytest.raises(AssertionError, match="targets under 24px"):
        assert_target_sizes(page)
    page.add_style_tag(content="button { margin: 12px 0; } input { margin: 20px !important; }")
    assert_buttons_apart(page)
    assert_target_sizes(page)
