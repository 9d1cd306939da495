"""What assistive technology finds on the Chave app's pages, in both languages
(``chave.testing.accessibility``): the personal area's device pages, the login's approval and QR
pages, the counter's devices page, and the app itself (one screen shown at a time: each screen has
its one <h1>; every field labelled, every button named, ids unique, the language said)."""

from __future__ import annotations

import re

import pytest
from django.conf import settings

from chave.testing.accessibility import assert_accessible, assert_named, parse, walk

from .test_login_by_app import past_the_pin

pytestmark = pytest.mark.django_db(transaction=True)

AREA_PAGES = {
    "devices": ([("get", "/area/app/")], 200),
    "pairing": ([("post", "/area/app/add/")], 200),
    "rename": ([("get", "/area/app/{device}/rename/")], 200),
    "rename, empty": ([("post", "/area/app/{device}/rename/", {"name": ""})], 400),
    "remove": ([("get", "/area/app/{device}/remove/")], 200),
}


@pytest.mark.parametrize("lang", ["en", "pt-pt"])
@pytest.mark.parametrize("name", list(AREA_PAGES))
def test_the_area_pages_are_accessible(area, paired, name, lang):
    area.cookies[settings.LANGUAGE_COOKIE_NAME] = lang
    steps, status = AREA_PAGES[name]
    assert_accessible(walk(area, steps, device=paired.device_id), lang, name, status=status)


@pytest.mark.parametrize("lang", ["en", "pt-pt"])
def test_the_login_pages_of_the_app_are_accessible(paired, lang):
    browser = past_the_pin(lang)
    assert_accessible(browser.get("/login/channel/"), lang, "channel with the app")
    browser.post("/login/channel/", {"channel": "app_approve"})
    assert_accessible(browser.get("/login/approve/"), lang, "approve")
    browser.post("/login/channel/", {"channel": "app_offline"})
    assert_accessible(browser.get("/login/code/"), lang, "offline code")
    qr = past_the_pin(lang)
    assert_accessible(qr.get("/login/app/"), lang, "QR sign-in")


@pytest.mark.parametrize("lang", ["en", "pt-pt"])
def test_the_counter_page_is_accessible(paired, key, staff_client, lang):
    clerk = staff_client("clerk")
    clerk.cookies[settings.LANGUAGE_COOKIE_NAME] = lang
    assert_accessible(clerk.get(f"/counter/citizen/{key.citizen.pk}/app/"), lang, "counter devices")


@pytest.mark.parametrize("lang", ["en", "pt-pt"])
def test_the_app_itself(client, lang):
    client.cookies[settings.LANGUAGE_COOKIE_NAME] = lang
    response = client.get("/app/")
    html = response.content.decode()
    page = parse(html)
    assert_named(page, lang, "the app")
    screens = re.findall(r'<section id="screen-[a-z-]+" class="screen"(.*?)</section>\n\n', html, re.S)
    assert len(screens) >= 8
    for screen in screens:
        assert screen.count("<h1") == 1, screen[:200]
    assert page.landmarks.count("main") == 1
